"""Thermal balancing and evacuation: work leaves boards that are heading for trouble.

A board predicted to reach its throttle temperature within the horizon (from its trend,
not only once it throttles), on battery, or with a failed fan sheds its restartable
placements, each to the best other board by the physical placement score with a wider
thermal margin (hysteresis). When no board can take it, a placement on a board with a
failed fan, or on battery for a job that does not allow it, goes back to pending (the
placement loop finds it a board later); a merely warm board keeps it (the firmware
throttles, work goes on). At most ``max_moves_per_min`` moves fleet-wide, a placement moves
at most once per ``placement_cooldown_s``, a board that shed work takes none for
``board_cooldown_s``. The memory of recent moves is an explicit state in and out.
Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from wrale.fleet.brain.decisions.placement import (
    DEFAULT_POLICY as PLACEMENT_POLICY,
)
from wrale.fleet.brain.decisions.placement import (
    Ledger,
    PlacementPolicy,
    best_board,
    c_per_w,
    predicted_temp_c,
)
from wrale.fleet.brain.decisions.view import (
    BoardView,
    FleetView,
    Input,
    Inputs,
    JobSpec,
    PlacementView,
)

WINDOW_S = 60.0


@dataclass(frozen=True, slots=True)
class BalancingPolicy:
    throttle_margin_c: float = 2.0  # shed when predicted within this of throttling
    destination_margin_c: float = 3.0  # a destination keeps this much more (hysteresis)
    max_moves_per_min: int = 6  # fleet-wide, evictions included
    placement_cooldown_s: float = 600.0  # a placement moves at most once in this time
    board_cooldown_s: float = 300.0  # a board that shed work takes none for this long


DEFAULT_POLICY = BalancingPolicy()


@dataclass(frozen=True, slots=True)
class BalancingState:
    moves_at: tuple[float, ...] = ()  # when the moves of the last minute were decided
    moved_at: Mapping[str, float] = field(default_factory=dict)  # placement id -> last move
    shed_at: Mapping[str, float] = field(default_factory=dict)  # device id -> last shed


@dataclass(frozen=True, slots=True)
class Move:
    """Move a placement to another board (stop here, start there)."""

    placement_id: str
    job_id: str
    from_device: str
    to_device: str
    reason: str
    inputs: Inputs


@dataclass(frozen=True, slots=True)
class Evict:
    """Stop a placement here and put it back to pending: no board can take it now."""

    placement_id: str
    job_id: str
    device_id: str
    reason: str
    inputs: Inputs


BalanceAction = Move | Evict


@dataclass(frozen=True, slots=True)
class _Trouble:
    board: BoardView
    urgency: float
    why: str
    evacuate: bool  # everything restartable leaves (fan, battery), or only enough to cool
    predicted_c: float | None
    battery: bool = False


def balance(
    view: FleetView,
    state: BalancingState = BalancingState(),
    policy: BalancingPolicy = DEFAULT_POLICY,
    placement: PlacementPolicy = PLACEMENT_POLICY,
) -> tuple[list[BalanceAction], BalancingState]:
    """One period of the balancing loop: the moves and evictions, and the next state."""
    now = view.now
    moves_at = [t for t in state.moves_at if now - t < WINDOW_S]
    moved_at = {k: t for k, t in state.moved_at.items() if now - t < policy.placement_cooldown_s}
    shed_at = {k: t for k, t in state.shed_at.items() if now - t < policy.board_cooldown_s}
    troubles = [t for b in view.boards if (t := _trouble(b, policy, placement)) is not None]
    troubles.sort(key=lambda t: (-t.urgency, t.board.device_id))
    senders = frozenset(t.board.device_id for t in troubles) | frozenset(shed_at)
    ledger = Ledger()
    actions: list[BalanceAction] = []
    for trouble in troubles:
        board = trouble.board
        cooling_needed = _cooling_needed(trouble, policy, placement)
        for p in _candidates(board, trouble, moved_at):
            if len(moves_at) >= policy.max_moves_per_min:
                break
            if not trouble.evacuate and cooling_needed <= 0:
                break
            if trouble.battery and _job(view, p).allow_battery:
                continue  # this job may run on battery: it stays
            action = _move_one(view, board, p, trouble, ledger, senders, policy, placement)
            if action is None:
                continue
            actions.append(action)
            moves_at.append(now)
            moved_at[p.id] = now
            shed_at[board.device_id] = now
            cooling_needed -= board.watts_for(p.cpu_limit_pct, p.watts) * c_per_w(board, placement)
    state_out = BalancingState(tuple(moves_at), moved_at, shed_at)
    return actions, state_out


def _trouble(
    board: BoardView, policy: BalancingPolicy, placement: PlacementPolicy
) -> _Trouble | None:
    """Why ``board`` should shed work now (``None``: it need not)."""
    if not board.online or not any(p.restartable for p in board.placements):
        return None
    predicted = predicted_temp_c(board, placement)
    if board.fan_failed:
        return _Trouble(board, 300.0, "its fan failed", evacuate=True, predicted_c=predicted)
    if board.on_battery:
        pct = board.battery_pct
        why = "it runs on battery" + ("" if pct is None else f" ({pct:.0f} %)")
        urgency = 200.0 - (pct or 0.0)
        return _Trouble(board, urgency, why, evacuate=True, predicted_c=predicted, battery=True)
    limit = board.throttle_c - policy.throttle_margin_c
    if board.throttled or (predicted is not None and predicted >= limit):
        why = (
            "it throttles now"
            if board.throttled
            else f"it is heading for throttling: {predicted:.1f} °C predicted within "
            f"{placement.horizon_min:g} min (throttles at {board.throttle_c:g} °C)"
        )
        urgency = 100.0 + (predicted or board.throttle_c) - board.throttle_c
        return _Trouble(board, urgency, why, evacuate=False, predicted_c=predicted)
    return None


def _cooling_needed(
    trouble: _Trouble, policy: BalancingPolicy, placement: PlacementPolicy
) -> float:
    """Degrees the board must lose to stay clear of throttling (thermal trouble only)."""
    board = trouble.board
    target = board.throttle_c - policy.throttle_margin_c - policy.destination_margin_c
    predicted = trouble.predicted_c
    if predicted is None:
        return board.throttle_c - target  # it throttles but its temperature is unknown
    return max(predicted - target, 0.1 if board.throttled else 0.0)


def _candidates(
    board: BoardView, trouble: _Trouble, moved_at: Mapping[str, float]
) -> list[PlacementView]:
    """Its restartable placements not moved lately: for heat, the biggest heaters first
    (fewest moves); for an evacuation, the highest priority first."""
    ready = [p for p in board.placements if p.restartable and p.id not in moved_at]
    if trouble.evacuate:
        return sorted(ready, key=lambda p: (-p.priority, p.id))
    return sorted(ready, key=lambda p: (-p.cpu_limit_pct, p.priority, p.id))


def _job(view: FleetView, p: PlacementView) -> JobSpec:
    """The placement's job (from the view, or as the placement itself describes it)."""
    job = view.job(p.job_id)
    if job is None:
        return JobSpec(p.job_id, priority=p.priority, cpu_pct=p.cpu_pct, watts=p.watts)
    return JobSpec(
        job.id,
        priority=job.priority,
        cpu_pct=p.cpu_pct,
        watts=p.watts if p.watts is not None else job.watts,
        max_per_rack=job.max_per_rack,
        allow_battery=job.allow_battery,
        devices=job.devices,
    )


def _move_one(
    view: FleetView,
    board: BoardView,
    p: PlacementView,
    trouble: _Trouble,
    ledger: Ledger,
    senders: frozenset[str],
    policy: BalancingPolicy,
    placement: PlacementPolicy,
) -> BalanceAction | None:
    """Where ``p`` goes (a move), back to pending (an eviction), or stays (``None``)."""
    job = _job(view, p)
    watts = board.watts_for(p.cpu_pct, p.watts)
    # its own rack loses its watts and a replica first: a move within the rack is neutral
    ledger.add(job.id, board, p.cpu_pct, watts, -1)
    best = best_board(
        job,
        view,
        ledger,
        placement,
        exclude=senders | {board.device_id},
        extra_margin_c=policy.destination_margin_c,
    )
    inputs: dict[str, Input] = {
        "cpu_temp_c": board.known_temp_c,
        "trend_c_per_min": board.known_trend_c_per_min,
        "predicted_c": None if trouble.predicted_c is None else round(trouble.predicted_c, 2),
        "fan_failed": board.fan_failed,
        "power_source": None if board.known_source is None else board.known_source.value,
        "battery_pct": board.battery_pct,
        "priority": p.priority,
        "cpu_pct": p.cpu_pct,
    }
    if best is not None:
        dest = best.board
        ledger.add(job.id, dest, p.cpu_pct, dest.watts_for(p.cpu_pct, p.watts), 1)
        inputs.update({f"to_{k}": v for k, v in best.inputs.items()})
        reason = (
            f"{board.label}: {trouble.why}; moved to {dest.label} "
            f"(best other board, score {best.score:.1f}, predicted "
            f"{best.inputs.get('predicted_c')} °C there)"
        )
        return Move(p.id, p.job_id, board.device_id, dest.device_id, reason, inputs)
    if trouble.evacuate:
        reason = f"{board.label}: {trouble.why}; no other board can take it: back to pending"
        return Evict(p.id, p.job_id, board.device_id, reason, inputs)
    ledger.add(job.id, board, p.cpu_pct, watts, 1)  # it stays: undo
    return None
