"""The Raspberry Pi 5 active cooler: PWM duty in, tachometer out, with spin-up lag.

RPM follows duty above the minimum spinning duty; a stalled fan reads 0 rpm, a degraded
one a fraction of its speed. Cooling follows the actual RPM, not the commanded duty; a
board without a cooler takes duties and reads 0 rpm.
"""

from __future__ import annotations

import math

from wrale.metal.hw.base import FanReading
from wrale.metal.hw.sim.checks import check_number
from wrale.metal.hw.sim.faults import FanFailure
from wrale.metal.hw.sim.runtime import Noise, Runtime

MAX_RPM = 8000.0  # at 100 % duty
MIN_SPIN_DUTY_PCT = 10.0  # below this the motor does not turn
SPIN_TAU_S = 1.0  # first-order lag of the rotor
RPM_NOISE_FRACTION = 0.005


class SimFan:
    def __init__(self, rt: Runtime, noise: Noise, *, fitted: bool = True) -> None:
        self._rt = rt
        self.fitted = fitted  # no fan: pwm1 still takes a duty (pwm-fan is in the Pi 5's
        # device tree whether or not a fan is plugged in) but the tachometer reads 0
        self._noise = noise
        self.duty_pct = 0.0
        self.rpm = 0.0
        self.failure: FanFailure | None = None
        self.powered = True
        self.wear_factor = 1.0  # slow fan wear (``wear.py``): RPM reached at a duty

    def target_rpm(self) -> float:
        if not self.fitted or not self.powered or self.duty_pct < MIN_SPIN_DUTY_PCT:
            return 0.0
        rpm = MAX_RPM * self.duty_pct / 100.0 * self.wear_factor
        if self.failure is not None:
            rpm = 0.0 if self.failure.mode == "stalled" else rpm * self.failure.rpm_factor
        return rpm

    def step(self, dt_s: float) -> None:
        target = self.target_rpm()
        if self.rpm != target:
            self.rpm = target + (self.rpm - target) * math.exp(-dt_s / SPIN_TAU_S)
            if abs(self.rpm - target) < 0.01:
                self.rpm = target

    def settled(self) -> bool:
        return self.rpm == self.target_rpm()

    def airflow(self) -> float:
        """Airflow as a fraction of the fan's maximum."""
        return self.rpm / MAX_RPM

    def read_fan(self) -> FanReading:
        with self._rt.reading():
            rpm = self.rpm
            if rpm > 0:
                rpm = max(0.0, rpm + self._noise.gauss(rpm * RPM_NOISE_FRACTION))
            return FanReading(duty_pct=self.duty_pct, rpm=rpm)

    def set_fan_duty(self, percent: float) -> None:
        duty = check_number("fan duty_pct", percent, 0.0, 100.0)
        with self._rt.changing():
            self.duty_pct = duty
