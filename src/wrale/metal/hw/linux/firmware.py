"""Raspberry Pi firmware flags: the ``get_throttled`` word and the ``rpi_volt`` alarm.

Shared by the throttle, power and tamper readers. Both interfaces are optional (a Pi 5
may have only ``rpi_volt``; other boards neither), so absence is logged at info level.
"""

from __future__ import annotations

import threading
from pathlib import Path

from wrale.metal.hw.linux.sysfs import HealthLog, Locator, find_hwmon, read_text, under_root
from wrale.shared.clock import Clock
from wrale.shared.config import LinuxPaths

UNDER_VOLTAGE_NOW = 0x1
UNDER_VOLTAGE_OCCURRED = 0x10000
VOLT_HWMON = "rpi_volt"
# Where other kernels put the firmware node when the configured path does not exist.
FALLBACK_GLOBS = (
    "devices/platform/*/*firmware/get_throttled",
    "devices/platform/*firmware/get_throttled",
)


def parse_throttled(text: str) -> int:
    """Parse the ``get_throttled`` word.

    The kernel prints it as bare hex (``"50005"``); ``"0x50005"`` and vcgencmd's
    ``"throttled=0x50005"`` are accepted too. Bare digits are hex, never decimal.
    """
    value = text.strip().lower().rpartition("=")[2].strip()
    bits = int(value, 16)
    if not 0 <= bits <= 0xFFFFFFFF:
        raise ValueError(f"not a 32-bit word: {text!r}")
    return bits


def _find_get_throttled(root: Path, configured: Path) -> Path | None:
    if configured.is_file():
        return configured
    for pattern in FALLBACK_GLOBS:
        for candidate in sorted(root.glob(pattern)):
            if candidate.is_file():
                return candidate
    return None


class FirmwareFlags:
    """Reads the firmware's throttle word, folding in the ``rpi_volt`` under-voltage alarm."""

    def __init__(self, paths: LinuxPaths, clock: Clock, health: HealthLog) -> None:
        root = paths.sysfs_root
        configured = under_root(root, paths.get_throttled_path)
        self._word = Locator.single(lambda: _find_get_throttled(root, configured), clock)
        self._volt = Locator.single(lambda: find_hwmon(root, VOLT_HWMON), clock)
        self._health = health
        self._lock = threading.Lock()
        self._alarm_seen = False  # the alarm has no "has occurred" latch: keep one here

    def get_throttled(self) -> int | None:
        """The raw ``get_throttled`` word, or ``None`` without that interface."""
        source = "firmware get_throttled"
        path = self._word.one()
        if path is None:
            self._health.absent(source, "no get_throttled file")
            return None
        try:
            bits = parse_throttled(read_text(path))
        except (OSError, ValueError) as exc:
            self._health.failed(source, f"cannot read {path}: {exc}")
            return None
        self._health.ok(source)
        return bits

    def under_voltage_alarm(self) -> bool | None:
        """``rpi_volt``'s ``in0_lcrit_alarm`` (1 = under-voltage now), ``None`` without it."""
        source = f"under-voltage alarm (hwmon {VOLT_HWMON!r})"
        directory = self._volt.one()
        if directory is None:
            self._health.absent(source, f"no hwmon device named {VOLT_HWMON!r}")
            return None
        path = directory / "in0_lcrit_alarm"
        try:
            alarm = int(read_text(path))
        except (OSError, ValueError) as exc:
            self._health.failed(source, f"cannot read {path}: {exc}")
            return None
        self._health.ok(source)
        with self._lock:
            self._alarm_seen = self._alarm_seen or alarm != 0
        return alarm != 0

    def bits(self) -> int | None:
        """``get_throttled`` with the alarm ORed into bit 0 (and, once seen, bit 16)."""
        word, alarm = self.get_throttled(), self.under_voltage_alarm()
        if word is None and alarm is None:
            return None
        bits = word or 0
        if alarm:
            bits |= UNDER_VOLTAGE_NOW
        if self._alarm_seen:
            bits |= UNDER_VOLTAGE_OCCURRED
        return bits

    def under_voltage_now(self) -> bool | None:
        bits = self.bits()
        return None if bits is None else bool(bits & UNDER_VOLTAGE_NOW)
