"""The brain's decisions on a simulated room, aware vs baseline, in simulated time.

The scenario was set from the physics and the issue's text before any result was seen:

* Room A: racks A1-A4 of 12 simulated Pi 5 (Active Cooler, a UPS HAT with 20 Wh, an air
  sensor), slots U04-U15. The air: 26 °C supplied, 1.5 °C warmer per rack down the row and
  0.15 °C per U (the demo's ``Layout`` steps), ±0.5 °C per board from the seed.
* Each board runs metald's own safety loop every second (``decide_thermal``: the Pi 5 fan
  curve, its throttling from 80 °C, the brain's clock cap as the operator cap, the floor),
  on top of the firmware's own throttling (the simulator's); metald's fan-failure detector.
* Rack budgets: 72 W, i.e. 12 slots provisioned at 6 W where a Pi 5 draws 7 W flat out
  (17 % oversubscribed, the middle of Thunderbolt's 9-25 %): they cannot all run flat out.
* The batch: 110 % of the fleet's cool capacity (the CPU every board can run at t = 0 in
  steady state below its 70 °C warning, with its fan curve), in one-core replicas (25 % of
  a Pi 5): a not-restartable ``ledger`` service (8 replicas, priority 90), then jobs of 16
  replicas (a job runs one replica per board) in turn ``render-n`` (priority 80),
  ``transcode-n`` (50) and ``index-n`` (20). Work = CPU-seconds executed:
  the replica's CPU share × 4 cores × the clock the board ran at (its cap and the firmware's).
* Incidents (the demo's choice of targets): at 5 min the fan of A1's second board stalls
  for good; from 10 min a heat wave on A2: its air rises to 41 °C (the demo's heat wave)
  over 5 min, holds 15 min, falls back over 5 min; at 15 min A4 loses mains for 10 min.
* 40 simulated minutes; the brain's period is 10 s (telemetry read then, trends over the
  last 60 s); a replica started or moved runs from the next period (the agent's turn).
* ``aware``: physical placement + capping + balancing through ``wrale.fleet.brain.decisions``
  from a fleet view built from the boards' readings every period. ``baseline``: spread
  placement, no capping, no balancing. Same seed, same incidents.

The room itself (boards, metald's loop, the brain's periods, the tallies) is
``wrale.user.simfleet.room_sim``, shared with the dry-run on a digital copy of the fleet.

Run alone: ``python bench/decisions_bench.py`` (``make bench`` runs it with the others).
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import Figure
from wrale.fleet.brain.decisions.view import BoardView, JobSpec, RackView
from wrale.metal.core import control
from wrale.metal.hw.base import Fault, FaultKind
from wrale.metal.hw.sim import SimBoard
from wrale.metal.hw.sim.thermal import ACTIVE_COOLER, demand_w
from wrale.shared.clock import FakeClock
from wrale.shared.config import SimSettings
from wrale.user.simfleet.room_sim import CORES, POLICY, RoomSim, Slot, Totals

SEED = int(os.environ.get("BENCH_DECISIONS_SEED", "0"))
RACKS, PER_RACK, FIRST_U = ("A1", "A2", "A3", "A4"), 12, 4
SUPPLY_C, RACK_STEP_C, SLOT_STEP_C, JITTER_C = 26.0, 1.5, 0.15, 0.5
BUDGET_W = 12 * 6.0
REPLICA_PCT = 25.0  # one of a Pi 5's four cores
BATCH_OF_COOL = 1.10
BATCH_JOB_REPLICAS = 16
DURATION_S = 2400
FAN_AT_S, HEAT_AT_S, MAINS_AT_S = 300, 600, 900
HEAT_C, HEAT_RAMP_S, HEAT_HOLD_S = 41.0, 300, 900
MAINS_OFF_S = 600


def board_air_c(rack_no: int, pos: int) -> float:
    jitter = ((SEED * 7919 + rack_no * PER_RACK + pos) * 2654435761 % 1000) / 1000.0
    return SUPPLY_C + rack_no * RACK_STEP_C + pos * SLOT_STEP_C + (2 * jitter - 1) * JITTER_C


def cool_load_pct(air_c: float) -> float:
    """The highest load (1 % steps) a Pi 5 with its cooler settles at below its warning
    temperature at ``air_c``, the fan on its curve (steady state, fixed point)."""
    best = 0.0
    for load in range(101):
        heat, temp = demand_w(load, 100.0), air_c
        for _ in range(40):
            level = control.curve_level(temp, -1, POLICY.curve, 0.0)
            duty = control.pwm_to_pct(POLICY.curve[level].pwm) if level >= 0 else 0.0
            temp = ACTIVE_COOLER.steady_c(air_c, heat, duty / 100.0)[0]
        if temp < POLICY.cpu_warning_c:
            best = float(load)
    return best


def the_batch(cool_pct: float, strategy: str) -> tuple[JobSpec, ...]:
    """``ledger`` (8 replicas, not restartable), then jobs of at most ``BATCH_JOB_REPLICAS``
    (a job has one replica per board) named and prioritised in turn render (80), transcode
    (50), index (20), until the batch is ``BATCH_OF_COOL`` of the cool capacity."""
    replicas = math.ceil(BATCH_OF_COOL * cool_pct / REPLICA_PCT)
    jobs = [JobSpec("ledger", 90, 8, REPLICA_PCT, restartable=False, strategy=strategy)]
    rest = replicas - jobs[0].replicas
    kinds = (("render", 80), ("transcode", 50), ("index", 20))
    i = 0
    while rest > 0:
        name, prio = kinds[i % len(kinds)]
        n = min(BATCH_JOB_REPLICAS, rest)
        jobs.append(
            JobSpec(f"{name}-{i // len(kinds) + 1}", prio, n, REPLICA_PCT, strategy=strategy)
        )
        rest -= n
        i += 1
    return tuple(jobs)


def incidents(room: RoomSim) -> None:
    """The scenario's incidents: a stalled fan, a heat wave on A2, mains lost on A4."""
    t = room.t
    if t == FAN_AT_S:
        room.slots[1].board.inject_fault(Fault(FaultKind.FAN_FAILURE, {"mode": "stalled"}))
    if t == MAINS_AT_S:
        for s in room.slots:
            if s.rack == RACKS[-1]:
                s.board.inject_fault(Fault(FaultKind.MAIN_POWER_LOSS, duration_s=MAINS_OFF_S))
    if HEAT_AT_S <= t <= HEAT_AT_S + 2 * HEAT_RAMP_S + HEAT_HOLD_S:
        into = t - HEAT_AT_S
        left = HEAT_AT_S + 2 * HEAT_RAMP_S + HEAT_HOLD_S - t
        frac = min(1.0, into / HEAT_RAMP_S, left / HEAT_RAMP_S)
        for s in room.slots:
            if s.rack == RACKS[1]:
                s.board.set_ambient(s.air_c + frac * (HEAT_C - s.air_c))


def make_room(aware: bool) -> tuple[RoomSim, float]:
    """The room (``wrale.user.simfleet.room_sim``) and its cool capacity."""
    clock = FakeClock()
    slots: list[Slot] = []
    for r, rack in enumerate(RACKS):
        for pos in range(PER_RACK):
            dev = f"bench-{rack.lower()}-u{FIRST_U + pos:02d}"
            air = board_air_c(r, pos)
            settings = SimSettings(
                seed=SEED * 1000 + r * PER_RACK + pos,
                ambient_c=air,
                load_pct=0.0,
                ambient_sensor=True,
            )
            board = SimBoard(settings, name=dev, clock=clock)
            template = BoardView(dev, rack_id=rack, room_id="A", site_id="bench")
            slots.append(Slot(dev, rack, air, board, template))
    cool_pct = sum(cool_load_pct(s.air_c) for s in slots)
    jobs = the_batch(cool_pct, "physical" if aware else "spread")
    racks = tuple(RackView(r, "A", BUDGET_W) for r in RACKS)
    return RoomSim(slots, racks, jobs, clock, aware=aware, incidents=incidents), cool_pct


UNITS = {
    "throttled_board_s": "board-s (thermal throttling: firmware or metald)",
    "peak_temp_c": "°C (hottest SoC, true temperature)",
    "work_done": "CPU-s executed (core-seconds at the clock run)",
    "budget_violation_s": "rack-s over budget",
    "moves": "moves and evictions",
    "battery_job_s": "replica-s on battery",
}
TARGETS: dict[str, Callable[[Totals], str]] = {
    "throttled_board_s": lambda b: f"<= 10 % of baseline ({0.1 * b.throttled_board_s:.0f})",
    "peak_temp_c": lambda b: f"<= baseline - 5 ({b.peak_temp_c - 5:.1f})",
    "work_done": lambda b: f">= baseline + 20 % ({1.2 * b.work_done:.0f})",
    "budget_violation_s": lambda b: "0",
}


def budget_bound_cpu_s() -> float:
    """The most work any controller can do in the run with every rack within its budget:
    each rack's budget above its boards' idle draw, at a Pi 5's watts per CPU share."""
    loads = (
        len(RACKS)
        * (BUDGET_W - PER_RACK * demand_w(0, 100))
        / (demand_w(100, 100) - demand_w(0, 100))
    )
    return loads * CORES * DURATION_S


def run() -> list[Figure]:
    t0 = time.perf_counter()
    rooms = {"aware": make_room(aware=True), "baseline": make_room(aware=False)}
    results = {name: room.run(DURATION_S) for name, (room, _) in rooms.items()}
    wall_s = time.perf_counter() - t0
    room, cool_pct = rooms["aware"]
    figures = [
        Figure("decisions.cool_capacity_cpu_pct", cool_pct, "% of a board, fleet sum", ""),
        Figure(
            "decisions.batch_cpu_pct",
            sum(j.replicas * j.cpu_pct for j in room.jobs),
            "% of a board, fleet sum",
            "",
        ),
        Figure(
            "decisions.budget_bound_work", budget_bound_cpu_s(), "CPU-s (at most, in budget)", ""
        ),
        Figure("decisions.sim_s", float(DURATION_S), "s simulated per run", ""),
    ]
    baseline = results["baseline"]
    for name, totals in results.items():
        for key, unit in UNITS.items():
            goal = TARGETS[key](baseline) if name == "aware" and key in TARGETS else ""
            value = float(getattr(totals, key))
            figures.append(Figure(f"decisions.{name}.{key}", value, unit, goal))
    figures.append(Figure("decisions.wall_s", wall_s, "s of real time, both runs", "< 60"))
    return figures


def main() -> int:
    for f in run():
        print(f.line(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
