"""CPU frequency cap and the Raspberry Pi ``get_throttled`` flags, latched since boot.

The sim models only the cap the core sets, not the firmware's own thermal throttling, so
a broken control loop shows up as heat instead of being hidden by the firmware.
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
        occurred["capped"] |= self.max_freq_pct < 100.0

    def read_throttle(self) -> ThrottleReading:
        with self._rt.reading():
            capped = self.max_freq_pct < 100.0
            return ThrottleReading(
                max_freq_pct=self.max_freq_pct,
                under_voltage_now=self._under_voltage,
                freq_capped_now=capped,
                throttled_now=capped,
                soft_temp_limit_now=self._soft_temp,
                under_voltage_occurred=self._occurred["uv"],
                freq_capped_occurred=self._occurred["capped"],
                throttled_occurred=self._occurred["capped"],
                soft_temp_limit_occurred=self._occurred["temp"],
            )

    def set_max_freq(self, percent: float) -> None:
        cap = check_number("max_freq_pct", percent, MIN_FREQ_PCT, 100.0)
        with self._rt.changing():
            self.max_freq_pct = cap
