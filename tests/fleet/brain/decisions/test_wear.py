"""Wear trends (pure): a fan losing RPM at equal duty, a heat sink gathering dust at equal
airflow, a battery fading; healthy noisy boards are never flagged; "replace before" lies
where the line reaches the limit, inside its band; the queue groups boards by rack, most
urgent first; hostile numbers never break it."""

from __future__ import annotations

import json
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wrale.fleet.brain.decisions.analysis import DAY_S, FanDay
from wrale.fleet.brain.decisions.wear import (
    BATTERY_FADE,
    DUST,
    FAN_WEAR,
    BatteryDay,
    BoardHistory,
    EventDay,
    ThermalDay,
    board_wear,
    maintenance_queue,
    trend,
)

DAYS = 30


def _fans(rate_pct: float, onset: int, seed: int = 0, noise: float = 0.005) -> list[FanDay]:
    rng = random.Random(seed)
    out = []
    for d in range(DAYS):
        factor = 1 - rate_pct / 100 * max(0, d - onset)
        duty = 40 + rng.uniform(-5, 5)
        out.append(FanDay(d * DAY_S, 12, duty, 80 * duty * factor * (1 + rng.gauss(0, noise))))
    return out


def _thermal(rate_pct: float, onset: int, seed: int = 0) -> list[ThermalDay]:
    rng = random.Random(seed)
    out = []
    for d in range(DAYS):
        factor = 1 + rate_pct / 100 * max(0, d - onset)
        for band, base in ((0, 9.0), (5, 5.0), (6, 4.6)):
            out.append(ThermalDay(d * DAY_S, band, 6, base * factor * (1 + rng.gauss(0, 0.01))))
    return out


def _battery(rate_pct: float, onset: int, seed: int = 0) -> list[BatteryDay]:
    rng = random.Random(seed)
    return [
        BatteryDay(d * DAY_S, (1 - rate_pct / 100 * max(0, d - onset)) + rng.gauss(0, 0.015))
        for d in range(DAYS)
    ]


def test_each_slow_fault_is_flagged_with_its_kind_only() -> None:
    cases = {
        FAN_WEAR: BoardHistory("f", fans=_fans(2.0, 10), thermal=_thermal(0, 0)),
        DUST: BoardHistory("d", fans=_fans(0, 0), thermal=_thermal(2.0, 10)),
        BATTERY_FADE: BoardHistory("b", battery=_battery(0.8, 10), fans=_fans(0, 0)),
    }
    for kind, history in cases.items():
        w = board_wear(history)
        assert [t.kind for t in w.worn] == [kind]
        t = w.worn[0]
        assert t.slope_pct_per_day > 0
        assert t.replace_before is not None
        assert t.replace_earliest is not None
        assert t.replace_earliest <= t.replace_before
        assert t.replace_latest is None or t.replace_before <= t.replace_latest
        json.dumps(t.evidence())


def test_replace_before_is_where_the_line_meets_the_limit() -> None:
    # fan RPM falls 2 % a day from day 10; the limit is 40 %: reached on day 30
    w = board_wear(BoardHistory("f", fans=_fans(2.0, 10, noise=0.0)))
    (t,) = w.worn
    assert t.replace_before == pytest.approx(30 * DAY_S, abs=0.6 * DAY_S)
    assert t.wear_pct == pytest.approx(36.0, abs=2.5)  # mean of days 27-29: 34-38 %


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_healthy_noisy_boards_are_never_flagged(seed: int) -> None:
    h = BoardHistory(
        "h", fans=_fans(0, 0, seed), thermal=_thermal(0, 0, seed), battery=_battery(0, 0, seed)
    )
    assert board_wear(h).worn == ()


def test_too_few_days_tell_nothing() -> None:
    h = BoardHistory("x", fans=_fans(5.0, 0)[:7])
    assert board_wear(h).trends == ()


def test_the_queue_groups_by_rack_most_urgent_first() -> None:
    histories = [
        BoardHistory("slow", "s1", "r1", fans=_fans(1.5, 8)),
        BoardHistory("fast", "s1", "r2", fans=_fans(4.0, 8)),
        BoardHistory("mate", "s1", "r2", battery=_battery(1.0, 8)),
        BoardHistory("fine", "s1", "r1", fans=_fans(0, 0)),
    ]
    visits = maintenance_queue(histories)
    assert [(v.site, v.rack) for v in visits] == [("s1", "r2"), ("s1", "r1")]
    assert [b.device_id for b in visits[0].boards] == ["fast", "mate"]
    assert [b.device_id for b in visits[1].boards] == ["slow"]
    dues = [v.due for v in visits]
    assert all(d is not None for d in dues)
    assert dues == sorted(dues)  # type: ignore[type-var]


def test_power_events_are_counted_over_the_last_days() -> None:
    events = [EventDay(d * DAY_S, throttled=d % 2, under_voltage=int(d > 25)) for d in range(30)]
    w = board_wear(BoardHistory("e", events=events))
    assert w.throttled_days == 4  # days 23, 25, 27, 29
    assert w.under_voltage_days == 4


hostile = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**6), 10**6))


@settings(max_examples=80, deadline=None)
@given(
    fans=st.lists(st.builds(FanDay, hostile, st.integers(-5, 30), hostile, hostile), max_size=40),
    thermal=st.lists(
        st.builds(ThermalDay, hostile, st.integers(-3, 30), st.integers(-5, 30), hostile),
        max_size=40,
    ),
    battery=st.lists(st.builds(BatteryDay, hostile, hostile), max_size=40),
)
def test_hostile_numbers_never_break_it(
    fans: list[FanDay], thermal: list[ThermalDay], battery: list[BatteryDay]
) -> None:
    h = BoardHistory("x", fans=fans, thermal=thermal, battery=battery)
    w = board_wear(h)
    for t in w.trends:
        assert math.isfinite(t.wear_pct)
        json.dumps(t.evidence())
    maintenance_queue([h])


def test_a_constant_series_has_no_trend_and_no_date() -> None:
    t = trend("c", DUST, [(d * DAY_S, 0.0) for d in range(12)], 5.0)
    assert t is not None
    assert not t.worn
    assert t.replace_before is None
