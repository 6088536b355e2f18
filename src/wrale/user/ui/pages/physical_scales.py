"""The physical view's colour scales (pure): the bands a temperature, power draw, fan duty or
status falls in, the metrics a board can be coloured by, and their legends."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from wrale.fleet.brain.services import fleet_view as fv
from wrale.shared.errors import InvalidRequestError

# ----------------------------------------------------------------------------- colour scales

TEMP_WARN_C = 70.0  # a rack whose hottest board reaches this is "hot" (data-hot="true")
# (upper bound, css class, legend text): the first bound above the value wins
TEMP_BANDS: tuple[tuple[float, str, str], ...] = (
    (45.0, "t0", "< 45 °C cool"),
    (60.0, "t1", "45–60 °C"),
    (TEMP_WARN_C, "t2", "60–70 °C warm"),
    (80.0, "t3", "70–80 °C warning"),
    (math.inf, "t4", "≥ 80 °C hot (throttling)"),
)
POWER_BANDS: tuple[tuple[float, str, str], ...] = (
    (3.0, "p0", "< 3 W idle"),
    (4.5, "p1", "3–4.5 W"),
    (6.0, "p2", "4.5–6 W"),
    (7.0, "p3", "6–7 W busy"),
    (math.inf, "p4", "≥ 7 W full load"),
)
FAN_BANDS: tuple[tuple[float, str, str], ...] = (
    (1.0, "f0", "off"),
    (25.0, "f1", "1–25 %"),
    (50.0, "f2", "25–50 %"),
    (75.0, "f3", "50–75 %"),
    (math.inf, "f4", "≥ 75 %"),
)
STATUS_STYLE: dict[str, tuple[str, str]] = {  # status → (css class, short label)
    "online": ("s-online", "on"),
    "offline": ("s-offline", "off"),
    "error": ("s-error", "err"),
    "maintenance": ("s-maintenance", "mnt"),
    "quarantined": ("s-quarantined", "qtn"),
    "unknown": ("s-unknown", "?"),
    "decommissioned": ("s-decommissioned", "dec"),
}
NO_DATA = ("nd", f"no reading in the last {int(fv.FRESH_S // 60)} min")


def _band(value: float | None, bands: Sequence[tuple[float, str, str]]) -> tuple[str, str]:
    if value is None:
        return NO_DATA
    for upper, cls, text in bands:
        if value < upper:
            return cls, text
    return bands[-1][1], bands[-1][2]


def temp_band(value: float | None) -> tuple[str, str]:
    """(css class, legend text) of a temperature in °C."""
    return _band(value, TEMP_BANDS)


def power_band(value: float | None) -> tuple[str, str]:
    return _band(value, POWER_BANDS)


def fan_band(value: float | None) -> tuple[str, str]:
    return _band(value, FAN_BANDS)


def status_band(status: str) -> tuple[str, str]:
    return STATUS_STYLE.get(status, ("s-unknown", status[:3]))


def is_hot(max_temp_c: float | None) -> bool:
    return max_temp_c is not None and max_temp_c >= TEMP_WARN_C


@dataclass(frozen=True, slots=True)
class Metric:
    key: str
    title: str
    legend: tuple[tuple[str, str], ...]  # (css class, text)
    colour: Callable[[fv.Board], str]
    value: Callable[[fv.Board], str]  # the short text drawn on the board
    # the heatmap: the reading's name (its unit and precision, ``units``), the board's
    # reading, the band of a value, and how a cell's value is written (None: by status)
    reading: str = ""
    of: Callable[[fv.Board], float | None] = lambda b: None
    band: Callable[[float | None], tuple[str, str]] = lambda v: NO_DATA
    cell: str = "{:.0f}"
    most: str = "highest"  # the word for a band's top board ("hottest")


def _legend(bands: Sequence[tuple[float, str, str]]) -> tuple[tuple[str, str], ...]:
    return (*((cls, text) for _, cls, text in bands), NO_DATA)


def _fmt(v: float | None, pattern: str) -> str:
    return "—" if v is None else pattern.format(v)


METRICS: dict[str, Metric] = {
    "temp": Metric(
        "temp",
        "CPU temperature",
        _legend(TEMP_BANDS),
        lambda b: temp_band(b.temp_c)[0],
        lambda b: _fmt(b.temp_c, "{:.0f}°"),
        "cpu_temp_c",
        lambda b: b.temp_c,
        temp_band,
        "{:.0f}",
        "hottest",
    ),
    "power": Metric(
        "power",
        "Power draw",
        _legend(POWER_BANDS),
        lambda b: power_band(b.power_w)[0],
        lambda b: _fmt(b.power_w, "{:.1f}W"),
        "power_w",
        lambda b: b.power_w,
        power_band,
        "{:.1f}",
        "highest draw",
    ),
    "fan": Metric(
        "fan",
        "Fan speed",
        _legend(FAN_BANDS),
        lambda b: fan_band(b.fan_pct)[0],
        lambda b: _fmt(b.fan_pct, "{:.0f}%"),
        "fan_pct",
        lambda b: b.fan_pct,
        fan_band,
        "{:.0f}",
        "fastest fan",
    ),
    "status": Metric(
        "status",
        "Status",
        tuple((c, f"{s} ({short})") for s, (c, short) in STATUS_STYLE.items()),
        lambda b: status_band(b.status)[0],
        lambda b: status_band(b.status)[1],
    ),
}


def parse_metric(value: str | None) -> Metric:
    metric = METRICS.get(value or "temp")
    if metric is None:
        raise InvalidRequestError(
            f"metric: choose one of {', '.join(METRICS)} (not {str(value)[:40]!r})",
            field="metric",
        )
    return metric
