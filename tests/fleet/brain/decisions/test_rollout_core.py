"""The rollouts' pure core: waves planned from boards and racks (every board in exactly one
wave, sizes within their targets, racks capped, deterministic) and gates (the weather
cancelled, failures, offline boards, throttling, power)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wrale.fleet.brain.decisions.gates import Limits, Sample, evaluate
from wrale.fleet.brain.decisions.waves import (
    Step,
    WaveSpecError,
    parse_rate,
    parse_steps,
    plan_rate_waves,
    plan_waves,
    targets,
)

RATE = {"base_per_minute": 2, "increment_factor": 2.0, "after_succeeded": 2}

boards_st = st.dictionaries(
    st.text("abcdef0123", min_size=1, max_size=6),
    st.one_of(st.none(), st.sampled_from(["r1", "r2", "r3", "r4"])),
    max_size=40,
)
steps_st = st.lists(
    st.one_of(
        st.integers(1, 10).map(lambda c: Step(count=c)),
        st.floats(0.5, 100).map(lambda p: Step(percent=p)),
    ),
    min_size=1,
    max_size=6,
)


def _rack(boards: dict[str, str | None], d: str) -> str:
    r = boards[d]
    return r if r is not None else f"own:{d}"


@settings(max_examples=200, deadline=None)
@given(boards_st, steps_st, st.booleans(), st.one_of(st.none(), st.integers(1, 3)))
def test_every_board_in_exactly_one_wave_within_rack_caps(
    boards: dict[str, str | None], steps: list[Step], first: bool, cap: int | None
) -> None:
    waves = plan_waves(boards, steps, one_per_rack_first=first, max_per_rack=cap)
    flat = [d for w in waves for d in w]
    assert sorted(flat) == sorted(boards)
    assert all(waves)
    for i, wave in enumerate(waves):
        limit = 1 if (i == 0 and first) else cap
        if limit is not None:
            racks = [_rack(boards, d) for d in wave]
            assert max(racks.count(r) for r in racks) <= limit
    goals = [g for g in targets(steps, len(boards)) if g > 0]
    if waves:
        assert len(waves[0]) <= goals[0]
    assert waves == plan_waves(
        dict(reversed(boards.items())), steps, one_per_rack_first=first, max_per_rack=cap
    )


@given(boards_st, steps_st)
def test_without_caps_the_waves_meet_their_cumulative_targets(
    boards: dict[str, str | None], steps: list[Step]
) -> None:
    waves = plan_waves(boards, steps)
    goals = sorted({g for g in targets(steps, len(boards)) if g > 0} | {len(boards)})
    reached, sizes = 0, []
    for w in waves:
        reached += len(w)
        sizes.append(reached)
    assert sizes == [g for g in goals if g > 0] if boards else waves == []


def test_topology_aware_first_wave_one_per_rack() -> None:
    boards = {"a1": "A", "a2": "A", "a3": "A", "b1": "B", "b2": "B", "c1": None}
    waves = plan_waves(
        boards, parse_steps([{"count": 3}, {"percent": 100}]), one_per_rack_first=True
    )
    assert sorted(waves[0]) == ["a1", "b1", "c1"]
    assert sorted(waves[1]) == ["a2", "a3", "b2"]
    capped = plan_waves(boards, parse_steps([{"percent": 100}]), max_per_rack=1)
    assert [sorted(w) for w in capped] == [["a1", "b1", "c1"], ["a2", "b2"], ["a3"]]


def test_at_most_k_boards_per_power_feed_at_once() -> None:
    """Racks A and B hang on one feed: one board of the two racks per wave; C's board
    (no feed named) is not held back by it."""
    boards = {"a1": "A", "a2": "A", "b1": "B", "b2": "B", "c1": "C"}
    feeds = {"a1": "pdu-1", "a2": "pdu-1", "b1": "pdu-1", "b2": "pdu-1"}
    steps = parse_steps([{"percent": 100}])
    waves = plan_waves(boards, steps, feeds=feeds, max_per_feed=1)
    assert [sorted(w) for w in waves] == [["a1", "c1"], ["b1"], ["a2"], ["b2"]]
    two = plan_waves(boards, steps, feeds=feeds, max_per_feed=2, max_per_rack=1)
    assert [sorted(w) for w in two] == [["a1", "b1", "c1"], ["a2", "b2"]]
    rate = plan_rate_waves(boards, parse_rate(RATE), feeds=feeds, max_per_feed=1)
    assert all(sum(feeds.get(d) == "pdu-1" for d in w) <= 1 for w in rate)
    assert sorted(d for w in rate for d in w) == sorted(boards)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ("x", "waves"),
        ([], "waves"),
        ([{"count": 0}], "waves[0].count"),
        ([{"count": True}], "waves[0].count"),
        ([{"percent": 101}], "waves[0].percent"),
        ([{"percent": float("nan")}], "waves[0].percent"),
        ([{"rate": 2}], "waves[0]"),
        ([{"count": 1, "percent": 5}], "waves[0]"),
        ([None], "waves[0]"),
    ],
)
def test_hostile_wave_specs_name_their_field(raw: object, field: str) -> None:
    with pytest.raises(WaveSpecError) as err:
        parse_steps(raw)
    assert err.value.field == field


def test_weather_is_cancelled_and_only_real_heat_fails() -> None:
    before = {d: Sample(temp_c=50.0, power_w=4.0) for d in ("w1", "w2", "c1", "c2")}
    warm_day = {d: Sample(temp_c=54.0, power_w=4.0) for d in before}
    gate = evaluate(["w1", "w2"], [], before, warm_day, ["c1", "c2"], Limits(max_temp_rise_c=2))
    assert gate.passed, gate.reasons
    assert gate.values["weather_rise_c"] == 4.0
    assert gate.values["temp_rise_c"] == 0.0
    hot = {**warm_day, "w1": Sample(temp_c=60.0, power_w=4.0)}
    gate = evaluate(["w1", "w2"], [], before, hot, ["c1", "c2"], Limits(max_temp_rise_c=2))
    assert not gate.passed
    assert gate.offenders == ("w1",)
    assert gate.values["temp_rise_c"] == 6.0


def test_failures_offline_throttling_power_and_alerts() -> None:
    before = {d: Sample(temp_c=50.0, power_w=4.0, throttled=False) for d in "abcd"}
    after = {
        "a": Sample(online=False),
        "b": Sample(temp_c=50.0, power_w=6.0, throttled=True),
        "c": Sample(temp_c=50.0, power_w=4.0),
        "d": Sample(temp_c=50.0, power_w=4.0, under_voltage=True),
    }
    limits = Limits(max_failure_pct=20, max_power_rise_w=1.0, max_alerts=0)
    gate = evaluate(list("abcd"), ["c"], before, after, [], limits, alerts=1)
    assert not gate.passed
    assert gate.values["failure_pct"] == 25.0
    assert gate.values["offline"] == 1
    assert gate.values["new_throttling"] == 1
    assert gate.values["new_under_voltage"] == 1
    assert gate.values["power_rise_w"] == 2.0
    assert set(gate.offenders) == {"a", "b", "c", "d"}
    assert len(gate.reasons) == 5


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(-20, 20), min_size=1, max_size=8),
    st.lists(st.floats(-20, 20), max_size=8),
    st.floats(-10, 10),
)
def test_a_uniform_shift_of_every_board_never_fails_the_temperature_gate(
    wave_rises: list[float], control_rises: list[float], shift: float
) -> None:
    """The same weather added to every board changes no excess rise."""
    wave = [f"w{i}" for i in range(len(wave_rises))]
    control = [f"c{i}" for i in range(len(control_rises))]
    before = {d: Sample(temp_c=50.0) for d in wave + control}
    after = {d: Sample(temp_c=50.0 + r) for d, r in zip(wave, wave_rises, strict=True)}
    after |= {d: Sample(temp_c=50.0 + r) for d, r in zip(control, control_rises, strict=True)}
    shifted = {d: Sample(temp_c=(s.temp_c or 0) + shift) for d, s in after.items()}
    limits = Limits(max_temp_rise_c=3.0)
    a = evaluate(wave, [], before, after, control, limits)
    b = evaluate(wave, [], before, shifted, control, limits)
    if control:
        assert a.passed == b.passed
        assert a.offenders == b.offenders
    assert all(d in wave for d in a.offenders)
