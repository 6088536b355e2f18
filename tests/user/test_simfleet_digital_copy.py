"""The dry-run's digital copy (``wrale.user.simfleet.digital_copy``) on a fleet view of two
racks: deterministic, a rack budget cut lowers the rack's draw at a cost in work or heat,
a job costs more on a hot rack than on a cool one, stopping a job frees its rack, and runs
it cannot do are refused with a message."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from wrale.fleet.brain.decisions.view import (
    BoardView,
    FleetView,
    JobSpec,
    PlacementView,
    RackView,
    Source,
)
from wrale.fleet.brain.services.dry_run_change import AddJob, SetRackBudget, StopJob
from wrale.user.simfleet.digital_copy import MAX_BOARD_SECONDS, DigitalCopy, build, check

JOB = "0" * 31 + "1"


def fleet(hot_c: float = 62.0, cool_c: float = 48.0, per_rack: int = 6) -> FleetView:
    """Rack H (hot) and rack C (cool), each board running two 25 % replicas of ``JOB``."""
    boards = []
    for rack, temp in (("H", hot_c), ("C", cool_c)):
        for i in range(per_rack):
            dev = f"{rack.lower()}{i:02d}"
            placements = tuple(
                PlacementView(f"p-{dev}-{k}", JOB, priority=50, cpu_pct=25.0) for k in range(2)
            )
            boards.append(
                BoardView(
                    dev,
                    rack_id=rack,
                    room_id="room",
                    site_id="site",
                    cpu_temp_c=temp + 0.3 * i,
                    ambient_c=temp - 30.0,
                    fan_duty_pct=40.0,
                    fan_rpm=3000.0,
                    power_w=2.7 + 4.3 * 0.5,
                    power_source=Source.MAIN,
                    battery_pct=100.0,
                    reading_age_s=3.0,
                    placements=placements,
                )
            )
    racks = (RackView("H", "room", 60.0), RackView("C", "room", 60.0))
    jobs = (JobSpec(JOB, 50, 2 * 2 * per_rack, 25.0),)
    return FleetView(tuple(boards), racks, jobs, now=1_765_000_000.0)


def rack(result: dict[str, Any], rack_id: str) -> dict[str, Any]:
    return dict(next(r for r in result["racks"] if r["rack"] == rack_id))


def test_same_seed_same_result() -> None:
    view = fleet()
    change = SetRackBudget("H", 40.0)
    first = DigitalCopy()(view, change, 3)
    assert first == DigitalCopy()(view, change, 3)
    assert first["minutes"] == 3
    assert first["boards_modelled"] == 12
    assert first["summary"].startswith("rack H budget 40 W, next 3 min:")


def test_a_rack_budget_cut_lowers_its_draw_at_a_cost() -> None:
    result = DigitalCopy()(fleet(), SetRackBudget("H", 22.0), 5)
    h = rack(result, "H")
    assert h["budget_w"] == {"without": 60.0, "with": 22.0}
    assert h["with"]["mean_draw_w"] < h["without"]["mean_draw_w"] - 2.0
    assert h["with"]["peak_draw_w"] < h["without"]["peak_draw_w"]
    cost = h["difference"]["work_done"] < 0 or h["difference"]["throttled_board_s"] > 0
    assert cost, h
    assert result["fleet"]["difference"]["work_done"] < 0
    # the other rack is untouched by the cut (nothing moved there: it is full too)
    c = rack(result, "C")
    assert c["budget_w"] == {"without": 60.0, "with": 60.0}


def _new_job(rack_id: str, view: FleetView) -> AddJob:
    devices = frozenset(b.device_id for b in view.boards if b.rack_id == rack_id)
    spec = JobSpec("dry-run-job", 50, 6, 50.0, devices=devices)
    return AddJob(spec, f"heat-{rack_id}")


def test_a_job_costs_more_on_a_hot_rack_than_on_a_cool_one() -> None:
    view = fleet(hot_c=68.0, cool_c=45.0)
    on_hot = DigitalCopy()(view, _new_job("H", view), 10)
    on_cool = DigitalCopy()(view, _new_job("C", view), 10)
    hot, cool = on_hot["fleet"]["difference"], on_cool["fleet"]["difference"]
    assert cool["work_done"] > 0
    worse = (
        hot["work_done"] < cool["work_done"]
        or hot["throttled_board_s"] > cool["throttled_board_s"]
        or hot["peak_temp_c"] > cool["peak_temp_c"]
    )
    assert worse, (on_hot["summary"], on_cool["summary"])
    assert on_cool["boards_changed"] >= 1
    assert all(b["rack"] == "C" for b in on_cool["boards"])


def test_stopping_a_job_frees_its_racks() -> None:
    result = DigitalCopy()(fleet(), StopJob(JOB), 2)
    diff = result["fleet"]["difference"]
    assert diff["work_done"] < 0
    assert rack(result, "H")["difference"]["mean_draw_w"] < -5.0
    copy = build(fleet(), StopJob(JOB))
    assert all(not s.replicas for s in copy.slots)
    assert copy.jobs == ()


def test_stale_and_offline_boards_are_left_out() -> None:
    view = fleet()
    boards = list(view.boards)
    boards[0] = replace(boards[0], reading_age_s=600.0)
    boards[1] = replace(boards[1], online=False)
    view = FleetView(tuple(boards), view.racks, view.jobs, view.now)
    result = DigitalCopy()(view, SetRackBudget("C", 50.0), 1)
    assert result["boards_modelled"] == 10
    assert result["boards_left_out"] == ["h00", "h01"]


def test_runs_it_cannot_do_are_refused_with_a_message() -> None:
    view = fleet()
    with pytest.raises(ValueError, match="minutes must be from 1 to 60"):
        check(view, SetRackBudget("H", 40.0), 0)
    with pytest.raises(ValueError, match="rack Z has no board"):
        check(view, SetRackBudget("Z", 40.0), 5)
    with pytest.raises(ValueError, match="is not running"):
        check(view, StopJob("f" * 32), 5)
    big = fleet(per_rack=MAX_BOARD_SECONDS // (2 * 60 * 60 * 2) + 1)
    with pytest.raises(ValueError, match=r"at most \d+ min for this fleet"):
        check(big, SetRackBudget("H", 40.0), 60)
    empty = FleetView((), view.racks, view.jobs)
    with pytest.raises(ValueError, match="nothing to copy"):
        check(empty, SetRackBudget("H", 22.0), 5)
