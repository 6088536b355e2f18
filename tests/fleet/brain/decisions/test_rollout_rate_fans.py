"""The rollouts' pure core, continued: waves at an exponential rate (as AWS IoT Jobs: base
per minute, multiplied by the factor each time that many more boards succeeded, capped),
still topology-aware; fan anomalies in the gate (RPM fell at the same duty, a fan stopped,
a fan that failed, a reported fan failure)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wrale.fleet.brain.decisions.gates import Limits, Sample, evaluate, fan_anomaly
from wrale.fleet.brain.decisions.waves import Rate, WaveSpecError, parse_rate, plan_rate_waves

boards_st = st.dictionaries(
    st.text("abcdef0123", min_size=1, max_size=6),
    st.one_of(st.none(), st.sampled_from(["r1", "r2", "r3", "r4"])),
    max_size=60,
)
rate_st = st.builds(
    Rate,
    st.integers(1, 5),
    st.floats(1.1, 5.0),
    st.integers(1, 6),
    st.one_of(st.none(), st.integers(5, 12)),
)


def _rack(boards: dict[str, str | None], d: str) -> str:
    r = boards[d]
    return r if r is not None else f"own:{d}"


def test_the_rate_grows_by_its_factor_each_time_enough_boards_succeeded() -> None:
    rate = Rate(base_per_minute=2, increment_factor=2.0, after_succeeded=4, max_per_minute=10)
    assert [rate.per_minute(n) for n in (0, 3, 4, 7, 8, 12, 100)] == [2, 2, 4, 4, 8, 10, 10]
    boards = {f"d{i:02}": None for i in range(30)}
    sizes = [len(w) for w in plan_rate_waves(boards, rate)]
    # 0 → 2, 2 → 2, 4 → 4, 8 → 8, 16 → 10 (capped), 26 → 4 (the rest)
    assert sizes == [2, 2, 4, 8, 10, 4]


@settings(max_examples=200, deadline=None)
@given(boards_st, rate_st, st.booleans(), st.one_of(st.none(), st.integers(1, 3)))
def test_rate_waves_hold_every_board_once_within_rate_and_rack_caps(
    boards: dict[str, str | None], rate: Rate, first: bool, cap: int | None
) -> None:
    waves = plan_rate_waves(boards, rate, one_per_rack_first=first, max_per_rack=cap)
    assert sorted(d for w in waves for d in w) == sorted(boards)
    assert all(waves)
    reached = 0
    for i, wave in enumerate(waves):
        assert len(wave) <= rate.per_minute(reached)
        assert rate.max_per_minute is None or len(wave) <= rate.max_per_minute
        limit = 1 if (i == 0 and first) else cap
        if limit is not None:
            racks = [_rack(boards, d) for d in wave]
            assert max(racks.count(r) for r in racks) <= limit
        reached += len(wave)
    assert waves == plan_rate_waves(
        dict(reversed(boards.items())), rate, one_per_rack_first=first, max_per_rack=cap
    )


def test_rate_waves_start_with_one_board_per_rack() -> None:
    boards = {f"{r}{i}": r for r in "abc" for i in range(4)}
    rate = Rate(base_per_minute=5, increment_factor=2.0, after_succeeded=3)
    waves = plan_rate_waves(boards, rate, one_per_rack_first=True, max_per_rack=2)
    assert waves[0] == ["a0", "b0", "c0"]  # one per rack, though the rate allows 5
    assert all(max(sum(d[0] == r for d in w) for r in "abc") <= 2 for w in waves)
    assert rate.per_minute(3) == 10


def _r(**over: object) -> dict[str, object]:
    return {"base_per_minute": 1, "increment_factor": 2, "after_succeeded": 1, **over}


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ([], "waves.rate"),
        ({"base_per_minute": 1, "increment_factor": 2}, "waves.rate.after_succeeded"),
        (_r(base_per_minute=0), "waves.rate.base_per_minute"),
        (_r(base_per_minute=True), "waves.rate.base_per_minute"),
        (_r(increment_factor=1.0), "waves.rate.increment_factor"),
        (_r(increment_factor=math.inf), "waves.rate.increment_factor"),
        (_r(increment_factor="2"), "waves.rate.increment_factor"),
        (_r(after_succeeded=0.5), "waves.rate.after_succeeded"),
        (_r(base_per_minute=5, max_per_minute=4), "waves.rate.max_per_minute"),
        (_r(x=1), "waves.rate"),
    ],
)
def test_hostile_rates_name_their_field(raw: object, field: str) -> None:
    with pytest.raises(WaveSpecError) as err:
        parse_rate(raw)
    assert err.value.field == field


FAN = {"temp_c": 50.0, "fan_duty_pct": 40.0, "fan_rpm": 3000.0}


@pytest.mark.parametrize(
    ("after", "anomaly"),
    [
        ({"fan_rpm": 3000.0}, False),
        ({"fan_rpm": 2600.0}, False),  # within the tolerance
        ({"fan_rpm": 2000.0}, True),  # fell at the same duty
        ({"fan_rpm": 2000.0, "fan_duty_pct": 20.0}, False),  # the duty fell with it
        ({"fan_rpm": 4000.0, "fan_duty_pct": 60.0}, False),
        ({"fan_rpm": 0.0}, True),  # stopped
        ({"fan_rpm": 0.0, "fan_duty_pct": 0.0}, False),  # turned off
        ({"fan_rpm": 2000.0, "fan_duty_pct": 60.0}, True),  # driven harder, turning slower
        ({"fan_rpm": None}, False),  # unknown
        ({"fan_failed": True}, True),
    ],
)
def test_fan_anomalies(after: dict[str, float | bool | None], anomaly: bool) -> None:
    before = Sample(**FAN)  # type: ignore[arg-type]
    now = Sample(**{**FAN, **after})  # type: ignore[arg-type]
    assert (fan_anomaly(before, now) is not None) == anomaly


def test_fan_anomalies_fail_the_gate_by_default_and_name_the_boards() -> None:
    before = {d: Sample(**FAN) for d in "abc"}  # type: ignore[arg-type]
    after = {**before, "a": Sample(**{**FAN, "fan_rpm": 1000.0})}  # type: ignore[arg-type]
    gate = evaluate(list("abc"), [], before, after, [], Limits(), fan_reports={"c": "event"})
    assert not gate.passed
    assert gate.values["fan_anomalies"] == 2
    assert set(gate.values["fan_anomaly_by_board"]) == {"a", "c"}
    assert gate.offenders == ("a", "c")
    tolerant = evaluate(
        list("abc"), [], before, after, [], Limits(max_fan_anomalies=2), fan_reports={"c": "x"}
    )
    assert tolerant.passed, tolerant.reasons
    unchecked = Limits(max_fan_anomalies=None)
    assert evaluate(list("abc"), [], before, after, [], unchecked).passed
    outside = evaluate(list("ab"), [], before, before, [], Limits(), fan_reports={"z": "x"})
    assert outside.passed
    assert outside.values["fan_anomalies"] == 0
