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

Run alone: ``python bench/decisions_bench.py`` (``make bench`` runs it with the others).
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import Figure
from wrale.fleet.brain.decisions import balancing, capping, placement
from wrale.fleet.brain.decisions.view import (
    BoardView,
    FleetView,
    JobSpec,
    PlacementView,
    RackView,
    Source,
    slope_per_min,
)
from wrale.metal.core import control
from wrale.metal.core.alarms import FanHealth
from wrale.metal.hw.base import Fault, FaultKind
from wrale.metal.hw.sim import SimBoard
from wrale.metal.hw.sim.thermal import ACTIVE_COOLER, demand_w
from wrale.metal.hw.sim.throttle import firmware_freq_pct
from wrale.shared.clock import FakeClock
from wrale.shared.config import SimSettings
from wrale.shared.policy import ThermalPolicy

SEED = int(os.environ.get("BENCH_DECISIONS_SEED", "0"))
RACKS, PER_RACK, FIRST_U = ("A1", "A2", "A3", "A4"), 12, 4
SUPPLY_C, RACK_STEP_C, SLOT_STEP_C, JITTER_C = 26.0, 1.5, 0.15, 0.5
BUDGET_W = 12 * 6.0
CORES = 4
REPLICA_PCT = 25.0  # one of a Pi 5's four cores
BATCH_OF_COOL = 1.10
BATCH_JOB_REPLICAS = 16
DURATION_S, PERIOD_S, TREND_S = 2400, 10, 60.0
FAN_AT_S, HEAT_AT_S, MAINS_AT_S = 300, 600, 900
HEAT_C, HEAT_RAMP_S, HEAT_HOLD_S = 41.0, 300, 900
MAINS_OFF_S = 600
POLICY = ThermalPolicy()


@dataclass
class Replica:
    id: str
    job: JobSpec
    device: str
    runs_from: float  # sim time it starts working (the agent's next turn)
    quota: float | None = None

    @property
    def limit_pct(self) -> float:
        return self.job.cpu_pct if self.quota is None else min(self.job.cpu_pct, self.quota)


@dataclass
class Slot:
    device: str
    rack: str
    air_c: float
    board: SimBoard
    decision: control.ThermalDecision = control.INITIAL_THERMAL
    thermal_cap: float = 100.0  # metald's own cap for temperature (100: none)
    fan: FanHealth = field(default_factory=FanHealth)
    brain_cap: float | None = None
    temps: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=7))
    airs: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=7))
    replicas: dict[str, Replica] = field(default_factory=dict)


@dataclass
class Totals:
    throttled_board_s: float = 0.0
    peak_temp_c: float = 0.0
    work_done: float = 0.0
    budget_violation_s: float = 0.0
    moves: int = 0
    battery_job_s: float = 0.0


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


class Room:
    def __init__(self, aware: bool) -> None:
        self.aware = aware
        self.clock = FakeClock()
        self.slots: list[Slot] = []
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
                board = SimBoard(settings, name=dev, clock=self.clock)
                self.slots.append(Slot(dev, rack, air, board))
        self.by_device = {s.device: s for s in self.slots}
        self.cool_pct = sum(cool_load_pct(s.air_c) for s in self.slots)
        self.jobs = the_batch(self.cool_pct, "physical" if aware else "spread")
        self.t = 0.0
        self.seq = 0
        self.totals = Totals()
        self.cap_state = capping.CappingState()
        self.bal_state = balancing.BalancingState()

    # ------------------------------------------------------------------ the incidents

    def incidents(self) -> None:
        t = self.t
        if t == FAN_AT_S:
            self.slots[1].board.inject_fault(Fault(FaultKind.FAN_FAILURE, {"mode": "stalled"}))
        if t == MAINS_AT_S:
            for s in self.slots:
                if s.rack == RACKS[-1]:
                    s.board.inject_fault(Fault(FaultKind.MAIN_POWER_LOSS, duration_s=MAINS_OFF_S))
        if HEAT_AT_S <= t <= HEAT_AT_S + 2 * HEAT_RAMP_S + HEAT_HOLD_S:
            into = t - HEAT_AT_S
            left = HEAT_AT_S + 2 * HEAT_RAMP_S + HEAT_HOLD_S - t
            frac = min(1.0, into / HEAT_RAMP_S, left / HEAT_RAMP_S)
            for s in self.slots:
                if s.rack == RACKS[1]:
                    s.board.set_ambient(s.air_c + frac * (HEAT_C - s.air_c))

    # ------------------------------------------------------------------ one second

    def second(self) -> None:
        self.incidents()
        self.clock.advance(1.0)
        self.t += 1.0
        racks_w = dict.fromkeys(RACKS, 0.0)
        for s in self.slots:
            b = s.board
            running = [r for r in s.replicas.values() if r.runs_from <= self.t]
            load = min(100.0, sum(r.limit_pct for r in running))
            if load != b.job_load_pct:
                b.set_job_load(load)  # the agent's sim_load jobs; no background load
            reading = b.thermal.read_thermal()
            d = control.decide_thermal(reading, s.decision, POLICY, None, self.t)
            s.thermal_cap = d.max_freq_pct
            if s.brain_cap is not None and s.brain_cap < d.max_freq_pct:
                d = replace(d, max_freq_pct=s.brain_cap)
            throttle = b.throttle.read_throttle()
            d = control.apply_freq_floor(d, throttle.min_freq_pct)
            s.decision = d
            if abs(b.fan.read_fan().duty_pct - d.fan_pct) > 0.05:
                b.fan.set_fan_duty(d.fan_pct)
            if abs(throttle.max_freq_pct - d.max_freq_pct) > 0.05:
                b.throttle.set_max_freq(d.max_freq_pct)
            s.fan.observe(b.fan.read_fan(), POLICY.fan_stall_rpm, self.t, self.t)
            temp = b.soc_temp_c
            power = b.power.read_power()
            racks_w[s.rack] += power.power_w
            tot = self.totals
            tot.peak_temp_c = max(tot.peak_temp_c, temp)
            fw_throttled = b.throttle.read_throttle().throttled_now
            if fw_throttled or s.thermal_cap < 100.0:
                tot.throttled_board_s += 1.0
            if power.power_w <= 0:
                continue
            clock = min(d.max_freq_pct, firmware_freq_pct(temp)) / 100.0
            tot.work_done += sum(r.limit_pct for r in running) / 100.0 * CORES * clock
            if power.source.value == Source.BATTERY.value:
                tot.battery_job_s += len(running)
        for w in racks_w.values():
            if w > BUDGET_W:
                self.totals.budget_violation_s += 1.0

    # ------------------------------------------------------------------ the brain

    def board_view(self, s: Slot, cache: dict[str, BoardView]) -> BoardView:
        base = cache[s.device]
        placements = tuple(
            PlacementView(
                r.id,
                r.job.id,
                r.job.priority,
                r.job.cpu_pct,
                r.job.watts,
                r.job.restartable,
                r.quota,
                starting=r.runs_from > self.t,
            )
            for r in s.replicas.values()
        )
        return replace(base, freq_cap_pct=s.brain_cap, placements=placements)

    def readings(self) -> dict[str, BoardView]:
        out: dict[str, BoardView] = {}
        for s in self.slots:
            b = s.board
            th, fan = b.thermal.read_thermal(), b.fan.read_fan()
            pw, thr = b.power.read_power(), b.throttle.read_throttle()
            if th.cpu_temp_c is not None:
                s.temps.append((self.t, th.cpu_temp_c))
            if th.ambient_temp_c is not None:
                s.airs.append((self.t, th.ambient_temp_c))
            recent = [(t, v) for t, v in s.temps if self.t - t <= TREND_S]
            airs = [(t, v) for t, v in s.airs if self.t - t <= TREND_S]
            out[s.device] = BoardView(
                s.device,
                rack_id=s.rack,
                room_id="A",
                site_id="bench",
                cpu_temp_c=th.cpu_temp_c,
                temp_trend_c_per_min=slope_per_min(recent),
                ambient_c=th.ambient_temp_c,
                ambient_trend_c_per_min=slope_per_min(airs),
                fan_duty_pct=fan.duty_pct,
                fan_rpm=fan.rpm,
                fan_failed=s.fan.failed,
                power_w=pw.power_w,
                power_source=Source(pw.source.value),
                battery_pct=pw.battery_pct,
                throttled=thr.throttled_now or s.thermal_cap < 100.0,
                min_freq_pct=thr.min_freq_pct,
                reading_age_s=0.0,
            )
        return out

    def view(self, cache: dict[str, BoardView]) -> FleetView:
        boards = tuple(self.board_view(s, cache) for s in self.slots)
        racks = tuple(RackView(r, "A", BUDGET_W) for r in RACKS)
        return FleetView(boards, racks, self.jobs, now=self.t)

    def start(self, job: JobSpec, device: str) -> None:
        self.seq += 1
        rid = f"{job.id}-{self.seq}"
        self.by_device[device].replicas[rid] = Replica(rid, job, device, self.t + PERIOD_S)

    def period(self) -> None:
        cache = self.readings()
        if self.aware:
            moves, self.bal_state = balancing.balance(self.view(cache), self.bal_state)
            for m in moves:
                self.totals.moves += 1
                if isinstance(m, balancing.Move):
                    old = self.by_device[m.from_device].replicas.pop(m.placement_id)
                    new = Replica(old.id, old.job, m.to_device, self.t + PERIOD_S)
                    self.by_device[m.to_device].replicas[old.id] = new
                else:
                    self.by_device[m.device_id].replicas.pop(m.placement_id)
        for job in sorted(self.jobs, key=lambda j: (-j.priority, j.id)):
            running = sum(1 for s in self.slots for r in s.replicas.values() if r.job.id == job.id)
            for a in placement.place(job, job.replicas - running, self.view(cache)):
                self.start(job, a.device_id)
        if self.aware:
            actions, self.cap_state = capping.cap_racks(self.view(cache), self.cap_state)
            for c in actions:
                if isinstance(c, capping.SetFreqCap):
                    self.by_device[c.device_id].brain_cap = c.max_freq_pct
                else:
                    self.by_device[c.device_id].replicas[c.placement_id].quota = c.cpu_quota_pct

    def run(self) -> Totals:
        while self.t < DURATION_S:
            if self.t % PERIOD_S == 0:
                self.period()
            self.second()
        return self.totals


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
    rooms = {"aware": Room(aware=True), "baseline": Room(aware=False)}
    results = {name: room.run() for name, room in rooms.items()}
    wall_s = time.perf_counter() - t0
    room = rooms["aware"]
    figures = [
        Figure("decisions.cool_capacity_cpu_pct", room.cool_pct, "% of a board, fleet sum", ""),
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
