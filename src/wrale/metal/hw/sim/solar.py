"""The day curve of a solar panel: dark at night, a sine from 06:00 to 18:00 UTC.

Pure function of the wall time; clouds and seasons are not modelled.
"""

from __future__ import annotations

import math

SUNRISE_H = 6.0
SUNSET_H = 18.0


def solar_output_w(peak_w: float, wall_s: float) -> float:
    """Panel output in W at ``wall_s`` (seconds since the epoch, UTC)."""
    hour = (wall_s % 86400.0) / 3600.0
    if peak_w <= 0 or not SUNRISE_H < hour < SUNSET_H:
        return 0.0
    return peak_w * math.sin(math.pi * (hour - SUNRISE_H) / (SUNSET_H - SUNRISE_H))
