"""CPU frequency cap and the Raspberry Pi ``get_throttled`` flags, latched since boot.

The cap is the one the core sets (the OS's cpufreq limit); the flags are the firmware's
own view (under-voltage, soft temperature limit), which an OS cap does not set. The sim
does not slow the CPU by itself, so a broken control loop shows up as heat.
"""

from __future__ import annotations

from wrale.metal.hw.base import ThrottleReading
from wrale.metal.hw.sim.checks import check_number
from wrale.metal.hw.sim.runtime import Runtime

UNDER_VOLTAGE_V = 4.63  # Pi PMIC under-voltage threshold
SOFT_TEMP_LIMIT_C = 80.0
MIN_FREQ_PCT = 10.0


class SimThrottle:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self.max_freq_pct = 100.0
        self._under_voltage = self._soft_temp = False
        self._occurred = {"uv": False, "capped": False, "temp": False}

    def observe(self, rail_v: float, temp_c: float) -> None:
        """Record the conditions now and latch the ``*_occurred`` flags."""
        self._under_voltage = rail_v < UNDER_VOLTAGE_V
        self._soft_temp = temp_c >= SOFT_TEMP_LIMIT_C
        occurred = self._occurred
        occurred["uv"] |= self._under_voltage
        occurred["temp"] |= self._soft_temp
        occurred["capped"] |= self._under_voltage or self._soft_temp

    def read_throttle(self) -> ThrottleReading:
        with self._rt.reading():
            capped = self._under_voltage or self._soft_temp
            return ThrottleReading(
                max_freq_pct=self.max_freq_pct,
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
            self.max_freq_pct = cap
