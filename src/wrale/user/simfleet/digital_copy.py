"""The dry-run's digital copy of the fleet (``docs/dry-run.md``): simulated boards seeded
from a fleet view (temperature, air, fan, load, power source, rack budgets, placements),
run for N simulated minutes under the brain's decisions with and without a change, and
compared (``digital_copy_result``). ``DigitalCopy`` is the brain's ``DryRunner``, wired by
the entry point; it blocks (CPU only, no sleeping, no I/O) and keeps no state between runs.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, replace
from typing import Any

from wrale.fleet.brain.decisions.view import BoardView, FleetView, JobSpec, PlacementView
from wrale.fleet.brain.services.dry_run_change import (
    MAX_MINUTES,
    MIN_MINUTES,
    AddJob,
    Change,
    SetRackBudget,
    StopJob,
)
from wrale.metal.hw.base import Fault, FaultKind
from wrale.metal.hw.sim import SimBoard
from wrale.metal.hw.sim.board import STOCK_IDLE_AIRFLOW
from wrale.metal.hw.sim.thermal import ACTIVE_COOLER, CPU_MAX_W, IDLE_W, demand_w
from wrale.shared.clock import FakeClock
from wrale.shared.config import SimSettings
from wrale.user.simfleet.digital_copy_result import compare
from wrale.user.simfleet.room_sim import PERIOD_S, Replica, RoomSim, Slot

# Both runs together step at most this many board-seconds (about three minutes of one
# core): 2000 boards for 16 minutes, 500 boards for the full hour.
MAX_BOARD_SECONDS = 4_000_000
AIR_MIN_C, AIR_MAX_C = -40.0, 80.0  # what a simulated board's air may be
NO_RACK = ""  # the copy's rack of unracked boards (the view's rack stays None)


@dataclass(frozen=True, slots=True)
class Seed:
    """What a board starts from in the copy."""

    air_c: float  # fitted: its present temperature is its steady state at this air
    job_load_pct: float
    background_load_pct: float


def job_load_pct(b: BoardView) -> float:
    return min(100.0, sum(p.cpu_limit_pct for p in b.placements if not p.starting))


def seed_of(b: BoardView, temp_c: float) -> Seed:
    """The board's loads (its placements' CPU; the rest of its measured draw as a
    background load) and the air at which the present load, at the fan's idle airflow,
    settles at its present temperature."""
    jobs = job_load_pct(b)
    background = 0.0
    watts = b.known_power_w
    if watts is not None:
        measured = (watts - IDLE_W) / CPU_MAX_W * 100.0
        background = min(100.0 - jobs, max(0.0, measured - jobs))
    heat = demand_w(jobs + background, 100.0)
    rise = ACTIVE_COOLER.steady_c(0.0, heat, STOCK_IDLE_AIRFLOW)[0]
    air = min(AIR_MAX_C, max(AIR_MIN_C, temp_c - rise))
    return Seed(air, jobs, background)


def _board(b: BoardView, seed: Seed, clock: FakeClock) -> SimBoard:
    battery = b.battery_pct if b.battery_pct is not None and math.isfinite(b.battery_pct) else 100
    settings = SimSettings(
        seed=zlib.crc32(b.device_id.encode()),
        ambient_c=seed.air_c,
        load_pct=seed.job_load_pct + seed.background_load_pct,  # the die's heat now
        battery_pct=min(100.0, max(0.0, float(battery))),
        ambient_sensor=True,
    )
    board = SimBoard(settings, name=b.device_id, clock=clock)
    board.set_load(seed.background_load_pct)
    board.set_job_load(seed.job_load_pct)
    if b.fan_failed:
        board.inject_fault(Fault(FaultKind.FAN_FAILURE, {"mode": "stalled"}))
    if b.on_battery:  # for the whole run: the copy knows nothing of when mains return
        board.inject_fault(Fault(FaultKind.MAIN_POWER_LOSS))
    return board


def modelled(b: BoardView) -> bool:
    """Boards the copy simulates: online with a fresh temperature reading."""
    return b.online and b.known_temp_c is not None


def _job_of(view: FleetView, job_id: str, p: PlacementView) -> JobSpec:
    job = view.job(job_id)
    if job is not None:
        return job
    return JobSpec(job_id, p.priority, 0, p.cpu_pct, p.watts, p.restartable)


def build(view: FleetView, change: Change | None) -> RoomSim:
    """The copy of ``view`` (with ``change`` applied at its start), ready to run."""
    clock = FakeClock()
    jobs = list(view.jobs)
    racks = list(view.racks)
    stopped = change.job_id if isinstance(change, StopJob) else None
    if stopped is not None:
        jobs = [j for j in jobs if j.id != stopped]
    if isinstance(change, SetRackBudget):
        racks = [replace(r, budget_w=change.watts) if r.id == change.rack_id else r for r in racks]
    if isinstance(change, AddJob):
        jobs.append(change.job)
    racks = [replace(r, draw_w=None) for r in racks]  # the copy measures its own draw
    slots: list[Slot] = []
    for b in view.boards:
        temp = b.known_temp_c
        if not modelled(b) or temp is None:
            continue
        seed = seed_of(b, temp)
        template = replace(b, placements=(), reading_age_s=0.0)
        slot = Slot(b.device_id, b.rack_id or NO_RACK, seed.air_c, _board(b, seed, clock), template)
        slot.brain_cap = b.freq_cap_pct
        for p in b.placements:
            if p.job_id == stopped:
                continue
            job = _job_of(view, p.job_id, p)
            runs_from = float(PERIOD_S) if p.starting else 0.0
            slot.replicas[p.id] = Replica(p.id, job, b.device_id, runs_from, p.cpu_quota_pct)
        slots.append(slot)
    return RoomSim(slots, racks, jobs, clock, aware=True)


def check(view: FleetView, change: Change, minutes: int) -> None:
    """``ValueError`` with a message for an operator when this run cannot be done."""
    if not MIN_MINUTES <= minutes <= MAX_MINUTES:
        raise ValueError(f"minutes must be from {MIN_MINUTES} to {MAX_MINUTES}")
    boards = sum(1 for b in view.boards if modelled(b))
    if boards == 0:
        raise ValueError("no board is online with a fresh reading: nothing to copy")
    if 2 * boards * minutes * 60 > MAX_BOARD_SECONDS:
        most = max(0, MAX_BOARD_SECONDS // (2 * boards * 60))
        raise ValueError(
            f"{boards} boards for {minutes} min is more than the copy runs at once "
            f"({MAX_BOARD_SECONDS} board-seconds); at most {most} min for this fleet"
        )
    if isinstance(change, StopJob) and view.job(change.job_id) is None:
        raise ValueError(f"job {change.job_id} is not running in the fleet")
    if isinstance(change, SetRackBudget) and view.rack(change.rack_id) is None:
        raise ValueError(f"rack {change.rack_id} has no board in the fleet view")


class DigitalCopy:
    """The brain's ``DryRunner``: both runs from the same seed, compared."""

    def __call__(self, view: FleetView, change: Change, minutes: int) -> dict[str, Any]:
        check(view, change, minutes)
        duration_s = minutes * 60
        without = build(view, None)
        without.run(duration_s)
        with_change = build(view, change)
        with_change.run(duration_s)
        left_out = [b.device_id for b in view.boards if not modelled(b)]
        return compare(without, with_change, change, minutes, left_out)
