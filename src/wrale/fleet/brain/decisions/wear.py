"""Wear trends and predictive maintenance: per board, from daily aggregates of its stored
telemetry, how far each part has worn since its baseline, whether that is real, and by when
it should be replaced; and a fleet-wide queue grouped by site and rack.

Each trend is a daily series of *wear* in % against the board's own baseline (its first
``baseline_days`` usable days), worse = higher:

- ``fan_wear``: RPM per point of duty (the fan's ``FanDay`` of ``analysis``, the same days
  the recommendations read), 100 × (1 - ratio / baseline);
- ``dust``: thermal resistance, °C of die above ambient per watt, compared within bands of
  equal fan RPM (equal airflow, so a worn fan does not pass for dust), 100 × (R / baseline - 1)
  averaged over the bands of the day that have a baseline;
- ``battery_fade``: state of health, 100 × (1 - soh / baseline): the one the battery's gauge
  reports (``battery_health``: the kernel's ``charge_full / charge_full_design``) when its
  days make a trend, else the capacity measured across discharges (``battery``: over the
  design capacity, or from stored telemetry over the board's first days, ``wear_battery``);
  the two are never mixed in one series;
- ``emmc``: the eMMC's own estimate of its life used (``wear_emmc``: absolute, no baseline).

A trend is *worn* when the mean of its last ``recent_days`` points exceeds its baseline by
at least the kind's threshold and by ``min_z`` standard errors (noise taken from the
baseline days, never below the kind's floor). Its "replace before" date is where a straight
line fitted to the last ``fit_days`` points reaches the kind's end-of-life limit, with an
earliest and latest date from the slope ± 2 standard errors. Throttling and under-voltage
are counted per day as evidence (``power_events``). Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from wrale.fleet.brain.decisions.analysis import FanDay
from wrale.fleet.brain.decisions.wear_emmc import EMMC as EMMC
from wrale.fleet.brain.decisions.wear_emmc import EmmcDay as EmmcDay
from wrale.fleet.brain.decisions.wear_emmc import emmc_trend
from wrale.fleet.brain.decisions.wear_fit import Trend as Trend
from wrale.fleet.brain.decisions.wear_fit import crossing, finite, fit_line

FAN_WEAR, DUST, BATTERY_FADE = "fan_wear", "dust", "battery_fade"
WEAR_KINDS = (FAN_WEAR, DUST, BATTERY_FADE, EMMC)
MAX_C_PER_W = 100.0  # beyond this a reading is not of a working board


@dataclass(frozen=True, slots=True)
class ThermalDay:
    """One day of a board in one band of fan RPM (``rpm_band``: mean RPM of its hours //
    the policy's band width; 0 with the fan still): hours in the band and their mean
    thermal resistance, (die - ambient) / watts."""

    day_start: float
    rpm_band: int
    hours: int
    c_per_w: float


@dataclass(frozen=True, slots=True)
class BatteryDay:
    """A board's battery state of health measured that day (full / design capacity)."""

    day_start: float
    soh: float


@dataclass(frozen=True, slots=True)
class EventDay:
    """Hours of a day with throttling, and with under-voltage, latched by the firmware."""

    day_start: float
    throttled: int = 0
    under_voltage: int = 0


@dataclass(frozen=True)
class BoardHistory:
    device_id: str
    site: str | None = None
    rack: str | None = None
    fans: Sequence[FanDay] = ()
    thermal: Sequence[ThermalDay] = ()
    battery: Sequence[BatteryDay] = ()  # measured across discharges (the fallback)
    events: Sequence[EventDay] = ()
    battery_health: Sequence[BatteryDay] = ()  # reported by the battery's gauge
    emmc: Sequence[EmmcDay] = ()


@dataclass(frozen=True, slots=True)
class WearPolicy:
    baseline_days: int = 5  # the first usable days of the history are the board as it was
    recent_days: int = 3  # "now": the mean of the last days
    fit_days: int = 10  # the straight line that projects the wear
    min_z: float = 4.0
    flag_pct: Mapping[str, float] = field(
        default_factory=lambda: {FAN_WEAR: 10.0, DUST: 10.0, BATTERY_FADE: 5.0}
    )
    limit_pct: Mapping[str, float] = field(  # end of life: replace before reaching it
        default_factory=lambda: {FAN_WEAR: 40.0, DUST: 50.0, BATTERY_FADE: 20.0}
    )
    noise_floor_pct: Mapping[str, float] = field(
        default_factory=lambda: {FAN_WEAR: 1.0, DUST: 2.0, BATTERY_FADE: 2.0}
    )
    min_hours: int = 3  # hours of a day (fan driven, or in a band) to use it
    rpm_band: float = 400.0
    horizon_days: float = 365.0  # a projected date further than this is "not foreseen"
    event_days: int = 7  # power events: the last days counted


DEFAULT_POLICY = WearPolicy()


@dataclass(frozen=True, slots=True)
class BoardWear:
    device_id: str
    site: str | None
    rack: str | None
    trends: tuple[Trend, ...]
    throttled_days: int  # days of the last ``event_days`` with throttling
    under_voltage_days: int

    @property
    def worn(self) -> tuple[Trend, ...]:
        return tuple(t for t in self.trends if t.worn)

    @property
    def due(self) -> float | None:
        """The earliest "replace before" of its worn parts."""
        dates = [t.replace_before for t in self.worn if t.replace_before is not None]
        return min(dates) if dates else None


@dataclass(frozen=True, slots=True)
class RackVisit:
    """One visit: a site's rack (``None``: not placed) and the boards to service there."""

    site: str | None
    rack: str | None
    due: float | None
    boards: tuple[BoardWear, ...]


def _by_day(points: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """Finite points, one per day (the last given wins), oldest first."""
    days: dict[float, float] = {t: v for t, v in points if finite(t, v)}
    return sorted(days.items())


def fan_series(
    days: Sequence[FanDay], policy: WearPolicy = DEFAULT_POLICY
) -> list[tuple[float, float]]:
    """(day_start, RPM per point of duty) of the usable days."""
    return _by_day(
        (d.day_start, d.rpm / d.duty_pct)
        for d in days
        if finite(d.day_start, d.rpm, d.duty_pct, d.hours)
        and d.hours >= policy.min_hours
        and d.duty_pct > 0
        and d.rpm >= 0
    )


def thermal_series(
    days: Sequence[ThermalDay], policy: WearPolicy = DEFAULT_POLICY
) -> tuple[list[tuple[float, float]], float]:
    """(day_start, wear %) of the days with a band seen in the baseline days, and the
    baseline's mean resistance (°C/W)."""
    usable = [
        d
        for d in days
        if finite(d.day_start, d.c_per_w, d.hours)
        and d.hours >= policy.min_hours
        and 0 < d.c_per_w <= MAX_C_PER_W
    ]
    first_days = sorted({d.day_start for d in usable})[: policy.baseline_days]
    bands: dict[int, list[float]] = {}
    for d in usable:
        if d.day_start in first_days:
            bands.setdefault(d.rpm_band, []).append(d.c_per_w)
    base = {b: statistics.median(v) for b, v in bands.items()}
    per_day: dict[float, list[tuple[float, int]]] = {}
    for d in usable:
        if d.rpm_band in base:
            wear = 100.0 * (d.c_per_w / base[d.rpm_band] - 1.0)
            per_day.setdefault(d.day_start, []).append((wear, d.hours))
    series = [(t, sum(w * h for w, h in ws) / sum(h for _, h in ws)) for t, ws in per_day.items()]
    mean_base = statistics.fmean(base.values()) if base else math.nan
    return sorted(series), mean_base


def battery_series(days: Sequence[BatteryDay]) -> list[tuple[float, float]]:
    return _by_day((d.day_start, d.soh) for d in days if finite(d.soh) and 0 < d.soh <= 1.5)


def trend(
    device_id: str,
    kind: str,
    wear: Sequence[tuple[float, float]],
    baseline: float,
    policy: WearPolicy = DEFAULT_POLICY,
) -> Trend | None:
    """A trend from a wear % series (``None``: too few days to tell)."""
    n_base, k = policy.baseline_days, policy.recent_days
    if len(wear) < n_base + k or not finite(baseline):
        return None
    base = [v for _, v in wear[:n_base]]
    recent = [v for _, v in wear[-k:]]
    sd = max(statistics.stdev(base), policy.noise_floor_pct[kind])
    change = statistics.fmean(recent) - statistics.fmean(base)
    z = change / (sd * math.sqrt(1 / k + 1 / n_base))
    slope, se, fitted = fit_line(wear[-policy.fit_days :])
    now = wear[-1][0]
    value = max(fitted, statistics.fmean(recent))
    limit, horizon = policy.limit_pct[kind], policy.horizon_days
    worn = change >= policy.flag_pct[kind] and z >= policy.min_z
    se_ok = se if math.isfinite(se) else 0.0
    return Trend(
        device_id=device_id,
        kind=kind,
        points=tuple(wear),
        baseline=baseline,
        wear_pct=change,
        z=z,
        slope_pct_per_day=slope,
        slope_se=se,
        worn=worn,
        replace_before=crossing(now, value, slope, limit, horizon) if worn else None,
        replace_earliest=crossing(now, value, slope + 2 * se_ok, limit, horizon) if worn else None,
        replace_latest=crossing(now, value, slope - 2 * se_ok, limit, horizon) if worn else None,
    )


def _relative(
    series: Sequence[tuple[float, float]], n_base: int
) -> tuple[list[tuple[float, float]], float]:
    """A health series (higher is better) as wear % against its baseline days' median."""
    if not series:
        return [], math.nan
    base = statistics.median(v for _, v in series[:n_base])
    if base <= 0:
        return [], math.nan
    return [(t, 100.0 * (1.0 - v / base)) for t, v in series], base


def battery_trend(h: BoardHistory, policy: WearPolicy = DEFAULT_POLICY) -> Trend | None:
    """From the state of health the gauge reports when its days make a trend, else from
    the capacity measured across discharges."""
    for days in (h.battery_health, h.battery):
        series, base = _relative(battery_series(days), policy.baseline_days)
        found = trend(h.device_id, BATTERY_FADE, series, base, policy)
        if found is not None:
            return found
    return None


def board_wear(h: BoardHistory, policy: WearPolicy = DEFAULT_POLICY) -> BoardWear:
    """Every trend a board's history supports, and its recent power events."""
    n = policy.baseline_days
    fan, fan_base = _relative(fan_series(h.fans, policy), n)
    heat, heat_base = thermal_series(h.thermal, policy)
    found = (
        trend(h.device_id, FAN_WEAR, fan, fan_base, policy),
        trend(h.device_id, DUST, heat, heat_base, policy),
        battery_trend(h, policy),
        emmc_trend(h.device_id, h.emmc),
    )
    events = sorted(
        (e for e in h.events if finite(e.day_start, e.throttled, e.under_voltage)),
        key=lambda e: e.day_start,
    )[-policy.event_days :]
    return BoardWear(
        device_id=h.device_id,
        site=h.site,
        rack=h.rack,
        trends=tuple(t for t in found if t is not None),
        throttled_days=sum(1 for e in events if e.throttled > 0),
        under_voltage_days=sum(1 for e in events if e.under_voltage > 0),
    )


def maintenance_queue(
    histories: Iterable[BoardHistory], policy: WearPolicy = DEFAULT_POLICY
) -> list[RackVisit]:
    """The boards with a worn part, grouped by (site, rack) so one visit fixes a rack; the
    visits most urgent first (earliest "replace before"; none foreseen last), and within a
    visit its boards likewise."""
    groups: dict[tuple[str | None, str | None], list[BoardWear]] = {}
    for h in histories:
        w = board_wear(h, policy)
        if w.worn:
            groups.setdefault((w.site, w.rack), []).append(w)

    def urgency(due: float | None) -> float:
        return math.inf if due is None else due

    visits = [
        RackVisit(
            site,
            rack,
            min((b.due for b in boards if b.due is not None), default=None),
            tuple(sorted(boards, key=lambda b: (urgency(b.due), b.device_id))),
        )
        for (site, rack), boards in groups.items()
    ]
    return sorted(visits, key=lambda v: (urgency(v.due), v.site or "", v.rack or ""))
