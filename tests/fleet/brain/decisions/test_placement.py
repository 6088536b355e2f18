"""Placement: whatever the fleet, no strategy picks an ineligible board; the physical
strategy prefers thermal and power headroom and spreads across racks; spread takes the
boards in turn."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fleet.brain.decisions.fleets import fleets, jobs
from wrale.fleet.brain.decisions.placement import place
from wrale.fleet.brain.decisions.view import (
    BoardView,
    FleetView,
    JobSpec,
    PlacementView,
    RackView,
    Source,
)


@settings(max_examples=200, deadline=None)
@given(fleets(), jobs(), st.integers(0, 10))
def test_no_strategy_picks_an_ineligible_board(view: FleetView, job: JobSpec, need: int) -> None:
    chosen = place(job, need, view)
    assert len(chosen) <= max(0, need)
    devices = [a.device_id for a in chosen]
    assert len(set(devices)) == len(devices), "one replica of a job per board"
    per_rack: dict[str | None, int] = {}
    for a in chosen:
        board = view.board(a.device_id)
        assert board is not None
        assert board.online
        assert board.mode != "safe"
        assert not board.lockdown
        if not job.allow_battery:
            assert board.known_source is not None, "power source unknown counts as battery"
            assert board.known_source is not Source.BATTERY
        assert all(p.job_id != job.id for p in board.placements)
        assert board.cpu_reserved_pct + job.cpu_pct <= 100.0
        per_rack[board.rack_id] = per_rack.get(board.rack_id, 0) + 1
        assert a.reason
        assert a.rack_id == board.rack_id
    if job.max_per_rack is not None:
        for rack_id, n in per_rack.items():
            if rack_id is not None:
                assert n <= job.max_per_rack  # the fleet's boards run no "jnew" yet
    if job.strategy == "physical":
        for a in chosen:
            board = view.board(a.device_id)
            assert board is not None
            assert board.fresh
            assert not board.fan_failed
            assert not board.throttled


def pi(dev: str, rack: str, temp: float, air: float, **kw: Any) -> BoardView:
    base = BoardView(
        dev,
        rack_id=rack,
        cpu_temp_c=temp,
        temp_trend_c_per_min=0.0,
        ambient_c=air,
        ambient_trend_c_per_min=0.0,
        fan_duty_pct=30.0,
        power_w=3.0,
        power_source=Source.MAIN,
        reading_age_s=5.0,
    )
    return replace(base, **kw)


def test_physical_prefers_the_cool_rack_and_spreads_across_racks() -> None:
    boards = (
        pi("hot1", "A", 68.0, 38.0),
        pi("hot2", "A", 67.0, 38.0),
        pi("cool1", "B", 45.0, 24.0),
        pi("cool2", "B", 46.0, 24.0),
        pi("mid1", "C", 47.0, 25.0),
    )
    view = FleetView(boards, (RackView("A"), RackView("B"), RackView("C")))
    first = place(JobSpec("j", cpu_pct=50), 1, view)
    assert [a.device_id for a in first] == ["cool1"]
    assert "physical" in first[0].reason
    assert first[0].inputs["predicted_c"] is not None
    two = place(JobSpec("j", cpu_pct=50), 2, view)
    # cool2 has 1 °C more headroom than mid1, but a replica of the job is already in B
    assert {a.rack_id for a in two} == {"B", "C"}


def test_physical_leaves_out_boards_heading_for_throttling() -> None:
    heating = pi("heating", "A", 70.0, 30.0, temp_trend_c_per_min=3.0, ambient_trend_c_per_min=2.0)
    view = FleetView((heating, pi("ok", "B", 60.0, 30.0)))
    assert [a.device_id for a in place(JobSpec("j"), 2, view)] == ["ok"]


def test_physical_respects_the_rack_budget() -> None:
    busy = pi("full", "A", 40.0, 25.0, power_w=6.8)
    view = FleetView(
        (busy, pi("b", "A", 40.0, 25.0, power_w=6.8), pi("c", "B", 60.0, 30.0)),
        (RackView("A", budget_w=14.0), RackView("B", budget_w=20.0)),
    )
    assert [a.device_id for a in place(JobSpec("j", cpu_pct=25), 3, view)] == ["c"]


def test_battery_only_when_the_job_allows_it() -> None:
    view = FleetView((pi("ups", "A", 40.0, 25.0, power_source=Source.BATTERY),))
    assert place(JobSpec("j"), 1, view) == []
    allowed = place(JobSpec("j", allow_battery=True), 1, view)
    assert [a.device_id for a in allowed] == ["ups"]


def test_stale_readings_are_unknown() -> None:
    view = FleetView((pi("quiet", "A", 40.0, 25.0, reading_age_s=3600.0),))
    assert place(JobSpec("j", allow_battery=True), 1, view) == []
    spread = place(JobSpec("j", allow_battery=True, strategy="spread"), 1, view)
    assert [a.device_id for a in spread] == ["quiet"], "spread is blind to readings"


def test_spread_takes_boards_in_turn_blind_to_heat() -> None:
    busy = PlacementView("p", "other", cpu_pct=25)
    boards = (
        pi("a", "A", 84.0, 40.0, placements=(busy,)),
        pi("b", "A", 84.0, 40.0, throttled=True),
        pi("c", "B", 40.0, 20.0),
    )
    chosen = place(JobSpec("j", strategy="spread"), 3, FleetView(boards))
    assert [a.device_id for a in chosen] == ["b", "c", "a"]


def test_max_per_rack_and_cpu_room() -> None:
    full = PlacementView("p", "other", cpu_pct=100)
    boards = (
        pi("a1", "A", 40.0, 20.0),
        pi("a2", "A", 40.0, 20.0),
        pi("b1", "B", 50.0, 20.0, placements=(full,)),
    )
    chosen = place(JobSpec("j", max_per_rack=1), 3, FleetView(boards))
    assert [a.device_id for a in chosen] == ["a1"]
