"""The PWM fan through its hwmon device (Pi 5 ``pwmfan``: pwm1, pwm1_enable, fan1_input).

Writes raise ``ActuatorError`` naming the file; reads never raise. On a Pi 5 the kernel's
thermal governor also writes ``pwm1`` (through the fan's cooling device).
"""

from __future__ import annotations

import math

from wrale.metal.hw.base import FanReading
from wrale.metal.hw.linux.sysfs import (
    HealthLog,
    Locator,
    find_hwmon,
    read_optional,
    read_scaled,
    write_value,
)
from wrale.shared.clock import Clock
from wrale.shared.config import LinuxPaths
from wrale.shared.errors import ActuatorError, InvalidRequestError

PWM_MAX = 255
MANUAL = "1"  # pwm1_enable: the duty written to pwm1 is applied as is


def duty_to_pwm(percent: float) -> int:
    return round(percent * PWM_MAX / 100)


def pwm_to_duty(pwm: float) -> float:
    return pwm * 100 / PWM_MAX


class LinuxFan:
    """Reads duty and tachometer; ``set_fan_duty`` puts the fan under manual control."""

    def __init__(self, paths: LinuxPaths, clock: Clock, health: HealthLog) -> None:
        root, name = paths.sysfs_root, paths.fan_hwmon
        self._where = Locator.single(lambda: find_hwmon(root, name), clock)
        self._health = health
        self._missing = f"no fan: no hwmon device named {name!r} under {root / 'class/hwmon'}"
        self._duty_source = f"fan duty (hwmon {name!r} pwm1)"
        self._rpm_source = f"fan speed (hwmon {name!r} fan1_input)"
        self._last_duty_pct = 0.0

    def read_fan(self) -> FanReading:
        directory = self._where.one()
        pwm = read_scaled(
            self._health,
            self._duty_source,
            None if directory is None else directory / "pwm1",
            1.0,
            lambda v: 0 <= v <= PWM_MAX,
        )
        duty = self._last_duty_pct if pwm is None else pwm_to_duty(pwm)
        rpm_path = None if directory is None else directory / "fan1_input"
        rpm = read_scaled(self._health, self._rpm_source, rpm_path, 1.0, lambda v: v >= 0)
        return FanReading(duty_pct=duty, rpm=rpm)

    def set_fan_duty(self, percent: float) -> None:
        if not math.isfinite(percent) or not 0 <= percent <= 100:
            raise InvalidRequestError(f"fan duty must be 0-100 %, got {percent}", duty_pct=percent)
        directory = self._where.one()
        if directory is None:
            raise ActuatorError(self._missing)
        enable = directory / "pwm1_enable"
        if enable.exists() and read_optional(enable) != MANUAL:
            write_value(enable, MANUAL)
        write_value(directory / "pwm1", duty_to_pwm(percent))
        self._last_duty_pct = float(percent)
