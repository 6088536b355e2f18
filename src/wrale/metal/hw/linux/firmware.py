"""Raspberry Pi firmware flags: under-voltage from ``rpi_volt``, the throttle word from
``vcgencmd get_throttled``, and the "since boot" history metald latches itself.

Why not ``/sys/devices/platform/soc/soc:firmware/get_throttled``: on the Pi kernel every read
of it logs a warning, and ``rpi_volt`` (drivers/hwmon/raspberrypi-hwmon.c) asks the firmware
every 2 s for the word *and to clear its sticky bits* (it sends 0xffff), so bits 16-19 mean
"in the last ~2 s", not "since boot". The file is read only when ``read_sysfs_word`` is set.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

from wrale.metal.hw.linux.sysfs import HealthLog, Locator, find_hwmon, read_text, under_root
from wrale.metal.hw.linux.vcgencmd import Vcgencmd
from wrale.shared.clock import Clock
from wrale.shared.config import LinuxPaths

log = logging.getLogger("wrale.metal.hw.linux")

UNDER_VOLTAGE_NOW = 0x1
NOW_BITS = 0xF  # under-voltage, frequency capped, throttled, soft temperature limit
OCCURRED_SHIFT = 16
OCCURRED_BITS = NOW_BITS << OCCURRED_SHIFT
VOLT_HWMON = "rpi_volt"
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
HISTORY_FILE = "throttle-history.json"
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


def read_boot_id(path: Path) -> str | None:
    """The kernel's boot id (a new UUID every boot), or ``None`` where it cannot be read."""
    try:
        return read_text(path) or None
    except (OSError, ValueError):
        return None


def write_json_atomically(path: Path, document: object) -> None:
    """Write ``document`` to ``path`` through a synced temporary file (a power cut leaves
    the old file or the new one, never half of one). ``OSError`` on failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(document, handle)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


def read_json(path: Path) -> dict[str, object] | None:
    """A JSON object from ``path``; ``None`` when missing or not a JSON object."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


class ThrottleHistory:
    """The ``*_occurred`` bits (16-19) since boot, latched by metald and kept in
    ``state_dir`` with the kernel's boot id: a metald restart keeps them, a reboot clears
    them. Written only when a new bit appears (a few times per boot at most)."""

    def __init__(self, state_dir: Path | None, boot_id_path: Path = BOOT_ID) -> None:
        self._path = None if state_dir is None else state_dir / HISTORY_FILE
        self._boot_id = read_boot_id(boot_id_path)
        self._lock = threading.Lock()
        self._occurred = 0
        if self._boot_id is None:
            log.info("no boot id at %s: throttle history kept in memory only", boot_id_path)
        elif self._path is not None:
            saved = read_json(self._path)
            if saved is not None and saved.get("boot_id") == self._boot_id:
                occurred = saved.get("occurred")
                if isinstance(occurred, int):
                    self._occurred = occurred & OCCURRED_BITS

    def latch(self, bits: int) -> int:
        """Add what ``bits`` shows (now or recently) to the history; return the history."""
        seen = ((bits & NOW_BITS) << OCCURRED_SHIFT) | (bits & OCCURRED_BITS)
        with self._lock:
            if seen & ~self._occurred == 0:
                return self._occurred
            self._occurred |= seen
            occurred = self._occurred
        self._save(occurred)
        return occurred

    def _save(self, occurred: int) -> None:
        if self._path is None or self._boot_id is None:
            return
        try:
            write_json_atomically(self._path, {"boot_id": self._boot_id, "occurred": occurred})
        except OSError as exc:
            log.warning("cannot keep the throttle history in %s: %s", self._path, exc)


def _find_get_throttled(root: Path, configured: Path) -> Path | None:
    if configured.is_file():
        return configured
    for pattern in FALLBACK_GLOBS:
        for candidate in sorted(root.glob(pattern)):
            if candidate.is_file():
                return candidate
    return None


class FirmwareFlags:
    """The firmware's throttle word as metald reports it (bits 0-3 now, 16-19 since boot).

    Under-voltage now comes from ``rpi_volt``'s ``in0_lcrit_alarm``; the other bits from
    ``vcgencmd get_throttled`` (cached by ``Vcgencmd``, a few seconds old at most).
    """

    def __init__(
        self,
        paths: LinuxPaths,
        clock: Clock,
        health: HealthLog,
        *,
        vcgencmd: Vcgencmd | None = None,
        history: ThrottleHistory | None = None,
        read_sysfs_word: bool = False,
    ) -> None:
        root = paths.sysfs_root
        configured = under_root(root, paths.get_throttled_path)
        self._word = (
            Locator.single(lambda: _find_get_throttled(root, configured), clock)
            if read_sysfs_word
            else None
        )
        self._volt = Locator.single(lambda: find_hwmon(root, VOLT_HWMON), clock)
        self._vcgencmd = vcgencmd if vcgencmd is not None else Vcgencmd(clock, health)
        self._history = history if history is not None else ThrottleHistory(None)
        self._health = health

    def get_throttled(self) -> int | None:
        """The firmware's word (vcgencmd, or the sysfs file when enabled), ``None`` without."""
        if self._word is not None:
            return self._sysfs_word(self._word)
        answer = self._vcgencmd.throttled()
        if answer is None:
            return None
        source = "vcgencmd get_throttled answer"
        try:
            bits = parse_throttled(answer)
        except ValueError as exc:
            self._health.failed(source, f"cannot parse {answer!r}: {exc}")
            return None
        self._health.ok(source)
        return bits

    def _sysfs_word(self, where: Locator) -> int | None:
        source = "firmware get_throttled file"
        path = where.one()
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
        """``rpi_volt``'s ``in0_lcrit_alarm`` (1 = under-voltage in the last ~2 s), ``None``
        without it."""
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
        return alarm != 0

    def bits(self) -> int | None:
        """Bits 0-3 now (under-voltage from ``rpi_volt`` where present), bits 16-19 since
        boot from metald's history; ``None`` when neither source exists."""
        word, alarm = self.get_throttled(), self.under_voltage_alarm()
        if word is None and alarm is None:
            return None
        bits = word or 0
        if alarm is not None:
            bits = (bits & ~UNDER_VOLTAGE_NOW) | (UNDER_VOLTAGE_NOW if alarm else 0)
        occurred = self._history.latch(bits)
        return (bits & NOW_BITS) | occurred

    def under_voltage_now(self) -> bool | None:
        """Under-voltage now: the ``rpi_volt`` alarm, else bit 0 of the firmware's word."""
        alarm = self.under_voltage_alarm()
        if alarm is not None:
            self._history.latch(UNDER_VOLTAGE_NOW if alarm else 0)
            return alarm
        word = self.get_throttled()
        return None if word is None else bool(word & UNDER_VOLTAGE_NOW)
