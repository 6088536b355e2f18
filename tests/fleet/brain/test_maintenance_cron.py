"""Maintenance windows, pure: the strict cron parser (hostile expressions named by field),
start times in a time zone across daylight-saving changes, the next opening never in the
past (property), and the conditions on a board's readings (stale or missing: not met)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wrale.fleet.brain.decisions.view import STALE_AFTER_S
from wrale.fleet.brain.services.maintenance import cron
from wrale.fleet.brain.services.maintenance.conditions import (
    Rack,
    Readings,
    Window,
    decide,
    evaluate,
    failing_conditions,
)

BERLIN = ZoneInfo("Europe/Berlin")


def _ts(y: int, mo: int, d: int, h: int, mi: int, tz: ZoneInfo = BERLIN) -> float:
    return datetime(y, mo, d, h, mi, tzinfo=tz).timestamp()


@pytest.mark.parametrize(
    ("expr", "field"),
    [
        ("* * * *", "five fields"),
        ("60 * * * *", "minute"),
        ("* 24 * * *", "hour"),
        ("* * 0 * *", "day of month"),
        ("* * * 13 *", "month"),
        ("* * * * 8", "day of week"),
        ("5-1 * * * *", "backwards"),
        ("*/0 * * * *", "minute"),
        ("1,,2 * * * *", "empty"),
        ("a * * * *", "minute"),
        ("-1 * * * *", "minute"),
        ("* * * * MON", "day of week"),
        ("1/ * * * *", "minute"),
        ("² * * * *", "minute"),
        ("٣ * * * *", "minute"),
        ("0 0 * * *" + " " * 200, "characters"),
    ],
)
def test_hostile_expressions_are_refused_naming_the_field(expr: str, field: str) -> None:
    with pytest.raises(cron.CronError, match=field):
        cron.parse(expr)


def test_fields_lists_ranges_and_steps() -> None:
    c = cron.parse("0,30 1-3 * * 1-5")
    assert c.minutes == {0, 30}
    assert c.hours == {1, 2, 3}
    assert c.weekdays == {0, 1, 2, 3, 4}  # Monday to Friday
    assert cron.parse("*/15 * * * *").minutes == {0, 15, 30, 45}
    assert cron.parse("10/20 * * * *").minutes == {10, 30, 50}
    assert cron.parse("0 0 * * 7").weekdays == cron.parse("0 0 * * 0").weekdays == {6}


def test_unknown_time_zones_are_refused() -> None:
    for name in ("Mars/Olympus", "", "../etc/passwd", "/etc/localtime"):
        with pytest.raises(cron.CronError, match="time zone"):
            cron.zone(name)


def test_next_start_in_the_windows_zone() -> None:
    c = cron.parse("0 2 * * 1")  # Mondays 02:00
    now = _ts(2026, 12, 6, 12, 0)  # a Sunday
    nxt = cron.next_start(c, BERLIN, now)
    assert nxt == _ts(2026, 12, 7, 2, 0)
    assert cron.local_text(nxt, BERLIN) == "2026-12-07 02:00 Europe/Berlin"


def test_dom_and_dow_both_restricted_match_either() -> None:
    c = cron.parse("0 3 1 * 0")  # the 1st of the month or a Sunday
    assert c.day_matches(datetime(2026, 12, 1).date())  # a Tuesday, the 1st
    assert c.day_matches(datetime(2026, 12, 6).date())  # a Sunday
    assert not c.day_matches(datetime(2026, 12, 8).date())


def test_daylight_saving_changes_in_berlin() -> None:
    daily = cron.parse("30 2 * * *")
    # 29 March 2026: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist: 03:30 CEST.
    spring = cron.next_start(daily, BERLIN, _ts(2026, 3, 28, 12, 0))
    assert spring == datetime(2026, 3, 29, 1, 30, tzinfo=UTC).timestamp()
    # 25 October 2026: 03:00 CEST falls back to 02:00 CET; 02:30 happens at its first time.
    autumn = cron.next_start(daily, BERLIN, _ts(2026, 10, 24, 12, 0))
    assert autumn == datetime(2026, 10, 25, 0, 30, tzinfo=UTC).timestamp()
    # The next day is an ordinary 02:30 CET, 24 h + 1 h later.
    after = cron.next_start(daily, BERLIN, autumn)
    assert after == datetime(2026, 10, 26, 1, 30, tzinfo=UTC).timestamp()


def test_a_day_that_never_comes() -> None:
    assert cron.next_start(cron.parse("0 0 31 2 *"), BERLIN, _ts(2026, 1, 1, 0, 0)) is None
    leap = cron.next_start(cron.parse("0 0 29 2 *"), BERLIN, _ts(2026, 3, 1, 0, 0))
    assert leap == _ts(2028, 2, 29, 0, 0)


_field = st.one_of(
    st.just("*"),
    st.integers(0, 59).map(str),
    st.integers(1, 30).map(lambda n: f"*/{n}"),
)


@settings(max_examples=150, deadline=None)
@given(
    minute=_field,
    hour=st.one_of(st.just("*"), st.integers(0, 23).map(str)),
    dow=st.one_of(st.just("*"), st.integers(0, 7).map(str)),
    at=st.floats(1.7e9, 1.9e9),
    tz=st.sampled_from(["Europe/Berlin", "UTC", "America/New_York", "Australia/Lord_Howe"]),
)
def test_next_open_is_never_in_the_past(
    minute: str, hour: str, dow: str, at: float, tz: str
) -> None:
    zone = ZoneInfo(tz)
    parsed = cron.parse(f"{minute} {hour} * * {dow}")
    nxt = cron.next_start(parsed, zone, at)
    assert nxt is not None
    assert nxt > at
    assert nxt - at <= 8 * 86_400 + 3600  # some day of the coming week matches
    # a window of one hour from the previous start is open exactly when that start is
    last = cron.last_start(parsed, zone, at, 3600.0)
    assert last is None or at - 3600.0 <= last <= at


def _window(conditions: dict[str, object], expr: str = "0 2 * * *") -> Window:
    return Window("w1", "nightly", expr, 3600.0, "Europe/Berlin", conditions)


NOW = _ts(2026, 12, 7, 2, 30)  # inside the nightly window


def test_conditions_battery_floor_on_battery_ambient_case_and_rack() -> None:
    fresh = NOW - 5
    good = {
        "on_battery": (fresh, 0.0),
        "battery_pct": (fresh, 80.0),
        "ambient_temp_c": (fresh, 24.0),
        "case_open": (fresh, 0.0),
    }
    every = {
        "not_on_battery": True,
        "battery_min_pct": 50.0,
        "ambient_max_c": 30.0,
        "case_closed": True,
        "rack_under_budget": True,
    }
    ok_rack = Rack("rack-a", 40.0, 20.0)
    assert failing_conditions(every, Readings(good, ok_rack), NOW) == []
    bad = {
        "on_battery": (fresh, 1.0),
        "battery_pct": (fresh, 20.0),
        "ambient_temp_c": (fresh, 35.0),
        "case_open": (fresh, 1.0),
    }
    got = failing_conditions(every, Readings(bad, Rack("rack-a", 40.0, 45.0)), NOW)
    assert got == [
        "on battery",
        "battery 20% below the floor 50%",
        "ambient 35.0 °C not below 30 °C",
        "case open",
        "rack rack-a at 45 W of its 40 W budget",
    ]


def test_stale_or_missing_readings_are_unknown_and_not_met() -> None:
    old = NOW - STALE_AFTER_S - 1
    stale = dict.fromkeys(("on_battery", "case_open"), (old, 0.0)) | {
        "battery_pct": (old, 90.0),
        "ambient_temp_c": (old, 20.0),
    }
    every = {
        "not_on_battery": True,
        "battery_min_pct": 50,
        "ambient_max_c": 30,
        "case_closed": True,
    }
    for readings in (Readings(stale), Readings({})):
        got = failing_conditions(every, readings, NOW)
        assert len(got) == 4, got
        assert all("unknown" in g for g in got), got
    rack = {"rack_under_budget": True}
    assert failing_conditions(rack, Readings({}, None), NOW) == [
        "rack budget unknown (the board is in no rack)"
    ]
    assert failing_conditions(rack, Readings({}, Rack("r", 40, None)), NOW) == [
        "rack r draw unknown (no fresh power_w reading)"
    ]
    assert failing_conditions(rack, Readings({}, Rack("r", None, None)), NOW) == []


def test_decide_names_the_next_opening_or_the_failing_conditions() -> None:
    assert decide([]) == (True, None)
    closed = evaluate(_window({}), Readings({}), _ts(2026, 12, 7, 4, 0))
    assert not closed.open
    assert decide([closed]) == (False, "next window opens 2026-12-08 02:00 Europe/Berlin")
    open_bad = evaluate(
        _window({"not_on_battery": True}), Readings({"on_battery": (NOW, 1.0)}), NOW
    )
    assert open_bad.open
    assert open_bad.closes_at == _ts(2026, 12, 7, 3, 0)
    assert decide([open_bad]) == (False, "window 'nightly' open but on battery")
    open_ok = evaluate(_window({}), Readings({}), NOW)
    assert decide([open_bad, open_ok]) == (True, None)


def _transitions() -> list[float]:
    """Berlin's clock changes 2026-2030 (last Sundays of March and October, 01:00 UTC)."""
    out = []
    for year in range(2026, 2031):
        for month in (3, 10):
            last = max(
                d for d in range(25, 32) if datetime(year, month, d, tzinfo=UTC).weekday() == 6
            )
            out.append(datetime(year, month, last, 1, 0, tzinfo=UTC).timestamp())
    return out


@settings(max_examples=200, deadline=None)
@given(
    change=st.sampled_from(_transitions()),
    offset=st.floats(-2 * 86_400, 2 * 86_400),
    hour=st.integers(0, 4),
    minute=st.sampled_from([0, 15, 30, 59]),
)
def test_berlin_dst_next_open_is_never_in_the_past(
    change: float, offset: float, hour: int, minute: int
) -> None:
    daily = cron.parse(f"{minute} {hour} * * *")
    at = change + offset
    nxt = cron.next_start(daily, BERLIN, at)
    assert nxt is not None
    assert at < nxt <= at + 86_400 + 3600  # at most a day (and the lost or gained hour)
    local = datetime.fromtimestamp(nxt, BERLIN)
    # the wall time asked for, or one hour later when it fell in the spring gap
    assert (local.hour, local.minute) in {(hour, minute), (hour + 1, minute)}
    last = cron.last_start(daily, BERLIN, at, 2 * 3600.0)
    assert last is None or at - 2 * 3600.0 <= last <= at
