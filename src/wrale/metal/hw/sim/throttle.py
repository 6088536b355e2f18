"""CPU frequency cap and the Raspberry Pi ``get_throttled`` flags, latched since boot.

The cap is the one the core sets (the OS's cpufreq limit, never below the Pi 5's 1.5 of
2.4 GHz = 62.5 %, as the kernel clamps it); the firmware throttles on its own as a Pi 5's
does: progressively from 80 °C (soft limit) down to that floor at 85 °C (hard limit).
"""

from __future__ import annotations

from wrale.metal.hw.base import ThrottleReading
from wrale.metal.hw.sim.checks import check_number
from wrale.metal.hw.sim.runtime import Runtime

UNDER_VOLTAGE_V = 4.63  # Pi PMIC under-voltage threshold
SOFT_TEMP_LIMIT_C = 80.0
HARD_TEMP_LIMIT_C = 85.0
MIN_FREQ_PCT = 10.0  # the lowest cap a caller may ask for
PI5_FLOOR_PCT = 62.5  # cpuinfo_min_freq / cpuinfo_max_freq: 1.5 / 2.4 GHz


def firmware_freq_pct(temp_c: float) -> float:
    """The clock the firmware allows at ``temp_c``: full below 80 °C, the floor from 85 °C."""
    if temp_c < SOFT_TEMP_LIMIT_C:
        return 100.0
    if temp_c >= HARD_TEMP_LIMIT_C:
        return PI5_FLOOR_PCT
    frac = (temp_c - SOFT_TEMP_LIMIT_C) / (HARD_TEMP_LIMIT_C - SOFT_TEMP_LIMIT_C)
    return 100.0 - frac * (100.0 - PI5_FLOOR_PCT)


class SimThrottle:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self.max_freq_pct = 100.0
        self.firmware_pct = 100.0
        self._under_voltage = self._soft_temp = self._hard_temp = False
        self._occurred = {"uv": False, "capped": False, "temp": False}

    def observe(self, rail_v: float, temp_c: float) -> None:
        """Record the conditions now and latch the ``*_occurred`` flags."""
        self._under_voltage = rail_v < UNDER_VOLTAGE_V
        self._soft_temp = temp_c >= SOFT_TEMP_LIMIT_C
        self._hard_temp = temp_c >= HARD_TEMP_LIMIT_C
        self.firmware_pct = firmware_freq_pct(temp_c)
        occurred = self._occurred
        occurred["uv"] |= self._under_voltage
        occurred["temp"] |= self._soft_temp
        occurred["capped"] |= self._under_voltage or self._soft_temp

    def effective_pct(self) -> float:
        """The clock the CPU runs at: the OS cap or the firmware's, whichever is lower."""
        return min(self.max_freq_pct, self.firmware_pct)

    def read_throttle(self) -> ThrottleReading:
        with self._rt.reading():
            capped = self._under_voltage or self._soft_temp
            return ThrottleReading(
                max_freq_pct=self.max_freq_pct,
                min_freq_pct=PI5_FLOOR_PCT,
                under_voltage_now=self._under_voltage,
                freq_capped_now=capped,
                throttled_now=self._soft_temp,
                soft_temp_limit_now=self._soft_temp,
                under_voltage_occurred=self._occurred["uv"],
                freq_capped_occurred=self._occurred["capped"],
                throttled_occurred=self._occurred["temp"],
                soft_temp_limit_occurred=self._occurred["temp"],
            )

    def set_max_freq(self, percent: float) -> None:
        cap = check_number("max_freq_pct", percent, MIN_FREQ_PCT, 100.0)
        with self._rt.changing():
            self.max_freq_pct = max(cap, PI5_FLOOR_PCT)  # the kernel clamps it there
