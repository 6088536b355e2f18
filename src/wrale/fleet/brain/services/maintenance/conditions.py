"""When disruptive work may happen on a board: the pure evaluation of maintenance windows
(``docs/maintenance.md``). A window is open from each start its cron expression gives, in
its time zone, for its duration; its conditions must all hold at that moment. A reading
older than ``STALE_AFTER_S`` or missing makes its condition unknown, and unknown is not met
(the reason says so). No IO, no clock: the service reads the database and passes values in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wrale.fleet.brain.decisions.view import STALE_AFTER_S
from wrale.fleet.brain.services.maintenance import cron

# Operations that disrupt a board's work; they wait for a maintenance window.
DISRUPTIVE_OPS = frozenset({"reboot", "shutdown"})
# Readings the conditions use (telemetry metric names).
ON_BATTERY, BATTERY, AMBIENT, CASE_OPEN, POWER = (
    "on_battery",
    "battery_pct",
    "ambient_temp_c",
    "case_open",
    "power_w",
)
METRICS = (ON_BATTERY, BATTERY, AMBIENT, CASE_OPEN, POWER)
CONDITION_KEYS = (
    "not_on_battery",
    "battery_min_pct",
    "ambient_max_c",
    "case_closed",
    "rack_under_budget",
)

Latest = Mapping[str, tuple[float, float]]  # metric -> (ts, value)


@dataclass(frozen=True, slots=True)
class Rack:
    """The board's rack: its budget (None: none) and the fresh power readings of its
    boards (None: no fresh reading in the rack)."""

    name: str
    budget_w: float | None
    draw_w: float | None


@dataclass(frozen=True, slots=True)
class Readings:
    latest: Latest = field(default_factory=dict)
    rack: Rack | None = None


@dataclass(frozen=True, slots=True)
class Window:
    id: str
    name: str
    cron: str
    duration_s: float
    timezone: str
    conditions: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Verdict:
    """One window's answer now: open (from ``opened_at`` to ``closes_at``), the conditions
    that fail (empty: all hold), and its next start after now."""

    window: Window
    open: bool
    opened_at: float | None
    closes_at: float | None
    failing: tuple[str, ...]
    next_open: float | None

    @property
    def allows(self) -> bool:
        return self.open and not self.failing

    def view(self) -> dict[str, Any]:
        return {
            "id": self.window.id,
            "name": self.window.name,
            "open": self.open,
            "opened_at": self.opened_at,
            "closes_at": self.closes_at,
            "conditions_met": not self.failing,
            "failing": list(self.failing),
            "next_open": self.next_open,
        }


def _fresh(latest: Latest, metric: str, now: float) -> float | None:
    got = latest.get(metric)
    if got is None:
        return None
    ts, value = got
    if not (math.isfinite(ts) and math.isfinite(value)) or now - ts > STALE_AFTER_S:
        return None
    return value


def failing_conditions(conditions: Mapping[str, Any], readings: Readings, now: float) -> list[str]:
    """Why each condition that does not hold fails (empty: all hold)."""
    out: list[str] = []
    latest = readings.latest
    if conditions.get("not_on_battery"):
        flag = _fresh(latest, ON_BATTERY, now)
        if flag is None:
            out.append("power source unknown (no fresh on_battery reading)")
        elif flag >= 0.5:
            out.append("on battery")
    floor = conditions.get("battery_min_pct")
    if floor is not None:
        pct = _fresh(latest, BATTERY, now)
        if pct is None:
            out.append("battery level unknown (no fresh battery_pct reading)")
        elif pct < floor:
            out.append(f"battery {pct:.0f}% below the floor {floor:g}%")
    limit = conditions.get("ambient_max_c")
    if limit is not None:
        amb = _fresh(latest, AMBIENT, now)
        if amb is None:
            out.append("ambient unknown (no fresh ambient_temp_c reading)")
        elif amb >= limit:
            out.append(f"ambient {amb:.1f} °C not below {limit:g} °C")
    if conditions.get("case_closed"):
        case = _fresh(latest, CASE_OPEN, now)
        if case is None:
            out.append("case state unknown (no fresh case_open reading)")
        elif case >= 0.5:
            out.append("case open")
    if conditions.get("rack_under_budget"):
        out.extend(_rack(readings.rack))
    return out


def _rack(rack: Rack | None) -> list[str]:
    if rack is None:
        return ["rack budget unknown (the board is in no rack)"]
    if rack.budget_w is None:
        return []
    if rack.draw_w is None:
        return [f"rack {rack.name} draw unknown (no fresh power_w reading)"]
    if rack.draw_w >= rack.budget_w:
        return [f"rack {rack.name} at {rack.draw_w:.0f} W of its {rack.budget_w:g} W budget"]
    return []


def evaluate(window: Window, readings: Readings, now: float) -> Verdict:
    """One window at ``now``: open or not, what fails, when it next opens."""
    parsed, tz = cron.parse(window.cron), cron.zone(window.timezone)
    start = cron.last_start(parsed, tz, now, window.duration_s)
    is_open = start is not None and now < start + window.duration_s
    failing = tuple(failing_conditions(window.conditions, readings, now)) if is_open else ()
    return Verdict(
        window=window,
        open=is_open,
        opened_at=start if is_open else None,
        closes_at=start + window.duration_s if is_open and start is not None else None,
        failing=failing,
        next_open=cron.next_start(parsed, tz, now),
    )


def decide(verdicts: Sequence[Verdict]) -> tuple[bool, str | None]:
    """May disruptive work happen: yes with no window at all or when one window is open
    with all its conditions; otherwise no, with the reason."""
    if not verdicts or any(v.allows for v in verdicts):
        return True, None
    reasons = [
        f"window {v.window.name!r} open but " + ", ".join(v.failing) for v in verdicts if v.open
    ]
    if reasons:
        return False, "; ".join(reasons)
    upcoming = [v for v in verdicts if v.next_open is not None]
    if not upcoming:
        return False, "no window of this board ever opens"
    soonest = min(upcoming, key=lambda v: v.next_open or 0.0)
    assert soonest.next_open is not None
    when = cron.local_text(soonest.next_open, cron.zone(soonest.window.timezone))
    return False, f"next window opens {when}"


def may_disrupt_now(
    windows: Sequence[Window], readings: Readings, now: float
) -> tuple[bool, str | None, list[Verdict]]:
    """``decide`` over every window (pure), with each window's verdict."""
    verdicts = [evaluate(w, readings, now) for w in windows]
    ok, reason = decide(verdicts)
    return ok, reason, verdicts
