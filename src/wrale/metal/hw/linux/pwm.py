"""Hardware PWM through ``class/pwm/pwmchip*/pwmN/{period,duty_cycle,enable}``.

Maps GPIO lines to channels of one PWM chip (Pi 5: RP1 PWM0, enabled by
``dtoverlay=pwm-2chan``). A line is driven only when its pin is muxed to its channel
(``pinmux.py``); otherwise the error says which line ``config.txt`` needs. There is no
software PWM fallback.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType

from wrale.metal.hw.linux.pinmux import PinmuxReader
from wrale.metal.hw.linux.sysfs import SYS, Locator, read_int, write_value
from wrale.metal.hw.pwm_pins import CONFIG_TXT, PI5_PWM_PINS, PwmPin, not_muxed
from wrale.shared.clock import Clock, SystemClock
from wrale.shared.errors import ActuatorError, InvalidRequestError, UnsupportedError

log = logging.getLogger("wrale.metal.hw.linux")

# Raspberry Pi 5: BCM line -> channel of RP1's PWM0 (GPIO12-13 func a0, GPIO18-19 func a3).
PI5_PWM_CHANNELS: Mapping[int, int] = MappingProxyType(
    {pin.line: pin.channel for pin in PI5_PWM_PINS.values()}
)
PI5_PWM_DEVICE = "1f00098000.pwm"  # RP1 PWM0; the fan's PWM1 is 1f0009c000.pwm
MIN_PWM_HZ, MAX_PWM_HZ = 1.0, 1_000_000.0
NS_PER_S = 1_000_000_000
# A channel's files are root's when the kernel creates them; udev then gives them to the
# gpio group (packaging/udev/60-wrale.rules), a few milliseconds later.
UDEV_SETTLE_S, UDEV_POLL_S = 1.0, 0.02
UDEV_RULE = "/lib/udev/rules.d/60-wrale.rules"


def may_write(path: Path) -> bool:
    return os.access(path, os.W_OK)


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
    """Drives PWM channels; the chip directory is found by device name or given.

    ``mux`` reads a pin's function before it is driven (``None``: ``PinmuxReader()``);
    ``pins`` says which function and config.txt line each PWM pin needs; ``sleep`` and
    ``writable`` wait for udev to hand a just-exported channel to this process's group.
    """

    def __init__(
        self,
        sysfs_root: Path = SYS,
        *,
        chip_dir: Path | None = None,
        channels: Mapping[int, int] = PI5_PWM_CHANNELS,
        device_name: str = PI5_PWM_DEVICE,
        clock: Clock | None = None,
        mux: PinmuxReader | None = None,
        pins: Mapping[int, PwmPin] = PI5_PWM_PINS,
        sleep: Callable[[float], None] = time.sleep,
        writable: Callable[[Path], bool] = may_write,
    ) -> None:
        self.channels = dict(channels)
        self._sleep = sleep
        self._writable = writable
        self._mux = mux or PinmuxReader()
        self._pins = dict(pins)
        self._unverified: set[int] = set()  # lines whose mux could not be read (warned once)
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

    def check_mux(self, line: int) -> None:
        """Refuse a line whose pin is not muxed to its PWM channel, saying what fixes it."""
        pin = self._pins.get(line)
        if pin is None:
            return
        reading = self._mux.read(line)
        if reading is None:
            if line not in self._unverified:
                self._unverified.add(line)
                log.warning(
                    "cannot check that GPIO %d is muxed to %s (%s); driving PWM channel %d "
                    "anyway: if no signal appears, add `%s` to %s and reboot",
                    line,
                    pin.signal,
                    "; ".join(self._mux.last_failures) or "no source",
                    pin.channel,
                    pin.overlay,
                    CONFIG_TXT,
                )
            return
        if reading.drives(pin):
            return
        message = not_muxed(pin, f"{reading.source} reads {reading.function} = {reading.signal}")
        if reading.gpio:
            message += (
                f"; the pin was taken as a GPIO line since boot, which RP1 keeps: "
                f"reboot, or `pinctrl set {line} {pin.alt}` gives it back to {pin.signal}"
            )
        raise UnsupportedError(message, line=line, config_txt=pin.overlay)

    def set(self, line: int, frequency_hz: float, duty_pct: float) -> None:
        self.check(line, frequency_hz, duty_pct)
        self.check_mux(line)
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
            pin = self._pins.get(line)
            overlay = pin.overlay if pin is not None else "dtoverlay=pwm-2chan"
            raise UnsupportedError(
                f"no hardware PWM chip found: add `{overlay}` to {CONFIG_TXT} and reboot",
                line=line,
                config_txt=overlay,
            )
        number = self.channels[line]
        channel = chip / f"pwm{number}"
        if not channel.is_dir() and export:
            write_value(chip / "export", number)
            self._await_udev(channel, number)
        if not channel.is_dir():
            raise ActuatorError(f"exporting PWM channel {number} did not create {channel}")
        return channel

    def _await_udev(self, channel: Path, number: int) -> None:
        """Wait (at most ``UDEV_SETTLE_S``) until the new channel's files are ours to write."""
        waited = 0.0
        while not (channel.is_dir() and self._writable(channel / "period")):
            if waited >= UDEV_SETTLE_S:
                if channel.is_dir():
                    raise ActuatorError(
                        f"PWM channel {number} is exported but {channel}/period is not "
                        f"writable by this user: {UDEV_RULE} gives the gpio group write access "
                        "(is the package's rule installed? `udevadm trigger -s pwm` reapplies it)",
                        path=str(channel),
                    )
                return  # the caller says the kernel did not create it
            self._sleep(UDEV_POLL_S)
            waited += UDEV_POLL_S
