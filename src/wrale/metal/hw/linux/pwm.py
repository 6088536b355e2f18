"""Hardware PWM through ``class/pwm/pwmchip*/pwmN/{period,duty_cycle,enable}``.

Maps GPIO lines to channels of one PWM chip (Pi 5: RP1 PWM0, enabled by
``dtoverlay=pwm-2chan``); lines without a channel raise ``UnsupportedError``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from wrale.metal.hw.linux.sysfs import SYS, Locator, read_int, write_value
from wrale.shared.clock import Clock, SystemClock
from wrale.shared.errors import ActuatorError, InvalidRequestError, UnsupportedError

# Raspberry Pi 5: BCM line -> channel of RP1's PWM0 (GPIO12-13 func a0, GPIO18-19 func a3).
PI5_PWM_CHANNELS: Mapping[int, int] = MappingProxyType({12: 0, 13: 1, 18: 2, 19: 3})
PI5_PWM_DEVICE = "1f00098000.pwm"  # RP1 PWM0; the fan's PWM1 is 1f0009c000.pwm
MIN_PWM_HZ, MAX_PWM_HZ = 1.0, 1_000_000.0
NS_PER_S = 1_000_000_000


def find_pwm_chip(sysfs_root: Path, device_name: str = PI5_PWM_DEVICE) -> Path | None:
    """The ``pwmchip*`` whose ``device`` link points at ``device_name``."""
    for chip in sorted(sysfs_root.glob("class/pwm/pwmchip*")):
        try:
            if (chip / "device").resolve(strict=True).name == device_name:
                return chip
        except OSError:
            continue
    return None


class SysfsPwm:
    """Drives PWM channels; the chip directory is found by device name or given."""

    def __init__(
        self,
        sysfs_root: Path = SYS,
        *,
        chip_dir: Path | None = None,
        channels: Mapping[int, int] = PI5_PWM_CHANNELS,
        device_name: str = PI5_PWM_DEVICE,
        clock: Clock | None = None,
    ) -> None:
        self.channels = dict(channels)
        self._lock = threading.Lock()
        self._chip = Locator.single(
            lambda: chip_dir if chip_dir is not None else find_pwm_chip(sysfs_root, device_name),
            clock or SystemClock(),
        )

    def supports(self, line: int) -> bool:
        return line in self.channels

    def check(self, line: int, frequency_hz: float, duty_pct: float) -> None:
        """Refuse an unsupported line or values out of range, before anything is touched."""
        if line not in self.channels:
            lines = ", ".join(str(n) for n in sorted(self.channels))
            raise UnsupportedError(f"line {line} has no hardware PWM (lines {lines} do)", line=line)
        if not (math.isfinite(frequency_hz) and MIN_PWM_HZ <= frequency_hz <= MAX_PWM_HZ):
            raise InvalidRequestError(
                f"PWM frequency must be {MIN_PWM_HZ:g}-{MAX_PWM_HZ:g} Hz, got {frequency_hz}"
            )
        if not (math.isfinite(duty_pct) and 0 <= duty_pct <= 100):
            raise InvalidRequestError(f"PWM duty must be 0-100 %, got {duty_pct}")

    def set(self, line: int, frequency_hz: float, duty_pct: float) -> None:
        self.check(line, frequency_hz, duty_pct)
        period_ns = max(1, round(NS_PER_S / frequency_hz))
        duty_ns = round(period_ns * duty_pct / 100)
        with self._lock:
            channel = self._channel_dir(line, export=True)
            try:
                old_duty_ns = read_int(channel / "duty_cycle")
            except (OSError, ValueError):
                old_duty_ns = 0
            # The kernel refuses a period shorter than the duty cycle in force.
            if period_ns >= old_duty_ns:
                write_value(channel / "period", period_ns)
                write_value(channel / "duty_cycle", duty_ns)
            else:
                write_value(channel / "duty_cycle", duty_ns)
                write_value(channel / "period", period_ns)
            write_value(channel / "enable", 1)

    def stop(self, line: int) -> None:
        """Disable the channel of ``line`` if it is exported (the line goes back to GPIO use)."""
        if line not in self.channels:
            return
        with self._lock:
            chip = self._chip.one()
            channel = None if chip is None else chip / f"pwm{self.channels[line]}"
            if channel is not None and channel.is_dir():
                write_value(channel / "enable", 0)

    def _channel_dir(self, line: int, *, export: bool) -> Path:
        chip = self._chip.one()
        if chip is None:
            raise UnsupportedError(
                "no hardware PWM chip found (on a Pi 5 enable dtoverlay=pwm-2chan)", line=line
            )
        number = self.channels[line]
        channel = chip / f"pwm{number}"
        if not channel.is_dir() and export:
            write_value(chip / "export", number)
        if not channel.is_dir():
            raise ActuatorError(f"exporting PWM channel {number} did not create {channel}")
        return channel
