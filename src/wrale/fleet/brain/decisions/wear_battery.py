"""A battery's capacity measured across its discharges, from hourly aggregates: the
fallback state of health of a board whose battery reports none (``battery_fade``).

Each discharge is a run of consecutive hours with samples on battery. Its energy is the sum
over those hours of the share of the hour's samples on battery times the hour's mean draw
(watt-hours); its drop is the battery's highest % in the run less its lowest. A day's
capacity is its discharges' energy over their drop (Wh per 100 %), taken when the drop is
at least ``MIN_DROP_PCT`` (a gauge that reports whole percents makes a small drop mostly
rounding). A run longer than ``MAX_RUN_HOURS`` is a board living on its battery (charged by
something else meanwhile), not a discharge to measure. The central does not know the
design capacity, so the capacities are given as a share of the median of the board's first
``baseline_days`` measured days: the trend compares with them anyway. Pure.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from wrale.fleet.brain.decisions.wear_fit import finite

HOUR_S = 3600.0
MIN_DROP_PCT = 5.0
MAX_RUN_HOURS = 24


@dataclass(frozen=True, slots=True)
class DischargeHour:
    """An hour of a board with samples on battery: its start, the start of its day, the
    share of its samples on battery (0-1), its mean draw (W), and the battery's highest
    and lowest % in the hour."""

    start: float
    day_start: float
    on_battery: float
    power_w: float
    pct_high: float
    pct_low: float


@dataclass(frozen=True, slots=True)
class Discharge:
    day_start: float  # the day of its first hour
    energy_wh: float
    drop_pct: float


def _usable(h: DischargeHour) -> bool:
    return (
        finite(h.start, h.day_start, h.on_battery, h.power_w, h.pct_high, h.pct_low)
        and 0 < h.on_battery <= 1
        and h.power_w >= 0
        and 0 <= h.pct_low <= h.pct_high <= 100
    )


def discharges(hours: Sequence[DischargeHour]) -> list[Discharge]:
    """The runs of consecutive hours on battery, oldest first (too long ones left out)."""
    runs: list[list[DischargeHour]] = []
    for h in sorted((h for h in hours if _usable(h)), key=lambda h: h.start):
        if runs and h.start - runs[-1][-1].start == HOUR_S:
            runs[-1].append(h)
        else:
            runs.append([h])
    return [
        Discharge(
            run[0].day_start,
            sum(h.on_battery * h.power_w for h in run),  # W over 1 h: Wh
            max(h.pct_high for h in run) - min(h.pct_low for h in run),
        )
        for run in runs
        if len(run) <= MAX_RUN_HOURS
    ]


def capacity_days(hours: Sequence[DischargeHour]) -> list[tuple[float, float]]:
    """(day start, Wh per 100 % of the gauge) of the days with a measurable discharge."""
    per_day: dict[float, list[Discharge]] = {}
    for d in discharges(hours):
        if d.drop_pct >= MIN_DROP_PCT and d.energy_wh > 0:
            per_day.setdefault(d.day_start, []).append(d)
    return sorted(
        (day, sum(d.energy_wh for d in ds) / (sum(d.drop_pct for d in ds) / 100.0))
        for day, ds in per_day.items()
    )


def measured_soh(hours: Sequence[DischargeHour], baseline_days: int) -> list[tuple[float, float]]:
    """(day start, capacity over the median of the first ``baseline_days`` measured days)."""
    days = capacity_days(hours)
    if not days:
        return []
    base = statistics.median(c for _, c in days[:baseline_days])
    return [(t, c / base) for t, c in days] if base > 0 else []
