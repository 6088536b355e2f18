"""The PWM fan through its hwmon device (Pi 5 ``pwmfan``: pwm1, pwm1_enable, fan1_input).

metald is the fan's only owner once it drives it: the first ``set_fan_duty`` takes the
fan's thermal zone from the kernel's governor (``handback.ZoneTakeover``). ``pwm1_enable``
is not a manual/automatic switch for ``pwm-fan`` (drivers/hwmon/pwm-fan.c: 0 = fan off
whatever pwm1 says, 1 = the probe default, 2/3 = what pwm1=0 does to the PWM and the
regulator), so it is left alone unless it is 0. Writes raise ``ActuatorError`` naming the
file; reads never raise.
"""

from __future__ import annotations

import math

from wrale.metal.hw.base import FanOwner, FanReading
from wrale.metal.hw.linux.handback import ZoneTakeover
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
FAN_OFF = "0"  # pwm1_enable 0: pwm-fan ignores any non-zero pwm1
PROBE_DEFAULT = "1"  # what pwm-fan sets at probe: PWM off at pwm1=0, regulator kept on


def duty_to_pwm(percent: float) -> int:
    return round(percent * PWM_MAX / 100)


def pwm_to_duty(pwm: float) -> float:
    return pwm * 100 / PWM_MAX


class LinuxFan:
    """Reads duty, tachometer and owner; ``set_fan_duty`` takes the fan, then writes pwm1."""

    def __init__(
        self, paths: LinuxPaths, clock: Clock, health: HealthLog, takeover: ZoneTakeover
    ) -> None:
        root, name = paths.sysfs_root, paths.fan_hwmon
        self._where = Locator.single(lambda: find_hwmon(root, name), clock)
        self._health = health
        self._takeover = takeover
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
        owner = FanOwner.KERNEL if self._takeover.held() is False else FanOwner.METALD
        return FanReading(duty_pct=duty, rpm=rpm, owner=owner)

    def set_fan_duty(self, percent: float) -> None:
        if not math.isfinite(percent) or not 0 <= percent <= 100:
            raise InvalidRequestError(f"fan duty must be 0-100 %, got {percent}", duty_pct=percent)
        directory = self._where.one()
        if directory is None:
            raise ActuatorError(self._missing)
        self._takeover.take()
        enable = directory / "pwm1_enable"
        if read_optional(enable) == FAN_OFF:
            write_value(enable, PROBE_DEFAULT)
        write_value(directory / "pwm1", duty_to_pwm(percent))
        self._last_duty_pct = float(percent)
