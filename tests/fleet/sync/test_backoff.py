"""Reconnect backoff: full jitter under an exponential ceiling, capped."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wrale.fleet.sync.backoff import Backoff, TokenBucket, ceiling, full_jitter

bases = st.floats(min_value=0.001, max_value=100, allow_nan=False)
caps = st.floats(min_value=0.001, max_value=100_000, allow_nan=False)


@given(st.integers(min_value=0, max_value=10_000), bases, caps, st.integers(0, 2**32))
def test_delay_is_within_zero_and_the_capped_ceiling(
    attempt: int, base: float, cap: float, seed: int
) -> None:
    delay = full_jitter(attempt, base, cap, random.Random(seed))
    assert 0.0 <= delay <= min(cap, base * 2.0 ** min(attempt, 62))


@given(st.integers(min_value=0, max_value=200), bases, caps)
def test_ceiling_grows_then_stays_at_the_cap(attempt: int, base: float, cap: float) -> None:
    assert ceiling(attempt, base, cap) <= ceiling(attempt + 1, base, cap)
    assert ceiling(attempt, base, cap) <= cap
    assert ceiling(10_000, base, cap) == cap


def test_backoff_counts_attempts_and_resets() -> None:
    b = Backoff(base_s=1.0, cap_s=8.0, rng=random.Random(7))
    delays = [b.next_delay() for _ in range(10)]
    assert all(0.0 <= d <= min(8.0, 2.0**i) for i, d in enumerate(delays))
    assert b.attempt == 10
    b.reset()
    assert b.attempt == 0
    assert b.next_delay() <= 1.0


def test_jitter_spreads_devices_that_lost_the_server_together() -> None:
    """A thousand devices at their fifth attempt do not all come back at one moment."""
    delays = [full_jitter(5, 1.0, 60.0, random.Random(seed)) for seed in range(1000)]
    buckets = {int(d // 4) for d in delays}  # 4 s buckets over [0, 32]
    assert len(buckets) == 8


def test_nonsense_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="base_s"):
        Backoff(base_s=0.0)
    with pytest.raises(ValueError, match="base_s"):
        Backoff(base_s=10.0, cap_s=1.0)
    with pytest.raises(ValueError, match="attempt"):
        ceiling(-1, 1.0, 2.0)


# ----------------------------------------------------------------------------- pacing


@given(
    st.floats(0.1, 100),
    st.integers(1, 10),
    st.lists(st.floats(0, 5, allow_nan=False), min_size=1, max_size=200),
)
def test_a_token_bucket_never_exceeds_burst_plus_rate(
    rate: float, burst: int, steps: list[float]
) -> None:
    bucket = TokenBucket(rate, float(burst))
    now, sent = 0.0, 0
    for dt in steps:
        now += dt
        while bucket.take(now):
            sent += 1
        assert sent <= burst + rate * now + 1e-9
        assert bucket.wait_s(now) > 0.0  # empty: a caller always waits, never spins


def test_waiting_as_told_lets_the_next_send_through() -> None:
    bucket = TokenBucket(rate_per_s=2.0, burst=2.0)
    assert bucket.take(10.0)
    assert bucket.take(10.0)
    assert not bucket.take(10.0)
    wait = bucket.wait_s(10.0)
    assert wait == pytest.approx(0.5)
    assert bucket.take(10.0 + wait)
    with pytest.raises(ValueError, match="rate_per_s"):
        TokenBucket(0.0, 1.0)
