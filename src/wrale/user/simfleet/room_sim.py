"""A room of simulated boards under the brain's decisions, in simulated time (no sleeping).

Each board is a ``SimBoard`` running metald's own safety loop every simulated second (the
fan curve, throttling, the operator cap as the brain's clock cap, the floor); every period
the brain's pure decisions (``fleet.brain.decisions``: balancing, placement, capping) read
a fleet view built from the boards' readings, and their actions are applied as the agent
would (a replica started or moved runs from the next period). What the run did is tallied
fleet-wide, per rack and per board. Shared by ``bench/decisions_bench.py`` and the dry-run
(``digital_copy``); it keeps no state outside the instance and does no I/O.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

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
from wrale.metal.hw.sim import SimBoard
from wrale.metal.hw.sim.throttle import firmware_freq_pct
from wrale.shared.clock import FakeClock
from wrale.shared.policy import ThermalPolicy

CORES = 4  # a Pi 5's cores: a replica's CPU share of 100 % is one of them
PERIOD_S = 10  # the brain's control period
TREND_S = 60.0  # the trends the brain reads: the last minute of readings
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
    """A board in the room: its simulated hardware, what metald decided last, the brain's
    cap and the replicas it runs. ``template`` gives the board's identity, place and state
    (online, mode, limits); its readings are filled in from the simulated board."""

    device: str
    rack: str
    air_c: float
    board: SimBoard
    template: BoardView
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


@dataclass
class RackTotals(Totals):
    """A rack's totals, with its draw: ``energy_ws`` (watt-seconds) and its peak."""

    energy_ws: float = 0.0
    peak_draw_w: float = 0.0


Incidents = Callable[["RoomSim"], None]


class RoomSim:
    """``slots`` under the brain (``aware``: placement by each job's strategy, capping and
    balancing; otherwise placement only). ``incidents`` is called at the start of every
    simulated second (to stall a fan, warm a rack's air, cut the mains)."""

    def __init__(
        self,
        slots: Sequence[Slot],
        racks: Sequence[RackView],
        jobs: Sequence[JobSpec],
        clock: FakeClock,
        *,
        aware: bool = True,
        incidents: Incidents | None = None,
        period_s: int = PERIOD_S,
    ) -> None:
        self.slots = list(slots)
        self.racks = tuple(racks)
        self.jobs = tuple(jobs)
        self.clock = clock
        self.aware = aware
        self.incidents = incidents
        self.period_s = period_s
        self.by_device = {s.device: s for s in self.slots}
        self.budgets = {r.id: r.budget_w for r in self.racks}
        self.t = 0.0
        self.seq = 0
        self.totals = Totals()
        self.per_board = {s.device: Totals() for s in self.slots}
        rack_ids = [r.id for r in self.racks] + [s.rack for s in self.slots]
        self.per_rack = {r: RackTotals() for r in dict.fromkeys(rack_ids)}
        self.cap_state = capping.CappingState()
        self.bal_state = balancing.BalancingState()

    # ------------------------------------------------------------------ one second

    def second(self) -> None:
        if self.incidents is not None:
            self.incidents(self)
        self.clock.advance(1.0)
        self.t += 1.0
        racks_w = dict.fromkeys(self.per_rack, 0.0)
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
            watts = power.power_w or 0.0  # a simulated board always measures it
            racks_w[s.rack] += watts
            tallies = (self.totals, self.per_board[s.device], self.per_rack[s.rack])
            fw_throttled = b.throttle.read_throttle().throttled_now
            for tot in tallies:
                tot.peak_temp_c = max(tot.peak_temp_c, temp)
                if fw_throttled or s.thermal_cap < 100.0:
                    tot.throttled_board_s += 1.0
            if watts <= 0:
                continue
            clock = min(d.max_freq_pct, firmware_freq_pct(temp)) / 100.0
            work = sum(r.limit_pct for r in running) / 100.0 * CORES * clock
            on_battery = power.source.value == Source.BATTERY.value
            for tot in tallies:
                tot.work_done += work
                if on_battery:
                    tot.battery_job_s += len(running)
        for rack, w in racks_w.items():
            rt = self.per_rack[rack]
            rt.energy_ws += w
            rt.peak_draw_w = max(rt.peak_draw_w, w)
            budget = self.budgets.get(rack)
            if budget is not None and w > budget:
                self.totals.budget_violation_s += 1.0
                rt.budget_violation_s += 1.0

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
            out[s.device] = replace(
                s.template,
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
        return FleetView(boards, self.racks, self.jobs, now=self.t)

    def start(self, job: JobSpec, device: str, *, at: float | None = None) -> None:
        """A replica of ``job`` on ``device``, working from the next period (or ``at``)."""
        self.seq += 1
        rid = f"{job.id}-{self.seq}"
        runs_from = self.t + self.period_s if at is None else at
        self.by_device[device].replicas[rid] = Replica(rid, job, device, runs_from)

    def period(self) -> None:
        cache = self.readings()
        if self.aware:
            moves, self.bal_state = balancing.balance(self.view(cache), self.bal_state)
            for m in moves:
                self.totals.moves += 1
                if isinstance(m, balancing.Move):
                    self._count_move(m.from_device)
                    old = self.by_device[m.from_device].replicas.pop(m.placement_id)
                    new = Replica(old.id, old.job, m.to_device, self.t + self.period_s)
                    self.by_device[m.to_device].replicas[old.id] = new
                else:
                    self._count_move(m.device_id)
                    self.by_device[m.device_id].replicas.pop(m.placement_id)
        running = Counter(r.job.id for s in self.slots for r in s.replicas.values())
        for job in sorted(self.jobs, key=lambda j: (-j.priority, j.id)):
            wanted = job.replicas - running[job.id]
            if wanted <= 0:
                continue  # placement has nothing to do (and its view costs a pass)
            for a in placement.place(job, wanted, self.view(cache)):
                self.start(job, a.device_id)
        if self.aware:
            actions, self.cap_state = capping.cap_racks(self.view(cache), self.cap_state)
            for c in actions:
                if isinstance(c, capping.SetFreqCap):
                    self.by_device[c.device_id].brain_cap = c.max_freq_pct
                else:
                    self.by_device[c.device_id].replicas[c.placement_id].quota = c.cpu_quota_pct

    def _count_move(self, device: str) -> None:
        self.per_board[device].moves += 1
        self.per_rack[self.by_device[device].rack].moves += 1

    def run(self, duration_s: float) -> Totals:
        """Run until ``duration_s`` simulated seconds have passed since the start."""
        while self.t < duration_s:
            if self.t % self.period_s == 0:
                self.period()
            self.second()
        return self.totals
