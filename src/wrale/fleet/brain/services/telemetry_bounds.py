"""Physical bounds a reading must lie within to be stored: per metric (by name) and a
generous finite range for any other metric, plus the window of believable timestamps.
Pure; ingest refuses (and counts) what falls outside, so nothing stored can break a page.
"""

from __future__ import annotations

import math
from typing import Final

MIN_TS: Final = 946_684_800.0  # 2000-01-01: anything older is a board without a set clock
MAX_FUTURE_S: Final = 86_400.0  # a clock more than a day ahead is wrong, not early
ANY_METRIC: Final = (-1e9, 1e9)  # a metric with no bounds of its own

# metric name → (lowest, highest) a real board can report (inclusive)
METRIC_BOUNDS: Final[dict[str, tuple[float, float]]] = {
    "cpu_temp_c": (-50.0, 200.0),
    "board_temp_c": (-50.0, 200.0),
    "ambient_temp_c": (-80.0, 100.0),
    "battery_pct": (0.0, 100.0),
    "battery_health_pct": (0.0, 150.0),  # a new cell may hold more than its design
    "emmc_life_used_pct": (0.0, 100.0),
    "emmc_pre_eol": (1.0, 3.0),
    "under_voltage": (0.0, 1.0),  # firmware flag: now or newly latched since the last sample
    "cpu_load_pct": (0.0, 100.0),
    "fan_pwm": (0.0, 255.0),
    "fan_rpm": (0.0, 50_000.0),
    "power_w": (0.0, 10_000.0),
    "solar_w": (0.0, 10_000.0),
    "voltage_v": (0.0, 1_000.0),
    "current_a": (-1_000.0, 1_000.0),
}


def bounds_of(metric: str) -> tuple[float, float]:
    """The bounds of ``metric``: its own, by unit suffix (``_pct`` 0..100, ``_c``
    -80..200), or ``ANY_METRIC``."""
    own = METRIC_BOUNDS.get(metric)
    if own is not None:
        return own
    if metric.endswith("_pct"):
        return (0.0, 100.0)
    if metric.endswith("_temp_c"):
        return (-80.0, 200.0)
    return ANY_METRIC


def ts_ok(ts: float, now: float) -> bool:
    """A timestamp between 2000-01-01 and a day after ``now`` (finite)."""
    return MIN_TS <= ts <= now + MAX_FUTURE_S


def value_ok(metric: str, value: float) -> bool:
    low, high = bounds_of(metric)
    return math.isfinite(value) and low <= value <= high
