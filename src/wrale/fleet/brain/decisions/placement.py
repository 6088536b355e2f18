"""Where a job's replicas go: ``place(job, need, view) -> list[Assignment]``.

``physical`` (the default) scores every eligible board by thermal headroom (temperature
predicted over the next minutes with the job's heat added, against the board's warning
temperature; fan reserve; the air of its rack), the power headroom of its rack against the
budget, its power source and health, and spreads a job's replicas across racks.
``spread`` is the location-agnostic baseline: round-robin over eligible boards. Both share
the hard rules (online, not SAFE, no lockdown, never on battery unless the job allows it,
``max_per_rack``, CPU room, one replica per board). Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from wrale.fleet.brain.decisions.view import (
    SAFE_MODE,
    BoardView,
    FleetView,
    Input,
    Inputs,
    JobSpec,
    Source,
)

SPREAD = "spread"
PHYSICAL = "physical"
FULL_CPU_PCT = 100.0


@dataclass(frozen=True, slots=True)
class PlacementPolicy:
    """Weights are in °C of thermal headroom: a term worth 5 counts as 5 °C cooler."""

    horizon_min: float = 5.0  # how far ahead a board's temperature is predicted
    thermal_tau_min: float = 1.5  # the board's own thermal time constant (Pi 5 + cooler)
    default_c_per_w: float = 7.0  # die rise per watt when it cannot be estimated
    throttle_margin_c: float = 3.0  # no new work within this of the throttle temperature
    power_fill: float = 0.95  # fill a rack's budget at most to this fraction
    fan_weight_c: float = 5.0  # a fan with all its speed in reserve
    ambient_weight: float = 1.0  # per °C its rack's air is warmer than the coolest rack's
    power_weight_c: float = 10.0  # a rack budget entirely free
    spread_weight_c: float = 4.0  # per replica of the same job already in the rack
    solar_penalty_c: float = 3.0
    battery_penalty_c: float = 20.0  # on battery, for a job that allows it


DEFAULT_POLICY = PlacementPolicy()


@dataclass(frozen=True, slots=True)
class Assignment:
    """Run one replica of ``job_id`` on ``device_id``; why, and the inputs it was read from."""

    job_id: str
    device_id: str
    rack_id: str | None
    score: float
    reason: str
    inputs: Inputs


@dataclass(slots=True)
class Ledger:
    """What decisions taken earlier in the same period add to (or take from) boards and
    racks, so later ones see them. Mutable, but private to one pure call."""

    cpu_pct: dict[str, float] = field(default_factory=dict)  # by device
    board_w: dict[str, float] = field(default_factory=dict)
    rack_w: dict[str, float] = field(default_factory=dict)
    job_rack: dict[tuple[str, str], int] = field(default_factory=dict)  # (job, rack) -> n
    job_board: set[tuple[str, str]] = field(default_factory=set)  # (job, device)
    placements: dict[str, int] = field(default_factory=dict)  # by device

    def add(self, job_id: str, board: BoardView, cpu_pct: float, watts: float, n: int) -> None:
        dev, rack = board.device_id, board.rack_id or ""
        self.cpu_pct[dev] = self.cpu_pct.get(dev, 0.0) + cpu_pct * n
        self.board_w[dev] = self.board_w.get(dev, 0.0) + watts * n
        self.rack_w[rack] = self.rack_w.get(rack, 0.0) + watts * n
        self.job_rack[job_id, rack] = self.job_rack.get((job_id, rack), 0) + n
        self.placements[dev] = self.placements.get(dev, 0) + n
        if n > 0:
            self.job_board.add((job_id, dev))
        else:
            self.job_board.discard((job_id, dev))


def c_per_w(board: BoardView, policy: PlacementPolicy = DEFAULT_POLICY) -> float:
    """Die rise per watt, estimated from its readings ((die - air) / draw), bounded to what
    a Pi-class board can be; the policy's default when a reading is missing."""
    temp, air, power = board.known_temp_c, board.known_ambient_c, board.known_power_w
    if temp is None or air is None or power is None or power <= 0.5:
        return policy.default_c_per_w
    return min(15.0, max(2.0, (temp - air) / power))


def predicted_temp_c(board: BoardView, policy: PlacementPolicy = DEFAULT_POLICY) -> float | None:
    """The temperature expected ``horizon_min`` ahead (``None``: unknown).

    The die follows its own heat with a short time constant, so the part of its trend that
    is its own settles within ``thermal_tau_min``; the part that follows its air (a heat
    wave) goes on for the whole horizon. Without an air reading the whole trend does."""
    temp = board.known_temp_c
    if temp is None:
        return None
    trend = board.known_trend_c_per_min or 0.0
    air_trend = board.known_ambient_trend_c_per_min
    if air_trend is None:
        return temp + max(0.0, trend) * policy.horizon_min
    own = trend - air_trend
    rise = own * min(policy.thermal_tau_min, policy.horizon_min) + air_trend * policy.horizon_min
    return temp + max(0.0, rise)


def hard_block(board: BoardView, job: JobSpec, view: FleetView, ledger: Ledger) -> str | None:
    """Why ``job`` may not get a replica on ``board`` under any strategy (``None``: it may)."""
    if job.devices is not None and board.device_id not in job.devices:
        return "not selected by the job's selector"
    if not board.online:
        return "offline"
    if board.mode == SAFE_MODE:
        return "in SAFE mode"
    if board.lockdown:
        return "in a tamper lockdown"
    if not job.allow_battery and board.maybe_on_battery:
        return "on battery" if board.on_battery else "power source unknown (no fresh reading)"
    if (job.id, board.device_id) in ledger.job_board or any(
        p.job_id == job.id for p in board.placements
    ):
        return "already runs a replica of this job"
    cpu = board.cpu_reserved_pct + ledger.cpu_pct.get(board.device_id, 0.0)
    if cpu + job.cpu_pct > FULL_CPU_PCT + 1e-9:
        return f"no CPU room ({cpu:.0f} % taken)"
    if job.max_per_rack is not None and board.rack_id is not None:
        here = sum(
            1 for b in view.boards_in(board.rack_id) for p in b.placements if p.job_id == job.id
        )
        here += ledger.job_rack.get((job.id, board.rack_id), 0)
        if here >= job.max_per_rack:
            rack = view.rack_label(board.rack_id)
            return f"rack {rack} already has {here} (max_per_rack {job.max_per_rack})"
    return None


def replicas_in_rack(view: FleetView, ledger: Ledger, job_id: str, rack_id: str | None) -> int:
    """Replicas of ``job_id`` in the rack, counting those decided earlier this period."""
    here = sum(1 for b in view.boards_in(rack_id) for p in b.placements if p.job_id == job_id)
    return here + ledger.job_rack.get((job_id, rack_id or ""), 0)


def rack_air_c(view: FleetView) -> dict[str, float]:
    """Mean air temperature of each rack, from its boards' fresh ambient readings."""
    out: dict[str, float] = {}
    for rack_id in {b.rack_id for b in view.boards if b.rack_id is not None}:
        airs = [a for b in view.boards_in(rack_id) if (a := b.known_ambient_c) is not None]
        if airs:
            out[rack_id] = sum(airs) / len(airs)
    return out


@dataclass(frozen=True, slots=True)
class Scored:
    board: BoardView
    score: float
    inputs: Inputs


def score_board(
    board: BoardView,
    job: JobSpec,
    view: FleetView,
    ledger: Ledger,
    air: dict[str, float],
    policy: PlacementPolicy = DEFAULT_POLICY,
    *,
    extra_margin_c: float = 0.0,
) -> Scored | str:
    """The physical score of ``board`` for one replica of ``job``, or why it is ineligible."""
    blocked = hard_block(board, job, view, ledger)
    if blocked is not None:
        return blocked
    if not board.fresh:
        return "readings stale: thermal and power headroom unknown"
    if board.fan_failed:
        return "fan failed"
    if board.throttled:
        return "throttling now"
    temp = predicted_temp_c(board, policy)
    if temp is None:
        return "temperature unknown"
    watts = board.watts_for(job.cpu_pct, job.watts)
    r = c_per_w(board, policy)
    starting = sum(board.watts_for(p.cpu_pct, p.watts) for p in board.placements if p.starting)
    after = temp + (watts + starting + ledger.board_w.get(board.device_id, 0.0)) * r
    limit = board.throttle_c - policy.throttle_margin_c - extra_margin_c
    if after >= limit:
        return f"predicted {after:.1f} °C with the job: within reach of throttling ({limit:.0f})"
    inputs: dict[str, Input] = {
        "cpu_temp_c": board.known_temp_c,
        "trend_c_per_min": board.known_trend_c_per_min,
        "predicted_c": round(after, 2),
        "warning_c": board.warning_c,
        "c_per_w": round(r, 3),
        "job_w": round(watts, 3),
    }
    score = (board.warning_c - after) * 1.0
    duty = board.fan_duty_pct
    reserve = 0.0 if duty is None else max(0.0, 100.0 - duty) / 100.0
    score += policy.fan_weight_c * reserve
    inputs["fan_duty_pct"] = duty
    rack = board.rack_id or ""
    if air:
        rack_air = air.get(rack, max(air.values()))
        score -= policy.ambient_weight * (rack_air - min(air.values()))
        inputs["rack_air_c"] = round(rack_air, 2)
    budget = view.budget_w(board.rack_id)
    if budget is not None:
        draw = view.rack_draw_w(board.rack_id) + view.starting_w(board.rack_id)
        draw += ledger.rack_w.get(rack, 0.0)
        if draw + watts > budget * policy.power_fill:
            return (
                f"rack {view.rack_label(board.rack_id)} would draw {draw + watts:.1f} W of its "
                f"{budget:.0f} W "
                f"budget (fills to {policy.power_fill:.0%})"
            )
        score += policy.power_weight_c * (budget - draw - watts) / budget
        inputs.update(rack_draw_w=round(draw, 2), rack_budget_w=budget)
    source = board.known_source
    if source is Source.SOLAR:
        score -= policy.solar_penalty_c
    elif source is Source.BATTERY:
        score -= policy.battery_penalty_c
    inputs["power_source"] = None if source is None else source.value
    in_rack = sum(
        1 for b in view.boards_in(board.rack_id) for p in b.placements if p.job_id == job.id
    )
    in_rack += ledger.job_rack.get((job.id, rack), 0)
    score -= policy.spread_weight_c * in_rack
    inputs["job_replicas_in_rack"] = in_rack
    return Scored(board, score, inputs)


def best_board(
    job: JobSpec,
    view: FleetView,
    ledger: Ledger,
    policy: PlacementPolicy = DEFAULT_POLICY,
    *,
    exclude: frozenset[str] = frozenset(),
    extra_margin_c: float = 0.0,
) -> Scored | None:
    """The highest-scoring eligible board for one replica (ties: the lowest device id)."""
    air = rack_air_c(view)
    best: Scored | None = None
    for board in view.boards:
        if board.device_id in exclude:
            continue
        s = score_board(board, job, view, ledger, air, policy, extra_margin_c=extra_margin_c)
        if isinstance(s, Scored) and (
            best is None
            or s.score > best.score
            or (s.score == best.score and board.device_id < best.board.device_id)
        ):
            best = s
    return best


def place(
    job: JobSpec, need: int, view: FleetView, policy: PlacementPolicy = DEFAULT_POLICY
) -> list[Assignment]:
    """Up to ``need`` new replicas of ``job`` (fewer when not enough boards are eligible),
    by its strategy; each assignment says why that board and what it read."""
    if need <= 0:
        return []
    ledger = Ledger()
    if job.strategy == SPREAD:
        return _spread(job, need, view, ledger)
    out: list[Assignment] = []
    for _ in range(need):
        best = best_board(job, view, ledger, policy)
        if best is None:
            break
        board = best.board
        watts = board.watts_for(job.cpu_pct, job.watts)
        ledger.add(job.id, board, job.cpu_pct, watts, 1)
        i = best.inputs
        reason = (
            f"physical: best of the eligible boards (score {best.score:.1f}): predicted "
            f"{i['predicted_c']} °C with the job against its warning {board.warning_c:g} °C"
        )
        if "rack_budget_w" in i:
            rack = view.rack_label(board.rack_id)
            reason += f", rack {rack} at {i['rack_draw_w']} of {i['rack_budget_w']:g} W"
        out.append(Assignment(job.id, board.device_id, board.rack_id, best.score, reason, i))
    return out


def _spread(job: JobSpec, need: int, view: FleetView, ledger: Ledger) -> list[Assignment]:
    """Round-robin: each replica to the eligible board with the fewest placements (then
    the lowest device id), blind to temperature, power and place."""
    out: list[Assignment] = []
    for _ in range(need):
        eligible = [b for b in view.boards if hard_block(b, job, view, ledger) is None]
        if not eligible:
            break
        board = min(
            eligible,
            key=lambda b: (len(b.placements) + ledger.placements.get(b.device_id, 0), b.device_id),
        )
        count = len(board.placements) + ledger.placements.get(board.device_id, 0)
        ledger.add(job.id, board, job.cpu_pct, board.watts_for(job.cpu_pct, job.watts), 1)
        inputs: dict[str, Input] = {"placements_on_board": count, "eligible_boards": len(eligible)}
        reason = f"spread: next eligible board in turn ({count} placements on it)"
        out.append(Assignment(job.id, board.device_id, board.rack_id, 0.0, reason, inputs))
    return out
