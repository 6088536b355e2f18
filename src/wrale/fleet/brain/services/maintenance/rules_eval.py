"""Maintenance rule evaluation, pure: a condition tree (``all`` / ``any`` of bounds with a
minimum duration) judged over a board's 1-minute means. No I/O; ``rules_runner`` reads the
rollups and opens the tasks.

A bound ``cpu_temp_c > 75 for 2h`` holds when the newest minute is fresh, satisfies it,
and the minutes before it satisfied it without a break (a missing stretch longer than
``MAX_GAP_S`` is a break) back over ``for_s``. The answer has four values: ``HOLDS``;
``PENDING`` (the newest minute satisfies it, not long enough yet); ``FALSE`` (the newest
minute does not); ``UNKNOWN`` (no fresh minute). ``all`` and ``any`` combine them as
three-valued logic: what missing data could still change stays ``UNKNOWN``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from wrale.fleet.brain.services.alert_rules import OPS

BUCKET_S = 60.0  # the rollups' minute
FRESH_S = 180.0  # the newest minute must end at most this long ago
MAX_GAP_S = 300.0  # minutes missing between two readings longer than this break a run

Series = Sequence[tuple[float, float]]  # (minute start, the minute's mean)


class Truth(Enum):
    HOLDS = "holds"
    PENDING = "pending"
    FALSE = "false"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Bound:
    metric: str
    op: str
    value: float
    for_s: float = 0.0

    def describe(self) -> str:
        tail = f" for {self.for_s:g}s" if self.for_s else ""
        return f"{self.metric} {self.op} {self.value:g}{tail}"


@dataclass(frozen=True, slots=True)
class Combo:
    mode: str  # "all" | "any"
    parts: tuple[Bound | Combo, ...]


Expr = Bound | Combo


def build(tree: Mapping[str, Any]) -> Expr:
    """The expression of a stored (already validated) condition tree."""
    for mode in ("all", "any"):
        if mode in tree:
            return Combo(mode, tuple(build(part) for part in tree[mode]))
    return Bound(
        str(tree["metric"]), str(tree["op"]), float(tree["value"]), float(tree.get("for_s", 0))
    )


def bounds(expr: Expr) -> Iterator[Bound]:
    if isinstance(expr, Bound):
        yield expr
        return
    for part in expr.parts:
        yield from bounds(part)


def lookback_s(expr: Expr) -> float:
    """How far back the readings must go to judge ``expr``."""
    return max(b.for_s for b in bounds(expr)) + FRESH_S + 2 * BUCKET_S + MAX_GAP_S


def judge_bound(bound: Bound, series: Series, now: float) -> Truth:
    holds = OPS[bound.op]
    points = sorted((t, v) for t, v in series if math.isfinite(t) and math.isfinite(v) and t <= now)
    if not points or points[-1][0] + BUCKET_S < now - FRESH_S:
        return Truth.UNKNOWN
    newest, value = points[-1]
    if not holds(value, bound.value):
        return Truth.FALSE
    start = newest
    for t, v in reversed(points[:-1]):
        if start - t > MAX_GAP_S or not holds(v, bound.value):
            break
        start = t
    return Truth.HOLDS if newest + BUCKET_S - start >= bound.for_s else Truth.PENDING


def judge(expr: Expr, series: Mapping[str, Series], now: float) -> Truth:
    """``expr`` on one board: ``series`` maps a metric to its minutes."""
    if isinstance(expr, Bound):
        return judge_bound(expr, series.get(expr.metric, ()), now)
    got = {judge(part, series, now) for part in expr.parts}
    order = (
        (Truth.FALSE, Truth.PENDING, Truth.UNKNOWN, Truth.HOLDS)
        if expr.mode == "all"
        else (Truth.HOLDS, Truth.UNKNOWN, Truth.PENDING, Truth.FALSE)
    )
    return next(t for t in order if t in got)


def describe(expr: Expr) -> str:
    """``cpu_temp_c > 75 for 7200s and (fan_rpm < 1500 or …)``."""
    if isinstance(expr, Bound):
        return expr.describe()
    return f" {'and' if expr.mode == 'all' else 'or'} ".join(
        describe(p) if isinstance(p, Bound) else f"({describe(p)})" for p in expr.parts
    )


def latest_values(expr: Expr, series: Mapping[str, Series]) -> dict[str, float]:
    """The newest mean of each metric of ``expr`` (what a task shows as its evidence)."""
    out: dict[str, float] = {}
    for b in bounds(expr):
        points = [p for p in series.get(b.metric, ()) if math.isfinite(p[1])]
        if points:
            out[b.metric] = max(points)[1]
    return out
