"""Maintenance rule evaluation, pure: a bound held for its duration over 1-minute means,
gaps that break a run and gaps that do not, stale data, and all/any as three-valued logic."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from wrale.fleet.brain.services.maintenance.rules_eval import (
    BUCKET_S,
    FRESH_S,
    MAX_GAP_S,
    Bound,
    Combo,
    Truth,
    build,
    describe,
    judge,
    judge_bound,
    latest_values,
    lookback_s,
)

NOW = 1_800_000_000.0
NEWEST = NOW - NOW % 60 - 60  # the last whole minute


def minutes(value: float, count: int, *, end: float = NEWEST) -> list[tuple[float, float]]:
    """``count`` minutes of ``value``, the newest starting at ``end``."""
    return [(end - i * BUCKET_S, value) for i in reversed(range(count))]


HOT = Bound("cpu_temp_c", ">", 75.0, 7200.0)  # cpu_temp_c > 75 for 2h


def test_a_bound_holds_once_it_has_held_for_its_duration() -> None:
    assert judge_bound(HOT, minutes(80.0, 120), NOW) is Truth.HOLDS
    assert judge_bound(HOT, minutes(80.0, 119), NOW) is Truth.PENDING
    assert judge_bound(HOT, minutes(80.0, 60) + minutes(70.0, 1, end=NEWEST + 60), NOW + 60) is (
        Truth.FALSE
    )


def test_without_a_duration_the_newest_minute_decides() -> None:
    now_hot = Bound("fan_rpm", "<", 1500.0)
    assert judge_bound(now_hot, minutes(1200.0, 1), NOW) is Truth.HOLDS
    assert judge_bound(now_hot, minutes(1600.0, 1), NOW) is Truth.FALSE


def test_one_minute_outside_the_bound_restarts_the_run() -> None:
    series = minutes(80.0, 200)
    series[150] = (series[150][0], 74.0)  # 49 minutes ago it was cool for a minute
    assert judge_bound(HOT, series, NOW) is Truth.PENDING


def test_short_gaps_are_bridged_and_long_gaps_break_the_run() -> None:
    series = minutes(80.0, 150)
    short = [p for i, p in enumerate(series) if not 60 <= i < 64]  # 4 minutes missing
    assert judge_bound(HOT, short, NOW) is Truth.HOLDS
    gap = int(MAX_GAP_S // BUCKET_S) + 1
    long = [p for i, p in enumerate(series) if not 60 <= i < 60 + gap]
    assert judge_bound(HOT, long, NOW) is Truth.PENDING


def test_without_fresh_data_nothing_is_known() -> None:
    assert judge_bound(HOT, [], NOW) is Truth.UNKNOWN
    stale_end = NEWEST - FRESH_S - BUCKET_S
    assert judge_bound(HOT, minutes(80.0, 300, end=stale_end), NOW) is Truth.UNKNOWN
    assert judge_bound(HOT, [(NEWEST, float("nan"))], NOW) is Truth.UNKNOWN
    future = [(NOW + 600, 90.0)]  # a clock ahead is not a reading yet
    assert judge_bound(HOT, future, NOW) is Truth.UNKNOWN


def test_all_and_any_combine_three_valued() -> None:
    fan = Bound("fan_rpm", "<", 1500.0, 1800.0)  # fan_rpm < 1500 for 30m
    both = Combo("all", (HOT, fan))
    either = Combo("any", (HOT, fan))
    hot, slow = minutes(80.0, 130), minutes(1200.0, 40)
    assert judge(both, {"cpu_temp_c": hot, "fan_rpm": slow}, NOW) is Truth.HOLDS
    assert judge(both, {"cpu_temp_c": hot, "fan_rpm": minutes(2000.0, 40)}, NOW) is Truth.FALSE
    assert judge(both, {"cpu_temp_c": hot}, NOW) is Truth.UNKNOWN  # the fan may be slow
    assert judge(both, {"cpu_temp_c": minutes(70.0, 5)}, NOW) is Truth.FALSE  # cool: no
    assert judge(both, {"cpu_temp_c": minutes(80.0, 5), "fan_rpm": slow}, NOW) is Truth.PENDING
    assert judge(either, {"cpu_temp_c": hot}, NOW) is Truth.HOLDS
    assert judge(either, {"cpu_temp_c": minutes(70.0, 5)}, NOW) is Truth.UNKNOWN
    cool = {"cpu_temp_c": minutes(70.0, 5), "fan_rpm": minutes(2000.0, 5)}
    assert judge(either, cool, NOW) is Truth.FALSE
    nested = Combo("all", (Bound("battery_pct", "<", 30.0), either))
    assert judge(nested, {"battery_pct": minutes(20.0, 1), **cool}, NOW) is Truth.FALSE
    assert judge(nested, {"battery_pct": minutes(20.0, 1), "fan_rpm": slow}, NOW) is Truth.HOLDS


def test_a_stored_tree_builds_describes_and_reads_back() -> None:
    tree = {
        "any": [
            {"metric": "cpu_temp_c", "op": ">", "value": 75.0, "for_s": 7200.0},
            {"all": [{"metric": "fan_rpm", "op": "<", "value": 1500.0, "for_s": 1800.0}]},
        ]
    }
    expr = build(tree)
    assert describe(expr) == "cpu_temp_c > 75 for 7200s or (fan_rpm < 1500 for 1800s)"
    assert lookback_s(expr) >= 7200.0 + FRESH_S
    got = latest_values(expr, {"cpu_temp_c": minutes(80.0, 3), "fan_rpm": [(NEWEST, 1400.0)]})
    assert got == {"cpu_temp_c": 80.0, "fan_rpm": 1400.0}


TRUTHS = st.sampled_from(list(Truth))
SERIES = {
    Truth.HOLDS: minutes(80.0, 130),
    Truth.PENDING: minutes(80.0, 10),
    Truth.FALSE: minutes(70.0, 10),
    Truth.UNKNOWN: [],
}


@given(st.lists(TRUTHS, min_size=1, max_size=5))
def test_all_and_any_agree_with_their_parts(truths: list[Truth]) -> None:
    """``all`` holds only when every part holds and is false when one is; ``any`` holds
    when one part holds and is false only when every part is."""
    parts = tuple(Bound(f"m{i}_c", ">", 75.0, 7200.0) for i in range(len(truths)))
    series = {f"m{i}_c": SERIES[t] for i, t in enumerate(truths)}
    for i, t in enumerate(truths):
        assert judge(parts[i], series, NOW) is t
    every = judge(Combo("all", parts), series, NOW)
    some = judge(Combo("any", parts), series, NOW)
    assert (every is Truth.HOLDS) == all(t is Truth.HOLDS for t in truths)
    assert (every is Truth.FALSE) == (Truth.FALSE in truths)
    assert (some is Truth.HOLDS) == (Truth.HOLDS in truths)
    assert (some is Truth.FALSE) == all(t is Truth.FALSE for t in truths)
    assert judge(Combo("all", parts[:1]), series, NOW) is truths[0]
    assert judge(Combo("any", parts[:1]), series, NOW) is truths[0]
