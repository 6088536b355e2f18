"""The device page's live gauges and charts: which readings they show, their warning
levels and arcs, and the chart series built from stored telemetry (the page's ``/series``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import Device
from wrale.fleet.brain.services import device_view, telemetry, telemetry_query
from wrale.shared.errors import InvalidRequestError
from wrale.user.ui import units

STALE_MIN_S = 60.0  # a reading older than this (or 3 report intervals) is marked stale


# ----------------------------------------------------------------------------- charts

RANGES: dict[str, tuple[int, str | None]] = {
    "1h": (3600, None),  # raw points in 10-second buckets
    "6h": (6 * 3600, "1m"),
    "24h": (86_400, "5m"),
    "7d": (7 * 86_400, "1h"),
}
RANGE_LABELS = {"1h": "1 h", "6h": "6 h", "24h": "24 h", "7d": "7 d"}
STEP_LABELS = {None: "10-second means", "1m": "1-minute means", "5m": "5-minute means"}
STEP_LABELS["1h"] = "1-hour means"
BUCKET_S = 10


@dataclass(frozen=True, slots=True)
class Chart:
    key: str
    title: str
    unit: str
    metrics: tuple[str, ...]
    labels: tuple[str, ...]

    @property
    def digits(self) -> int:
        """Its first metric's precision (``units``: the one place that knows it)."""
        return units.digits_of(self.metrics[0])


CHARTS = (
    Chart(
        "temp",
        "Temperature",
        "°C",
        ("cpu_temp_c", "gpu_temp_c", "ambient_temp_c"),
        ("CPU", "GPU", "Ambient"),
    ),
    Chart("fan", "Fan duty", "%", ("fan_pct",), ("Fan",)),
    Chart("power", "Power draw", "W", ("power_w",), ("Power",)),
    Chart("battery", "Battery", "%", ("battery_pct",), ("Battery",)),
)
CHART_METRICS = tuple(m for c in CHARTS for m in c.metrics)


async def build_series(
    session: AsyncSession, device: Device, rng: str, now: float
) -> dict[str, Any]:
    """The charts' data for one range: per chart aligned columns ``ts`` and one per metric
    (None where a metric has no point), and per metric min / max / latest."""
    if rng not in RANGES:
        raise InvalidRequestError(f"range: use one of {', '.join(RANGES)}", field="range")
    span, step = RANGES[rng]
    start, end = now - span, now
    points: dict[str, list[list[float]]] = {}  # metric → [[ts, mean, min, max], …]
    if step is None:
        points = await device_view.bucketed(session, device, CHART_METRICS, start, end, BUCKET_S)
    else:
        for metric in CHART_METRICS:
            s = await telemetry_query.device_series(session, device, metric, start, end, step)
            points[metric] = [p[:4] for p in s.points]
    latest = await telemetry.device_latest(session, device)
    charts: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    for chart in CHARTS:
        stamps = sorted({p[0] for m in chart.metrics for p in points.get(m, [])})
        at = {t: i for i, t in enumerate(stamps)}
        columns: dict[str, list[float | None]] = {}
        for metric in chart.metrics:
            col: list[float | None] = [None] * len(stamps)
            for p in points.get(metric, []):
                col[at[p[0]]] = round(p[1], 3)
            columns[metric] = col
            pts = points.get(metric, [])
            last = latest.get(metric)
            summary[metric] = {
                "min": round(min(p[2] for p in pts), 3) if pts else None,
                "max": round(max(p[3] for p in pts), 3) if pts else None,
                "latest": round(last[1], 3) if last else None,
                "latest_ts": last[0] if last else None,
            }
        charts[chart.key] = {"ts": stamps, "series": columns}
    return {
        "device_id": device.id,
        "range": rng,
        "step": step or f"{BUCKET_S}s",
        "step_label": STEP_LABELS[step],
        "start": start,
        "end": end,
        "charts": charts,
        "summary": summary,
    }


def summary_text(chart: Chart, summary: Mapping[str, Any]) -> str:
    """'CPU: min 41.0, max 64.2, latest 63.9 °C; GPU: no data' for a chart's caption."""
    parts = []
    for metric, label in zip(chart.metrics, chart.labels, strict=True):
        s = summary.get(metric) or {}
        if s.get("min") is None and s.get("latest") is None:
            parts.append(f"{label}: no data")
            continue
        bits = []
        if s.get("min") is not None:
            bits.append(f"min {s['min']:,.{chart.digits}f}")
            bits.append(f"max {s['max']:,.{chart.digits}f}")
        if s.get("latest") is not None:
            bits.append(f"latest {s['latest']:,.{chart.digits}f}")
        parts.append(f"{label}: {', '.join(bits)} {chart.unit}")
    return "; ".join(parts)


# ----------------------------------------------------------------------------- gauges


@dataclass(frozen=True, slots=True)
class GaugeSpec:
    metric: str
    label: str
    unit: str
    lo: float
    hi: float
    section: str | None = None  # desired-state section holding the thresholds
    warn_key: str | None = None
    crit_key: str | None = None
    low_is_bad: bool = False

    @property
    def digits(self) -> int:
        return units.digits_of(self.metric)


GAUGES = (
    GaugeSpec("cpu_temp_c", "CPU", "°C", 20, 90, "thermal", "cpu_warning_c", "cpu_critical_c"),
    GaugeSpec("gpu_temp_c", "GPU", "°C", 20, 90, "thermal", "gpu_warning_c", "gpu_critical_c"),
    GaugeSpec(
        "ambient_temp_c",
        "Ambient",
        "°C",
        0,
        60,
        "thermal",
        "ambient_warning_c",
        "ambient_critical_c",
    ),
    GaugeSpec("fan_pct", "Fan", "%", 0, 100),
    GaugeSpec("power_w", "Power", "W", 0, 12),
    GaugeSpec(
        "battery_pct",
        "Battery",
        "%",
        0,
        100,
        "power",
        "low_battery_pct",
        "critical_battery_pct",
        low_is_bad=True,
    ),
)
LEVEL_TEXT = {"ok": "normal", "warning": "warning", "critical": "critical", "unknown": "no data"}


def level(value: float | None, warn: float | None, crit: float | None, low_is_bad: bool) -> str:
    if value is None:
        return "unknown"
    if low_is_bad:
        if crit is not None and value <= crit:
            return "critical"
        if warn is not None and value <= warn:
            return "warning"
        return "ok"
    if crit is not None and value >= crit:
        return "critical"
    if warn is not None and value >= warn:
        return "warning"
    return "ok"


def _arc_point(frac: float) -> tuple[float, float]:
    """A point on the gauge's half circle (centre 60,60, radius 50) at ``frac`` of its scale."""
    angle = math.pi * (1.0 - max(0.0, min(1.0, frac)))
    return round(60 + 50 * math.cos(angle), 2), round(60 - 50 * math.sin(angle), 2)


def as_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def gauges(
    latest: Mapping[str, tuple[float, float]],
    desired: Mapping[str, Any],
    now: float,
    stale_after: float,
) -> list[dict[str, Any]]:
    out = []
    for g in GAUGES:
        section = desired.get(g.section or "") or {}
        warn = as_number(section.get(g.warn_key)) if g.warn_key else None
        crit = as_number(section.get(g.crit_key)) if g.crit_key else None
        reading = latest.get(g.metric)
        value = reading[1] if reading else None
        span = g.hi - g.lo
        marks = [
            {"name": name, "value": v, "x": x, "y": y}
            for name, v in (("warning", warn), ("critical", crit))
            if v is not None
            for x, y in [_arc_point((v - g.lo) / span)]
        ]
        lv = level(value, warn, crit, g.low_is_bad)
        out.append(
            {
                "spec": g,
                "value": value,
                "ts": reading[0] if reading else None,
                "stale": reading is None or now - reading[0] > stale_after,
                "pct": 0.0 if value is None else max(0.0, min(100.0, (value - g.lo) / span * 100)),
                "warn": warn,
                "crit": crit,
                "marks": marks,
                "level": lv,
                "level_text": LEVEL_TEXT[lv],
            }
        )
    return out


def reading(
    latest: Mapping[str, tuple[float, float]], metric: str, now: float, stale_after: float
) -> dict[str, Any]:
    r = latest.get(metric)
    return {
        "metric": metric,
        "value": r[1] if r else None,
        "ts": r[0] if r else None,
        "stale": r is None or now - r[0] > stale_after,
    }


def stale_after_s(desired: Mapping[str, Any]) -> float:
    sampling = desired.get("sampling") or {}
    interval = as_number(sampling.get("report_interval_s")) or 10.0
    return max(STALE_MIN_S, 3 * interval)
