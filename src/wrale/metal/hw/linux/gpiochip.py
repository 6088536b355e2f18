"""Finds the GPIO chip of the 40-pin header by its libgpiod label, never by its number.

A Pi 5's header is RP1's ``pinctrl-rp1``: ``/dev/gpiochip4`` before kernel 6.6.47 and
``/dev/gpiochip0`` after (raspberrypi/linux pull request #6144); a Pi 4, 400 or CM4 has
``pinctrl-bcm2711`` and older boards ``pinctrl-bcm2835`` (the ``gpio_chip.label`` of
drivers/pinctrl/pinctrl-rp1.c and bcm/pinctrl-bcm2835.c). No ``gpiod`` import here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from wrale.metal.hw.linux.gpiod_api import ChipLike
from wrale.shared.errors import ConfigError, HardwareError

AUTO = "auto"  # the header chip of the board's device-tree model
DEV = Path("/dev")
PI5_GPIO_LABEL = "pinctrl-rp1"
PI4_GPIO_LABEL = "pinctrl-bcm2711"
BCM2835_GPIO_LABEL = "pinctrl-bcm2835"
_PI_MODEL = re.compile(r"Raspberry Pi (?:Compute Module )?(?P<generation>\d)?")

OpenChip = Callable[[str], ChipLike]


def header_chip_label(model: str) -> str | None:
    """The header chip's label for a ``/proc/device-tree/model`` string; ``None``: not a Pi."""
    match = _PI_MODEL.match(model.strip())
    if match is None:
        return None
    generation = match["generation"]
    if generation == "5":  # Pi 5, Pi 500, CM5
        return PI5_GPIO_LABEL
    if generation == "4":  # Pi 4, Pi 400, CM4
        return PI4_GPIO_LABEL
    return BCM2835_GPIO_LABEL  # Pi 1-3, Zero, Zero 2 (BCM2835/6/7 share the driver's label)


def open_header_chip(
    setting: str, model: str, *, open_chip: OpenChip, dev_dir: Path = DEV
) -> tuple[str, ChipLike]:
    """Open the chip ``setting`` names: ``auto`` (by model), a label, or a ``/dev`` path.

    A path whose chip is not the model's header chip is refused (``ConfigError`` naming both
    labels); a label is looked for among ``dev_dir/gpiochip*`` (``HardwareError`` if absent).
    """
    setting = setting.strip()
    expected = header_chip_label(model)
    if "/" in setting:
        return setting, _open_checked(setting, expected, model, open_chip)
    wanted = expected if setting.lower() == AUTO else setting
    if wanted is None:
        raise ConfigError(
            f"setting 'gpio_chip': 'auto' knows the header chip of Raspberry Pi boards only, "
            f"and this board is {model!r}; set it to the chip's label (gpiodetect lists them) "
            "or its /dev path",
            setting="gpio_chip",
        )
    return _scan(wanted, open_chip, dev_dir)


def chip_paths(dev_dir: Path) -> list[Path]:
    """``gpiochip*`` under ``dev_dir`` in numeric order, each chip once (links followed)."""

    def number(path: Path) -> tuple[int, str]:
        digits = path.name.removeprefix("gpiochip")
        return (int(digits) if digits.isdigit() else 1 << 30, path.name)

    seen: set[str] = set()
    paths = []
    for path in sorted(dev_dir.glob("gpiochip*"), key=number):
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            paths.append(path)
    return paths


def _open_checked(path: str, expected: str | None, model: str, open_chip: OpenChip) -> ChipLike:
    try:
        chip = open_chip(path)
        label = chip.get_info().label
    except OSError as exc:
        raise HardwareError(f"cannot open GPIO chip {path}: {exc}", chip=path) from exc
    if expected is not None and label != expected:
        chip.close()
        raise ConfigError(
            f"setting 'gpio_chip': {path} is the GPIO chip '{label}', not the 40-pin header's "
            f'\'{expected}\' of a {model}; set gpio_chip = "auto" (or "{expected}")',
            setting="gpio_chip",
            found=label,
            expected=expected,
        )
    return chip


def _scan(label: str, open_chip: OpenChip, dev_dir: Path) -> tuple[str, ChipLike]:
    seen: list[str] = []
    for path in chip_paths(dev_dir):
        try:
            chip = open_chip(str(path))
        except OSError as exc:
            seen.append(f"{path.name}: {exc.strerror or exc}")
            continue
        try:
            found = chip.get_info().label
        except OSError as exc:
            chip.close()
            seen.append(f"{path.name}: {exc.strerror or exc}")
            continue
        if found == label:
            return str(path), chip
        chip.close()
        seen.append(f"{path.name} is '{found}'")
    if not seen:
        raise HardwareError(f"no GPIO chips under {dev_dir} (looking for '{label}')", label=label)
    raise HardwareError(
        f"no GPIO chip labelled '{label}' under {dev_dir} ({'; '.join(seen)})", label=label
    )
