"""What every wear trend shares: the ``Trend`` a board's part is judged by, the straight
line fitted to its days and where that line reaches a limit. Pure: no I/O, no clock."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from wrale.fleet.brain.decisions.analysis import DAY_S


@dataclass(frozen=True, slots=True)
class Trend:
    """``points``: (day_start, wear %) — the evidence to chart; ``replace_*``: timestamps
    (``None``: not foreseen within the horizon)."""

    device_id: str
    kind: str
    points: tuple[tuple[float, float], ...]
    baseline: float
    wear_pct: float
    z: float
    slope_pct_per_day: float
    slope_se: float
    worn: bool
    replace_before: float | None
    replace_earliest: float | None
    replace_latest: float | None

    def evidence(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "baseline": round(self.baseline, 4),
            "wear_pct": round(self.wear_pct, 2),
            "z": round(self.z, 1),
            "slope_pct_per_day": round(self.slope_pct_per_day, 3),
            "slope_se": round(self.slope_se, 3),
            "worn": self.worn,
            "replace_before": self.replace_before,
            "replace_earliest": self.replace_earliest,
            "replace_latest": self.replace_latest,
            "points": [[t, round(v, 2)] for t, v in self.points],
        }


def finite(*values: float) -> bool:
    return all(isinstance(v, int | float) and math.isfinite(v) for v in values)


def fit_line(points: Sequence[tuple[float, float]]) -> tuple[float, float, float]:
    """Least squares in days: (slope per day, its standard error, value at the last point)."""
    n = len(points)
    xs = [t / DAY_S for t, _ in points]
    ys = [v for _, v in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if n < 3 or sxx <= 0:
        return 0.0, math.inf, ys[-1]
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    resid = sum((y - my - slope * (x - mx)) ** 2 for x, y in zip(xs, ys, strict=True))
    se = math.sqrt(resid / (n - 2) / sxx)
    return slope, se, my + slope * (xs[-1] - mx)


def crossing(now: float, value: float, slope: float, limit: float, horizon: float) -> float | None:
    """When a line through ``value`` at ``now`` rising ``slope`` a day reaches ``limit``."""
    if value >= limit:
        return now
    if slope <= 0:
        return None
    days = (limit - value) / slope
    return now + days * DAY_S if days <= horizon else None
