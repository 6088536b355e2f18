"""An MMC/SD card in a fake sysfs tree, shaped as the kernel makes it.

Source: the Linux kernel's drivers/mmc/core/mmc.c (github.com/torvalds/linux; the same in
raspberrypi/linux): an eMMC card's ``mmc_std_attrs`` include ``life_time``, printed as two
hex bytes ``"0x%02x 0x%02x"`` (EXT_CSD DEVICE_LIFE_TIME_EST_TYP_A and _TYP_B), and
``pre_eol_info``, one hex byte ``"0x%02x"`` (EXT_CSD PRE_EOL_INFO); an SD card's
``sd_std_attrs`` (drivers/mmc/core/sd.c) have neither. The card's directory is
``devices/.../mmc_host/mmcN/mmcN:RCA``; its disk is ``<card>/block/mmcblkN``, with ``device``
linking back to the card, and ``/sys/block/mmcblkN`` links to the disk.
"""

from __future__ import annotations

import os
from pathlib import Path

# the Pi 5's SDIO/eMMC controller (CM5: the on-module eMMC; Pi 5: the SD slot)
HOST = "devices/platform/axi/1000fff000.mmc/mmc_host"


def add_mmc_card(
    sys_root: Path,
    index: int = 0,
    *,
    emmc: bool = True,
    life_time: str | None = "0x01 0x01",
    pre_eol_info: str | None = "0x01",
) -> Path:
    """Card ``mmc<index>:0001`` with disk ``mmcblk<index>``; its directory. An SD card
    (``emmc=False``) has no wear attributes whatever is asked."""
    card = sys_root / HOST / f"mmc{index}" / f"mmc{index}:0001"
    card.mkdir(parents=True)
    (card / "type").write_text("MMC\n" if emmc else "SD\n", encoding="ascii")
    (card / "name").write_text("BJTD4R\n" if emmc else "SD32G\n", encoding="ascii")
    if emmc and life_time is not None:
        (card / "life_time").write_text(f"{life_time}\n", encoding="ascii")
    if emmc and pre_eol_info is not None:
        (card / "pre_eol_info").write_text(f"{pre_eol_info}\n", encoding="ascii")
    disk = card / "block" / f"mmcblk{index}"
    disk.mkdir(parents=True)
    (disk / "size").write_text("61071360\n", encoding="ascii")
    (disk / "device").symlink_to(f"../../../{card.name}")
    block = sys_root / "block"
    block.mkdir(exist_ok=True)
    (block / disk.name).symlink_to(os.path.relpath(disk, block))
    return card
