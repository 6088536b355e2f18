"""The header GPIO chip found by its label (never by number) on the /dev sets of real boards."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.metal.hw.fakegpio import (
    PI4,
    PI5_NEW_KERNEL,
    PI5_NEW_KERNEL_LINKS,
    PI5_OLD_KERNEL,
    FakeDev,
)
from tests.metal.hw.fakesys import FakeSys
from wrale.metal.hw.base import LineConfig
from wrale.metal.hw.linux import GpiodGpio, LinuxBoard
from wrale.metal.hw.linux.gpiochip import header_chip_label, open_header_chip
from wrale.shared.errors import ConfigError, HardwareError

PI5 = "Raspberry Pi 5 Model B Rev 1.0"


@pytest.mark.parametrize(
    ("model", "label"),
    [
        (PI5, "pinctrl-rp1"),
        ("Raspberry Pi 500 Rev 1.0", "pinctrl-rp1"),
        ("Raspberry Pi Compute Module 5 Rev 1.0", "pinctrl-rp1"),
        ("Raspberry Pi 4 Model B Rev 1.5", "pinctrl-bcm2711"),
        ("Raspberry Pi 400 Rev 1.0", "pinctrl-bcm2711"),
        ("Raspberry Pi Compute Module 4 Rev 1.0", "pinctrl-bcm2711"),
        ("Raspberry Pi 3 Model B Plus Rev 1.3", "pinctrl-bcm2835"),
        ("Raspberry Pi Zero 2 W Rev 1.0", "pinctrl-bcm2835"),
        ("Raspberry Pi Model B Rev 2", "pinctrl-bcm2835"),
        ("Linux board", None),
        ("", None),
    ],
)
def test_the_label_follows_the_device_tree_model(model: str, label: str | None) -> None:
    assert header_chip_label(model) == label


def test_auto_finds_rp1_as_gpiochip4_on_an_older_pi5_kernel(tmp_path: Path) -> None:
    dev = FakeDev(tmp_path, PI5_OLD_KERNEL)
    path, chip = open_header_chip("auto", PI5, open_chip=dev.open, dev_dir=dev.root)
    assert path == dev.path("gpiochip4")
    assert chip is dev.chip("gpiochip4")
    assert not chip.closed
    assert all(dev.chip(n).closed for n in ("gpiochip0", "gpiochip1", "gpiochip2", "gpiochip3"))


def test_auto_finds_rp1_as_gpiochip0_on_a_newer_pi5_kernel(tmp_path: Path) -> None:
    dev = FakeDev(tmp_path, PI5_NEW_KERNEL, PI5_NEW_KERNEL_LINKS)
    path, chip = open_header_chip("auto", PI5, open_chip=dev.open, dev_dir=dev.root)
    assert path == dev.path("gpiochip0")
    assert chip.get_info().label == "pinctrl-rp1"


def test_auto_on_a_pi4(tmp_path: Path) -> None:
    dev = FakeDev(tmp_path, PI4)
    path, _ = open_header_chip(
        "auto", "Raspberry Pi 4 Model B Rev 1.4", open_chip=dev.open, dev_dir=dev.root
    )
    assert path == dev.path("gpiochip0")


def test_a_configured_label_is_looked_up(tmp_path: Path) -> None:
    dev = FakeDev(tmp_path, PI5_OLD_KERNEL)
    path, _ = open_header_chip("gpio-brcmstb@107d508520", PI5, open_chip=dev.open, dev_dir=dev.root)
    assert path == dev.path("gpiochip1")


def test_a_configured_path_to_the_wrong_chip_is_refused_naming_both_labels(
    tmp_path: Path,
) -> None:
    dev = FakeDev(tmp_path, PI5_OLD_KERNEL)
    with pytest.raises(ConfigError) as err:
        open_header_chip(dev.path("gpiochip0"), PI5, open_chip=dev.open, dev_dir=dev.root)
    message = err.value.message
    assert "gpio-brcmstb@107d508500" in message
    assert "pinctrl-rp1" in message
    assert "gpiochip0" in message
    assert dev.chip("gpiochip0").closed


def test_a_configured_path_to_the_right_chip_is_kept(tmp_path: Path) -> None:
    dev = FakeDev(tmp_path, PI5_NEW_KERNEL, PI5_NEW_KERNEL_LINKS)
    path, chip = open_header_chip(dev.path("gpiochip4"), PI5, open_chip=dev.open, dev_dir=dev.root)
    assert path == dev.path("gpiochip4")  # the compatibility link, followed by the kernel
    assert chip is dev.chip("gpiochip0")


def test_a_path_on_an_unknown_board_is_used_as_given(tmp_path: Path) -> None:
    dev = FakeDev(tmp_path, {"gpiochip0": ("gpio-mockup-A", 8)})
    path, _ = open_header_chip(
        dev.path("gpiochip0"), "Linux board", open_chip=dev.open, dev_dir=dev.root
    )
    assert path == dev.path("gpiochip0")


def test_no_chip_with_the_label_lists_what_was_found(tmp_path: Path) -> None:
    dev = FakeDev(tmp_path, PI4, unreadable=["gpiochip1"])
    with pytest.raises(HardwareError) as err:
        open_header_chip("auto", PI5, open_chip=dev.open, dev_dir=dev.root)
    message = err.value.message
    assert "pinctrl-rp1" in message
    assert "pinctrl-bcm2711" in message  # what gpiochip0 is
    assert "gpiochip1" in message
    assert "Permission denied" in message


def test_auto_on_an_unknown_board_needs_a_setting(tmp_path: Path) -> None:
    dev = FakeDev(tmp_path, {"gpiochip0": ("gpio-mockup-A", 8)})
    with pytest.raises(ConfigError, match="gpio_chip"):
        open_header_chip("auto", "Linux board", open_chip=dev.open, dev_dir=dev.root)


def test_no_gpio_chips_at_all(tmp_path: Path) -> None:
    dev = FakeDev(tmp_path, {})
    with pytest.raises(HardwareError, match="no GPIO chips"):
        open_header_chip("auto", PI5, open_chip=dev.open, dev_dir=dev.root)


def test_gpiod_gpio_opens_the_header_chip_by_label(tmp_path: Path) -> None:
    dev = FakeDev(tmp_path, PI5_OLD_KERNEL)
    gpio = GpiodGpio("auto", model=PI5, open_chip=dev.open, dev_dir=dev.root)
    gpio.configure_line(17, LineConfig())
    assert 17 in dev.chip("gpiochip4").requests
    assert 17 not in dev.chip("gpiochip0").requests
    assert gpio.chip_path == dev.path("gpiochip4")


def test_gpiod_gpio_refuses_the_wrong_chip_and_retries_later(tmp_path: Path) -> None:
    dev = FakeDev(tmp_path, PI5_OLD_KERNEL)
    gpio = GpiodGpio(dev.path("gpiochip0"), model=PI5, open_chip=dev.open, dev_dir=dev.root)
    with pytest.raises(ConfigError, match="pinctrl-rp1"):
        gpio.configure_line(17, LineConfig())
    assert dev.chip("gpiochip0").requests == {}


def test_the_board_opens_the_chip_its_model_calls_for(tmp_path: Path) -> None:
    fake = FakeSys(tmp_path)
    dev = FakeDev(tmp_path, PI5_OLD_KERNEL)
    board = LinuxBoard(
        fake.paths(gpio_chip="auto", case_switch_line=5),
        model_path=fake.model_path,
        gpio_dev_dir=dev.root,
        open_gpio_chip=dev.open,
    )
    assert board.tamper.read_tamper().case_open is True  # pulled up, nothing holds it down
    assert 5 in dev.chip("gpiochip4").requests
    board.close()
