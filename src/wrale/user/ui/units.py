"""The one place the dashboard learns a reading's unit and precision (``cpu_temp_c`` → °C to
0.1, ``power_w`` → W to 0.01, ``fan_pct`` → % to 1, …), by metric name or unit suffix, and
the helpers that round a reading, or every reading inside an event's data, for display."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from wrale.user.ui.filters import BIG, DASH, fmt_num, number


@dataclass(frozen=True, slots=True)
class Unit:
    """How a metric is shown: its unit symbol and the decimals its sensor is good to."""

    symbol: str
    digits: int


# metrics whose name alone does not say it (no unit suffix), or that read coarser or finer
NAMED: dict[str, Unit] = {
    "fan_pwm": Unit("", 0),  # 0..255 duty register
    "emmc_pre_eol": Unit("", 0),
    "under_voltage": Unit("", 0),
}
# unit suffix of a metric (or of a key in an event's data) → how it is shown; longest first
SUFFIXES: tuple[tuple[str, Unit], ...] = (
    ("_temp_c", Unit("°C", 1)),
    ("_freq_pct", Unit("%", 1)),  # a frequency cap is set in half percents
    ("_pct", Unit("%", 0)),
    ("_rpm", Unit("rpm", 0)),
    ("_wh", Unit("Wh", 2)),
    ("_mw", Unit("mW", 0)),
    ("_w", Unit("W", 2)),
    ("_mv", Unit("mV", 0)),
    ("_v", Unit("V", 2)),
    ("_ma", Unit("mA", 0)),
    ("_a", Unit("A", 2)),
    ("_mhz", Unit("MHz", 0)),
    ("_hz", Unit("Hz", 0)),
    ("_ms", Unit("ms", 0)),
    ("_s", Unit("s", 1)),
    ("_c", Unit("°C", 1)),
)
PLAIN = Unit("", 2)  # a number whose key says no unit: two decimals at most


def unit_of(metric: str) -> Unit | None:
    """The unit of a metric or data key, or None when its name says none."""
    name = metric.lower()
    if name in NAMED:
        return NAMED[name]
    for suffix, unit in SUFFIXES:
        if name.endswith(suffix) or name == suffix[1:]:
            return unit
    return None


def reading(value: object, metric: object, with_unit: bool = True) -> str:
    """``value`` of ``metric`` rounded to its sensor's precision, with its unit ("70.0 °C",
    "4.27 W", "63 %"); "—" when it is not a number."""
    unit = unit_of(metric) if isinstance(metric, str) else None
    unit = unit or PLAIN
    n = number(value)
    shown = _round(n, unit.digits) if n is not None else value
    return fmt_num(shown, unit.digits, unit.symbol if with_unit else "")


def digits_of(metric: str) -> int:
    return (unit_of(metric) or PLAIN).digits


def _round(value: float, digits: int) -> float | int:
    """Half away from zero, as people round (62.5 → 63, not Python's 62). A value too big
    for that (a hostile 1e300 from a board) is left as it is."""
    if not abs(value) < BIG:
        return value
    exact = Decimal(repr(value)).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    return int(exact) if digits == 0 else float(exact)


def round_data(data: Any, key: str = "", metric: str | None = None, depth: int = 0) -> Any:
    """A copy of an event's (or alert's) data with each float rounded to the precision of
    its key's unit (``{"cpu_temp_c": 70.01314907491161}`` → 70.0); a ``value`` next to a
    ``metric`` takes that metric's. Anything else is left as it is (strings, bools, ints)."""
    if depth > 8:
        return data
    if isinstance(data, Mapping):
        named = data.get("metric")
        inner = named if isinstance(named, str) else None
        return {
            k: round_data(v, str(k), inner if k in ("value", "threshold") else None, depth + 1)
            for k, v in data.items()
        }
    if isinstance(data, list | tuple):
        return [round_data(v, key, metric, depth + 1) for v in data]
    if isinstance(data, float):
        if not math.isfinite(data):
            return DASH
        unit = unit_of(metric) if metric else unit_of(key)
        return _round(data, (unit or PLAIN).digits)
    return data


def raw_number(value: object) -> str:
    """The full value for a data attribute or a tooltip ("" when not a number)."""
    n = number(value)
    return "" if n is None else repr(n)
