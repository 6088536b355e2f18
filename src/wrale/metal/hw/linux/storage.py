"""The eMMC's own wear estimate from the kernel's mmc driver.

An eMMC 5.0+ device reports in its EXT_CSD how much of its life is used, and the kernel's
mmc driver shows it (drivers/mmc/core/mmc.c, the card's ``mmc_std_attrs``) under the card's
device directory, which ``/sys/block/mmcblkN/device`` links to:

- ``life_time``: two hex bytes, ``"0x01 0x02"``: DEVICE_LIFE_TIME_EST_TYP_A and _TYP_B (the
  two kinds of flash cell), each 0x01 = 0-10 % of the life used, 0x02 = 10-20 %, …,
  0x0A = 90-100 %, 0x0B = past its estimated life; 0x00 = not defined;
- ``pre_eol_info``: one hex byte: 0x01 normal, 0x02 warning (80 % of the reserved blocks
  consumed), 0x03 urgent (90 %); 0x00 = not defined.

SD cards (their own ``sd_std_attrs``) and NVMe drives have neither file: such a board has no
eMMC reading. The values change over months, so the files are read at most every
``READ_INTERVAL_S`` and the last reading is kept between. Nothing here decides policy.
"""

from __future__ import annotations

import threading
from pathlib import Path

from wrale.metal.hw.base import StorageReading
from wrale.metal.hw.linux.sysfs import HealthLog, read_text
from wrale.shared.clock import Clock

READ_INTERVAL_S = 600.0
BLOCK = "block"
LIFE_BANDS = 11  # 0x01 … 0x0A in steps of 10 %, 0x0B past the estimated life
PRE_EOL_MAX = 3


def life_used_pct(band: int) -> float | None:
    """The upper bound of a ``life_time`` band in % (0x0B, past its life: 100); ``None`` for
    0x00 (not defined) or a value outside the standard."""
    if not 1 <= band <= LIFE_BANDS:
        return None
    return 10.0 * min(band, 10)


def parse_life_time(text: str) -> float | None:
    """``"0x01 0x02"`` -> the worse band's upper bound in % (``ValueError`` on garbage)."""
    bands = [int(word, 16) for word in text.split()]
    if not bands:
        raise ValueError("empty life_time")
    used = [pct for pct in (life_used_pct(b) for b in bands) if pct is not None]
    return max(used) if used else None


def parse_pre_eol(text: str) -> int | None:
    """``"0x01"`` -> 1 (some kernels print it without the ``0x``); 0x00 -> ``None``."""
    value = int(text, 16)
    return value if 1 <= value <= PRE_EOL_MAX else None


def emmc_devices(sysfs_root: Path) -> list[Path]:
    """The card directories of the ``mmcblk`` block devices that report a ``life_time``."""
    found = []
    for block in sorted((sysfs_root / BLOCK).glob("mmcblk*")):
        device = block / "device"
        if (device / "life_time").is_file():
            found.append(device)
    return found


class LinuxStorage:
    """``read_storage``: the worst eMMC of the board (usually the one, ``mmcblk0``)."""

    def __init__(self, sysfs_root: Path, clock: Clock, health: HealthLog) -> None:
        self._root = sysfs_root
        self._clock = clock
        self._health = health
        self._lock = threading.Lock()
        self._read_at: float | None = None
        self._last = StorageReading()

    def read_storage(self) -> StorageReading:
        now = self._clock.monotonic()
        with self._lock:
            if self._read_at is None or now - self._read_at >= READ_INTERVAL_S:
                self._last = self._read()
                self._read_at = now
            return self._last

    def _read(self) -> StorageReading:
        used: list[float] = []
        pre_eol: list[int] = []
        for device in emmc_devices(self._root):
            source = f"eMMC wear ({device.parent.name})"
            try:
                life = parse_life_time(read_text(device / "life_time"))
                eol_path = device / "pre_eol_info"
                eol = parse_pre_eol(read_text(eol_path)) if eol_path.is_file() else None
            except (OSError, ValueError) as exc:
                self._health.failed(source, f"cannot read {device}: {exc}")
                continue
            self._health.ok(source)
            if life is not None:
                used.append(life)
            if eol is not None:
                pre_eol.append(eol)
        return StorageReading(
            emmc_life_used_pct=max(used) if used else None,
            emmc_pre_eol=max(pre_eol) if pre_eol else None,
        )
