"""The recommendations' situation analysis (pure): a rack hotter than its room at equal load,
a failed fan, a fan that wears (RPM down at equal duty over days), a room on battery with its
runtime and the jobs it proposes to stop; and for any fleet, one recommendation per (kind,
subject), bounded, ranked, with finite scores and evidence."""

from __future__ import annotations

import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fleet.brain.decisions.fleets import fleets
from wrale.fleet.brain.decisions.analysis import (
    BATTERY_RUNTIME,
    DAY_S,
    FAN_FAILED,
    FAN_WEAR,
    KINDS,
    RACK_HOT,
    STOP_JOBS,
    AnalysisPolicy,
    BoardMeans,
    FanDay,
    Trends,
    analyse,
    decided_kinds,
    markedly_worse,
    severity,
)
from wrale.fleet.brain.decisions.view import BoardView, FleetView, PlacementView, RackView, Source

NOW = 1_000_000.0


def _board(dev: str, rack: str, temp: float, watts: float, **kw: object) -> BoardView:
    base: dict[str, object] = {
        "rack_id": rack,
        "room_id": "room-a",
        "cpu_temp_c": temp,
        "power_w": watts,
        "power_source": Source.MAIN,
        "reading_age_s": 5.0,
    }
    base.update(kw)
    return BoardView(dev, **base)  # type: ignore[arg-type]


def _room(a_temp: float, a_watts: float = 4.0, b_watts: float = 4.0) -> FleetView:
    boards = (
        _board("a1", "ra", a_temp, a_watts),
        _board("a2", "ra", a_temp + 1.0, a_watts),
        _board("b1", "rb", 50.0, b_watts),
        _board("b2", "rb", 51.0, b_watts),
        _board("c1", "rc", 50.0, b_watts),
        _board("c2", "rc", 51.0, b_watts),
    )
    racks = tuple(RackView(r, room_id="room-a") for r in ("ra", "rb", "rc"))
    return FleetView(boards, racks, now=NOW)


NAMES = {"ra": "A2", "room-a": "Room A", "d1": "demo-a1-u05"}


def test_a_rack_hotter_than_its_room_at_equal_load_is_named_with_its_figures() -> None:
    recs = analyse(_room(58.0), Trends(names=NAMES))
    assert [(r.kind, r.subject) for r in recs] == [(RACK_HOT, "ra")]
    r = recs[0]
    assert r.title == "Rack A2 runs 8 °C above the room at equal load: check its airflow"
    assert r.evidence["delta_c"] == 8.0
    assert (r.evidence["rack_temp_c"], r.evidence["room_temp_c"]) == (58.5, 50.5)
    assert (r.evidence["boards"], r.evidence["room_boards"]) == (2, 4)
    assert r.action is None
    assert "airflow" in r.advice


def test_a_hot_rack_that_works_harder_or_a_small_difference_is_not_one() -> None:
    assert analyse(_room(58.0, a_watts=6.0)) == []  # it draws 50 % more: that explains it
    assert analyse(_room(53.0)) == []  # 3 °C: within the threshold
    # recent means outweigh the single latest readings
    means = {d: BoardMeans(50.0, 4.0) for d in ("a1", "a2")}
    assert analyse(_room(58.0), Trends(means=means)) == []


def test_a_rack_alone_in_its_room_or_with_stale_boards_is_not_compared() -> None:
    view = _room(58.0)
    stale = tuple(
        BoardView(b.device_id, rack_id=b.rack_id, room_id=b.room_id, cpu_temp_c=b.cpu_temp_c,
                  power_w=b.power_w, reading_age_s=600.0)
        if b.rack_id != "ra" else b
        for b in view.boards
    )  # fmt: skip
    assert analyse(FleetView(stale, view.racks, now=NOW)) == []


def test_a_failed_fan_is_a_high_scored_recommendation_without_action() -> None:
    b = _board("d1", "ra", 70.0, 5.0, fan_duty_pct=80.0, fan_rpm=0.0, fan_failed=True)
    recs = analyse(FleetView((b,), now=NOW), Trends(names=NAMES))
    assert [(r.kind, r.subject, r.action) for r in recs] == [(FAN_FAILED, "d1", None)]
    assert recs[0].title == "demo-a1-u05: fan driven at 80 % but turning at 0 RPM: replace it"
    assert severity(recs[0].score) == "critical"


def _days(before_rpm: float, now_rpm: float, duty_now: float = 50.0) -> list[FanDay]:
    start = NOW - 7 * DAY_S
    return [
        FanDay(start, 20, 50.0, before_rpm),
        FanDay(start + 3 * DAY_S, 20, 50.0, (before_rpm + now_rpm) / 2),
        FanDay(start + 6 * DAY_S, 18, duty_now, now_rpm),
    ]


def test_a_fan_whose_rpm_fell_at_equal_duty_over_days_wears() -> None:
    b = _board("d1", "ra", 50.0, 4.0, fan_duty_pct=50.0, fan_rpm=2100.0)
    view = FleetView((b,), now=NOW)
    recs = analyse(view, Trends(fans={"d1": _days(3000.0, 2100.0)}, names=NAMES))
    assert [(r.kind, r.subject) for r in recs] == [(FAN_WEAR, "d1")]
    assert recs[0].title == "demo-a1-u05: fan RPM fell 30 % at equal duty over 7 days"
    assert recs[0].evidence["rpm_before"] == 3000
    assert recs[0].evidence["rpm_now"] == 2100
    # a smaller drop, a different duty, too few hours or no history: nothing
    assert analyse(view, Trends(fans={"d1": _days(3000.0, 2700.0)})) == []
    assert analyse(view, Trends(fans={"d1": _days(3000.0, 2100.0, duty_now=30.0)})) == []
    few = [FanDay(d.day_start, 2, d.duty_pct, d.rpm) for d in _days(3000.0, 2100.0)]
    assert analyse(view, Trends(fans={"d1": few})) == []
    assert analyse(view, Trends(fans={"d1": []})) == []


def test_fan_wear_is_decided_only_when_the_fans_were_read() -> None:
    assert FAN_WEAR not in decided_kinds(Trends())
    assert decided_kinds(Trends(fans={})) == frozenset(KINDS)


def _on_battery(dev: str, pct: float, *placements: PlacementView) -> BoardView:
    return _board(
        dev, "ra", 50.0, 4.0, power_source=Source.BATTERY, battery_pct=pct, placements=placements
    )


def test_a_room_on_battery_says_its_runtime_and_proposes_stopping_low_priority_jobs() -> None:
    low, high = PlacementView("p1", "job-low", priority=20), PlacementView("p2", "job-hi", 80)
    boards = (_on_battery("d1", 28.0, low, high), _on_battery("d2", 60.0, low))
    view = FleetView(boards, (RackView("ra", room_id="room-a"),), now=NOW)
    trends = Trends(battery_drain={"d1": -2.0, "d2": -1.0}, names=NAMES)
    recs = analyse(view, trends)
    assert [(r.kind, r.subject) for r in recs] == [(BATTERY_RUNTIME, "room-a")]
    r = recs[0]
    assert r.title == (
        "Room A on battery: 14 min of runtime left at current draw; stop priority < 50 jobs?"
    )
    assert r.action == {"kind": STOP_JOBS, "job_ids": ["job-low"], "below_priority": 50}
    assert (r.evidence["runtime_min"], r.evidence["boards_on_battery"]) == (14.0, 2)
    assert severity(r.score) == "critical"
    # not draining measurably: runtime unknown; no low-priority work: no action
    quiet = analyse(FleetView((_on_battery("d3", 70.0, high),), now=NOW), Trends(names=NAMES))
    assert quiet[0].action is None
    assert quiet[0].title == (
        "Room A on battery: runtime unknown (battery at 70 %); no jobs below priority 50 to stop"
    )


def test_ranked_by_score_and_bounded() -> None:
    failed = [
        _board(f"d{i}", "ra", 70.0, 5.0, fan_duty_pct=60.0, fan_rpm=0.0, fan_failed=True)
        for i in range(10)
    ]
    boards = (*failed, _on_battery("x", 5.0))
    recs = analyse(
        FleetView(boards, now=NOW),
        Trends(battery_drain={"x": -1.0}),
        AnalysisPolicy(max_recommendations=4),
    )
    assert len(recs) == 4
    assert recs[0].kind == BATTERY_RUNTIME  # 5 min left outranks a failed fan
    assert [r.subject for r in recs[1:]] == ["d0", "d1", "d2"]


def test_markedly_worse() -> None:
    assert markedly_worse(40.0, 60.0)
    assert not markedly_worse(40.0, 50.0)


@settings(max_examples=150, deadline=None)
@given(
    fleets(now=NOW),
    st.dictionaries(
        st.sampled_from([f"d{i:02d}" for i in range(14)]),
        st.floats(allow_nan=True, allow_infinity=True),
        max_size=14,
    ),
    st.integers(0, 6),
)
def test_for_any_fleet_one_per_kind_and_subject_bounded_ranked_and_finite(
    view: FleetView, drain: dict[str, float], cap: int
) -> None:
    fans = {
        dev: [FanDay(NOW - 7 * DAY_S, 10, 50.0, 3000.0), FanDay(NOW, 10, 50.0, abs(v) % 4000)]
        for dev, v in drain.items()
        if math.isfinite(v)
    }
    trends = Trends(fans=fans, battery_drain=drain)
    recs = analyse(view, trends, AnalysisPolicy(max_recommendations=cap))
    assert len(recs) <= cap
    assert len({r.key for r in recs}) == len(recs)
    assert [r.score for r in recs] == sorted((r.score for r in recs), reverse=True)
    for r in recs:
        assert r.kind in KINDS
        assert math.isfinite(r.score)
        assert 0 <= r.score <= 100
        assert r.title
        json.dumps(r.evidence, allow_nan=False)  # storable as it is
        if r.action is not None:
            assert r.action["kind"] == STOP_JOBS
            assert r.action["job_ids"]
    again = analyse(view, trends, AnalysisPolicy(max_recommendations=cap))
    assert again == recs  # deterministic
