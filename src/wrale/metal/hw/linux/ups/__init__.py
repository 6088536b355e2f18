"""UPS HAT readers behind one interface (``UpsReader`` → ``UpsReading``), one module per
HAT family, and ``open_reader`` that builds the one a config names."""

from __future__ import annotations

from collections.abc import Callable

from wrale.metal.hw.base import Gpio
from wrale.metal.hw.linux.sysfs import HealthLog
from wrale.metal.hw.linux.ups.base import I2cBus, UpsReader, UpsReading
from wrale.metal.hw.linux.ups.gpio_level import GpioLevel
from wrale.metal.hw.linux.ups.i2c import LinuxI2cBus, i2c_dev_path
from wrale.metal.hw.linux.ups.ina219 import Ina219Reader
from wrale.metal.hw.linux.ups.max17048 import Max17048Reader
from wrale.metal.hw.linux.ups.pisugar import PiSugarLink, PiSugarReader
from wrale.metal.hw.linux.ups.reading import power_from_ups
from wrale.shared.board_settings import Ina219Config, Max17048Config, PiSugarConfig, UpsConfig

OpenBus = Callable[[int], I2cBus]  # bus number -> bus (tests and the simulator pass theirs)


def open_linux_bus(number: int) -> I2cBus:
    return LinuxI2cBus(i2c_dev_path(number))


def hat_lines(config: UpsConfig) -> dict[int, str]:
    """The header lines the HAT uses (BCM number -> what for); nothing else may claim them."""
    if not isinstance(config, Max17048Config):
        return {}  # the Waveshare and PiSugar HATs talk over I2C (GPIO2/3) only
    lines = {config.mains_line: "mains present", config.charge_control_line: "charge control"}
    return {line: what for line, what in lines.items() if line is not None}


def open_reader(
    config: UpsConfig,
    health: HealthLog,
    *,
    gpio: Gpio | None = None,
    open_bus: OpenBus = open_linux_bus,
    pisugar_link: PiSugarLink | None = None,
) -> UpsReader:
    """The reader for ``config``; ``gpio`` serves a HAT's mains line where it has one."""
    if isinstance(config, Max17048Config):
        mains = None
        if config.mains_line is not None and gpio is not None:
            mains = GpioLevel(gpio, config.mains_line, health, purpose="UPS HAT mains present")
        return Max17048Reader(config, open_bus(config.bus), health, mains_level=mains)
    if isinstance(config, Ina219Config):
        return Ina219Reader(config, open_bus(config.bus), health)
    return PiSugarReader(config, health, link=pisugar_link)


__all__ = [
    "I2cBus",
    "Ina219Config",
    "Ina219Reader",
    "LinuxI2cBus",
    "Max17048Config",
    "Max17048Reader",
    "OpenBus",
    "PiSugarConfig",
    "PiSugarReader",
    "UpsConfig",
    "UpsReader",
    "UpsReading",
    "hat_lines",
    "open_reader",
    "power_from_ups",
]
