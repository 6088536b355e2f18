"""An eMMC's wear, from the device's own estimate as the kernel shows it (``life_time``:
the band of its life used, reported as the band's upper bound, 10 … 100 %; ``pre_eol_info``:
1 normal, 2 warning, 3 urgent).

Unlike the other trends this one needs no baseline: the device measures itself. Its points
are the day's highest life used (%), ``wear_pct`` the latest, ``baseline`` the first day's.
It is *worn* when the latest ``pre_eol`` is at least ``worn_pre_eol`` or the life used is
at least ``worn_pct``. "Replace before" is where a straight line fitted to the days (all of
them: the bands are 10 % wide and move seldom) reaches ``limit_pct`` (the whole estimated
life), its earliest and latest from the slope ± 2 standard errors; an urgent ``pre_eol``
(3, the reserved blocks 90 % consumed) means now. ``z`` is 0: no statistical test is made.
Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from wrale.fleet.brain.decisions.wear_fit import Trend, crossing, finite, fit_line

EMMC = "emmc"
URGENT_PRE_EOL = 3
MAX_TS = 1e12  # a day start beyond this (year 33658) is garbage, not a date


@dataclass(frozen=True, slots=True)
class EmmcDay:
    """A day's highest eMMC life used (%) and pre-EOL level (``None``: not reported)."""

    day_start: float
    life_used_pct: float
    pre_eol: int | None = None


@dataclass(frozen=True, slots=True)
class EmmcPolicy:
    worn_pct: float = 80.0
    worn_pre_eol: int = 2
    limit_pct: float = 100.0
    horizon_days: float = 365.0


DEFAULT_EMMC_POLICY = EmmcPolicy()


def emmc_trend(
    device_id: str, days: Sequence[EmmcDay], policy: EmmcPolicy = DEFAULT_EMMC_POLICY
) -> Trend | None:
    """The eMMC's trend (``None``: the board reported no usable day)."""
    by_day: dict[float, EmmcDay] = {
        d.day_start: d
        for d in days
        if finite(d.day_start, d.life_used_pct)
        and abs(d.day_start) <= MAX_TS
        and 0.0 <= d.life_used_pct <= 100.0
    }
    if not by_day:
        return None
    ordered = [by_day[t] for t in sorted(by_day)]
    points = [(d.day_start, d.life_used_pct) for d in ordered]
    last = ordered[-1]
    pre_eol = last.pre_eol if isinstance(last.pre_eol, int) else None
    slope, se, fitted = fit_line(points)
    se_ok = se if finite(se) else 0.0
    used = last.life_used_pct
    worn = used >= policy.worn_pct or (pre_eol is not None and pre_eol >= policy.worn_pre_eol)
    now, limit, horizon = last.day_start, policy.limit_pct, policy.horizon_days
    value = max(fitted, used)

    def when(rate: float) -> float | None:
        if not worn:
            return None
        if pre_eol is not None and pre_eol >= URGENT_PRE_EOL:
            return now
        return crossing(now, value, rate, limit, horizon)

    return Trend(
        device_id=device_id,
        kind=EMMC,
        points=tuple(points),
        baseline=points[0][1],
        wear_pct=used,
        z=0.0,
        slope_pct_per_day=slope,
        slope_se=se,
        worn=worn,
        replace_before=when(slope),
        replace_earliest=when(slope + 2 * se_ok),
        replace_latest=when(slope - 2 * se_ok),
    )
