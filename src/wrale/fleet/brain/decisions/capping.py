"""Rack power capping: keep every rack with a budget under it, closed loop on measured draw.

Each period, a rack drawing more than ``setpoint`` of its budget sheds the excess: first the
cgroup CPU quotas of its placements, lowest priority first (Google's Thunderbolt, OSDI
2020), then its boards' frequency caps within their real range (never below a board's
floor), then the quotas of protected (high-priority) placements. The watts a cut saves are
estimated from each board's measured draw. A rack still over its budget a second period in a
row gets the last resort: every quota to its least (``MIN_QUOTA_PCT``: a board refuses 0)
and every board at its floor. So, whenever that last resort fits the budget, no rack is over
it for more than two periods in a row. Caps are released in the reverse order, only after
``release_hold_periods`` periods with room, spending part of the room each period
(hysteresis). The quotas and caps in force are read from the view (what the runner stored);
only the per-rack streaks are carried, as an explicit value.
Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from wrale.fleet.brain.decisions.view import BoardView, FleetView, Inputs, PlacementView

FULL_PCT = 100.0
MIN_QUOTA_PCT = 1.0  # the least CPU quota set: a board refuses 0, as systemd's CPUQuota= does


@dataclass(frozen=True, slots=True)
class CappingPolicy:
    setpoint: float = 0.95  # shed when a rack draws more than this fraction of its budget
    release_below: float = 0.88  # release only while it draws less than this fraction
    release_hold_periods: int = 3  # ... for this many periods in a row
    release_share: float = 0.5  # spend at most this share of the room in one period
    protected_priority: int = 90  # quotas at or above: cut only after the boards' clocks


DEFAULT_POLICY = CappingPolicy()


@dataclass(frozen=True, slots=True)
class RackState:
    over_periods: int = 0  # periods in a row measured over the budget
    room_periods: int = 0  # periods in a row with room below ``release_below``


@dataclass(frozen=True, slots=True)
class CappingState:
    racks: Mapping[str, RackState] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SetQuota:
    """Set a placement's CPU quota (``None``: lift it)."""

    placement_id: str
    job_id: str
    device_id: str
    rack_id: str
    cpu_quota_pct: float | None
    reason: str
    inputs: Inputs


@dataclass(frozen=True, slots=True)
class SetFreqCap:
    """Set a board's frequency cap (``None``: lift it)."""

    device_id: str
    rack_id: str
    max_freq_pct: float | None
    reason: str
    inputs: Inputs


CapAction = SetQuota | SetFreqCap


def cap_racks(
    view: FleetView, state: CappingState = CappingState(), policy: CappingPolicy = DEFAULT_POLICY
) -> tuple[list[CapAction], CappingState]:
    """One period of the capping loop over every rack: the actions and the next state."""
    actions: list[CapAction] = []
    racks: dict[str, RackState] = {}
    rack_ids = sorted({b.rack_id for b in view.boards if b.rack_id is not None})
    for rack_id in rack_ids:
        plan = _Plan(view, rack_id)
        budget = view.budget_w(rack_id)
        if budget is None or budget <= 0:
            actions += plan.release_all("no budget on the rack")
            continue
        prev = state.racks.get(rack_id, RackState())
        draw = view.rack_draw_w(rack_id)
        over = draw > budget
        rs = RackState(prev.over_periods + 1 if over else 0, 0)
        inputs: Inputs = {"rack_draw_w": round(draw, 2), "budget_w": budget}
        name = view.rack_label(rack_id)
        if draw > policy.setpoint * budget:
            if over and prev.over_periods >= 1:
                why = (
                    f"rack {name} still over its budget ({draw:.1f} of {budget:g} W) a second "
                    f"period: every quota to {MIN_QUOTA_PCT:g} % and every board at its floor"
                )
                actions += plan.last_resort(why, inputs)
            else:
                excess = draw - policy.setpoint * budget
                why = (
                    f"rack {name} draws {draw:.1f} W of its {budget:g} W budget: "
                    f"shedding {excess:.1f} W"
                )
                actions += plan.shed(excess, policy.protected_priority, why, inputs)
        elif draw < policy.release_below * budget:
            rs = RackState(0, prev.room_periods + 1)
            if rs.room_periods >= policy.release_hold_periods:
                room = (policy.setpoint * budget - draw) * policy.release_share
                why = (
                    f"rack {name} draws {draw:.1f} W of its {budget:g} W budget for "
                    f"{rs.room_periods} periods: releasing up to {room:.1f} W"
                )
                actions += plan.release(room, policy.protected_priority, why, inputs)
        racks[rack_id] = rs
    return actions, CappingState(racks)


class _Plan:
    """One rack's quotas and caps as they stand, the changes planned this period, and the
    watts each change is worth (estimated from the boards' measured draw)."""

    def __init__(self, view: FleetView, rack_id: str) -> None:
        self.rack_id = rack_id
        self.boards = sorted(view.boards_in(rack_id), key=lambda b: b.device_id)
        self.quota = {p.id: p.cpu_quota_pct for b in self.boards for p in b.placements}
        self.cap = {b.device_id: _cap_of(b) for b in self.boards}
        self.cap0 = dict(self.cap)
        self.load0 = {b.device_id: self._load(b) for b in self.boards}
        self.dyn = {b.device_id: _dynamic_w(b) for b in self.boards}
        self.saved = dict.fromkeys(self.cap, 0.0)

    def _load(self, board: BoardView) -> float:
        return sum(_limit(p, self.quota[p.id]) for p in board.placements)

    def _per_pct_full(self, board: BoardView, *, shedding: bool) -> float:
        """Watts one percent of CPU costs on ``board`` at full clock: measured, bounded by
        the model on the side that errs safe (shedding: the smaller; releasing: the
        larger). Nothing counts as saved on a board whose draw is unknown."""
        dev = board.device_id
        nominal = board.dynamic_w / FULL_PCT
        dyn, load = self.dyn[dev], self.load0[dev]
        if dyn is None:
            return 0.0 if shedding else nominal
        if load <= 0:
            return nominal
        measured = dyn / load / (self.cap0[dev] / FULL_PCT)
        return min(measured, nominal) if shedding else max(measured, nominal)

    def _pairs(self, protected: int, *, high: bool) -> list[tuple[BoardView, PlacementView]]:
        """Placements below (or at and above) ``protected``, lowest priority first."""
        pairs = [
            (b, p) for b in self.boards for p in b.placements if (p.priority >= protected) == high
        ]
        return sorted(pairs, key=lambda bp: (bp[1].priority, bp[1].id))

    def _set_quota(
        self, b: BoardView, p: PlacementView, q: float | None, why: str, i: Inputs
    ) -> SetQuota:
        self.quota[p.id] = q
        inputs = {
            **i,
            "priority": p.priority,
            "cpu_pct": p.cpu_pct,
            "was_quota_pct": p.cpu_quota_pct,
            "board_power_w": b.known_power_w,
        }
        return SetQuota(p.id, p.job_id, b.device_id, self.rack_id, q, why, inputs)

    def _set_cap(self, b: BoardView, cap: float | None, why: str, i: Inputs) -> SetFreqCap:
        self.cap[b.device_id] = FULL_PCT if cap is None else cap
        inputs = {
            **i,
            "was_cap_pct": b.freq_cap_pct,
            "min_freq_pct": b.min_freq_pct,
            "board_power_w": b.known_power_w,
        }
        return SetFreqCap(b.device_id, self.rack_id, cap, why, inputs)

    # ------------------------------------------------------------------ shedding

    def shed(self, excess: float, protected: int, why: str, inputs: Inputs) -> list[CapAction]:
        out: list[CapAction] = []
        left = excess
        for b, p in self._pairs(protected, high=False):
            left = self._cut_quota(b, p, left, why, inputs, out)
        for b in sorted(self.boards, key=lambda b: (-self._dyn_left(b), b.device_id)):
            left = self._cut_cap(b, left, why, inputs, out)
        for b, p in self._pairs(protected, high=True):
            left = self._cut_quota(b, p, left, why, inputs, out)
        return out

    def _dyn_left(self, b: BoardView) -> float:
        dyn = self.dyn[b.device_id]
        return 0.0 if dyn is None else max(0.0, dyn - self.saved[b.device_id])

    def _cut_quota(
        self, b: BoardView, p: PlacementView, left: float, why: str, i: Inputs, out: list[CapAction]
    ) -> float:
        limit = _limit(p, self.quota[p.id])
        w = self._per_pct_full(b, shedding=True) * self.cap[b.device_id] / FULL_PCT
        if left <= 0 or limit <= MIN_QUOTA_PCT or w <= 0:
            return left
        new = max(MIN_QUOTA_PCT, float(math.floor(limit - left / w)))
        saved = (limit - new) * w
        self.saved[b.device_id] += saved
        text = f"{why}: priority {p.priority} placement quota {new:g} %"
        out.append(self._set_quota(b, p, new, text, i))
        return left - saved

    def _cut_cap(
        self, b: BoardView, left: float, why: str, i: Inputs, out: list[CapAction]
    ) -> float:
        old, floor, dyn = self.cap[b.device_id], _floor(b), self._dyn_left(b)
        if left <= 0 or old <= floor or dyn <= 0:
            return left
        new = floor if left >= dyn else max(floor, math.floor(old * (1 - left / dyn) * 10) / 10)
        saved = dyn * (1 - new / old)
        self.saved[b.device_id] += saved
        out.append(self._set_cap(b, new, f"{why}: clock capped at {new:g} %", i))
        return left - saved

    def last_resort(self, why: str, inputs: Inputs) -> list[CapAction]:
        out: list[CapAction] = []
        for b in self.boards:
            for p in b.placements:
                if self.quota[p.id] != MIN_QUOTA_PCT:
                    out.append(self._set_quota(b, p, MIN_QUOTA_PCT, why, inputs))
            if self.cap[b.device_id] != _floor(b) or b.freq_cap_pct is None:
                out.append(self._set_cap(b, _floor(b), why, inputs))
        return out

    # ------------------------------------------------------------------ releasing

    def release(self, room: float, protected: int, why: str, inputs: Inputs) -> list[CapAction]:
        """Give back up to ``room`` watts: protected quotas, then clocks, then the other
        quotas, highest priority first (the reverse of shedding)."""
        out: list[CapAction] = []
        left = room
        for b, p in reversed(self._pairs(protected, high=True)):
            left = self._raise_quota(b, p, left, why, inputs, out)
        for b in sorted(self.boards, key=lambda b: (self.cap[b.device_id], b.device_id)):
            left = self._raise_cap(b, left, why, inputs, out)
        for b, p in reversed(self._pairs(protected, high=False)):
            left = self._raise_quota(b, p, left, why, inputs, out)
        return out

    def _raise_cap(
        self, b: BoardView, left: float, why: str, i: Inputs, out: list[CapAction]
    ) -> float:
        old = self.cap[b.device_id]
        if old >= FULL_PCT or left <= 0:
            return left
        per_pct_full = self._per_pct_full(b, shedding=False)
        dyn = self.dyn[b.device_id]
        measured_full = 0.0 if dyn is None else dyn * FULL_PCT / self.cap0[b.device_id]
        full_w = max(per_pct_full * self._load(b), measured_full)
        if full_w <= 0:
            new = FULL_PCT
        else:
            new = min(FULL_PCT, math.floor((old + left * FULL_PCT / full_w) * 10) / 10)
        if new <= old:
            return left
        cap = None if new >= FULL_PCT else new
        text = f"{why}: clock cap " + ("lifted" if cap is None else f"{cap:g} %")
        out.append(self._set_cap(b, cap, text, i))
        return left - full_w * (new - old) / FULL_PCT

    def _raise_quota(
        self, b: BoardView, p: PlacementView, left: float, why: str, i: Inputs, out: list[CapAction]
    ) -> float:
        quota = self.quota[p.id]
        if quota is None or left <= 0:
            return left
        w = max(self._per_pct_full(b, shedding=False) * self.cap[b.device_id] / FULL_PCT, 1e-9)
        new = min(p.cpu_pct, float(math.floor(_limit(p, quota) + left / w)))
        if new <= _limit(p, quota):
            return left
        q = None if new >= p.cpu_pct else new
        text = f"{why}: priority {p.priority} placement quota " + (
            "lifted" if q is None else f"{q:g} %"
        )
        out.append(self._set_quota(b, p, q, text, i))
        return left - (new - _limit(p, quota)) * w

    def release_all(self, why: str) -> list[CapAction]:
        out: list[CapAction] = []
        for b in self.boards:
            if b.freq_cap_pct is not None:
                out.append(self._set_cap(b, None, why, {}))
            for p in b.placements:
                if p.cpu_quota_pct is not None:
                    out.append(self._set_quota(b, p, None, why, {}))
        return out


def _limit(p: PlacementView, quota: float | None) -> float:
    return p.cpu_pct if quota is None else max(0.0, min(p.cpu_pct, quota))


def _floor(b: BoardView) -> float:
    return min(FULL_PCT, max(0.0, b.min_freq_pct))


def _cap_of(b: BoardView) -> float:
    cap = b.freq_cap_pct
    return FULL_PCT if cap is None or not math.isfinite(cap) else max(_floor(b), min(FULL_PCT, cap))


def _dynamic_w(b: BoardView) -> float | None:
    """Its measured draw above idle (``None``: unknown)."""
    power = b.known_power_w
    return None if power is None else max(0.0, power - b.idle_w)
