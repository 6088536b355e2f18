"""Simulated UPS HATs: the chips' registers and pisugar-server's answers come from the sim
battery's physics, so the board runs the very readers a real Pi 5 runs (``linux.ups``).

Register behaviour as in the MAX17048 and INA219 datasheets (see ``linux/ups``); the X120x
mains line is driven on the simulated header's GPIO the HAT uses. A failed battery makes
the chip stop answering, as a HAT whose cell protection tripped does.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Sequence
from typing import Protocol

from wrale.metal.hw.base import (
    Direction,
    LineConfig,
    Power,
    PowerReading,
    PowerSource,
    Pull,
)
from wrale.metal.hw.linux.sysfs import HealthLog
from wrale.metal.hw.linux.ups import (
    Ina219Config,
    Max17048Config,
    PiSugarConfig,
    UpsConfig,
    UpsReader,
    hat_lines,
    open_reader,
    power_from_ups,
)
from wrale.metal.hw.sim.gpio import SimGpio
from wrale.metal.hw.sim.power import CELL_EMPTY_V, CELL_FULL_V, SimPower
from wrale.metal.hw.sim.runtime import Runtime
from wrale.shared.errors import ConfigError

Done = Callable[[list[str]], bool]


def cell_v(power: SimPower) -> float:
    pct = power.battery_pct() or 0.0
    return CELL_EMPTY_V + (CELL_FULL_V - CELL_EMPTY_V) * pct / 100.0


def _s16(value: float) -> int:
    return max(-0x8000, min(0x7FFF, round(value))) & 0xFFFF


class SimChip(Protocol):
    def read(self, register: int) -> int: ...

    def write(self, register: int, value: int) -> None: ...


class SimMax17048:
    """VCELL, SOC and CRATE from the cell; VERSION 0012h; CONFIG/MODE writable."""

    def __init__(self, power: SimPower) -> None:
        self._power = power
        self._rw = {0x06: 0x0000, 0x0C: 0x971C, 0x14: 0x00FF, 0x18: 0x9600, 0x1A: 0x0100}

    def read(self, register: int) -> int:
        p = self._power
        if register == 0x02:
            return round(cell_v(p) / 78.125e-6) & 0xFFFF
        if register == 0x04:
            return round((p.battery_pct() or 0.0) * 256) & 0xFFFF
        if register == 0x08:
            return 0x0012
        if register == 0x16:
            pct_h = 100.0 * p.state.battery_flow_w / p.capacity_wh if p.capacity_wh else 0.0
            return _s16(pct_h / 0.208)
        if register in self._rw:
            return self._rw[register]
        raise OSError(errno.EIO, "Input/output error")

    def write(self, register: int, value: int) -> None:
        if register in self._rw:
            self._rw[register] = value & 0xFFFF


class SimIna219:
    """A 2S pack (or ``cells``) on a 0.1 Ω shunt; current as the chip computes it."""

    def __init__(self, power: SimPower, *, cells: int, shunt_ohm: float) -> None:
        self._power = power
        self._cells = cells
        self._shunt_ohm = shunt_ohm
        self._config, self._cal = 0x399F, 0

    def read(self, register: int) -> int:
        pack_v = self._cells * cell_v(self._power)
        amps = self._power.state.battery_flow_w / pack_v if pack_v else 0.0
        shunt = round(amps * self._shunt_ohm / 10e-6)
        current = int(shunt * self._cal / 4096)
        words = {
            0x00: self._config,
            0x01: _s16(shunt),
            0x02: (round(pack_v / 0.004) << 3) | 0x2,
            0x03: abs(current) * round(pack_v / 0.004) // 5000 & 0xFFFF,
            0x04: _s16(current),
            0x05: self._cal,
        }
        if register not in words:
            raise OSError(errno.EIO, "Input/output error")
        return words[register]

    def write(self, register: int, value: int) -> None:
        if register == 0x00:
            self._config = value & 0xFFFF
        elif register == 0x05:
            self._cal = value & 0xFFFE


class SimI2cBus:
    """The HAT's chips by address; nothing answers while the battery has failed."""

    def __init__(self, rt: Runtime, power: SimPower, chips: dict[int, SimChip]) -> None:
        self._rt = rt
        self._power = power
        self._chips = chips

    def read_word(self, address: int, register: int) -> int:
        with self._rt.reading():
            return self._chip(address).read(register)

    def write_word(self, address: int, register: int, value: int) -> None:
        with self._rt.reading():
            self._chip(address).write(register, value)

    def close(self) -> None:
        """Nothing to release."""

    def _chip(self, address: int) -> SimChip:
        chip = self._chips.get(address)
        if chip is None or self._power.battery_failed:
            raise OSError(errno.EREMOTEIO, "Remote I/O error")
        return chip


class SimPiSugarLink:
    """pisugar-server's answers (``name: value``, Rust formatting) from the cell's state."""

    def __init__(self, rt: Runtime, power: SimPower) -> None:
        self._rt = rt
        self._power = power

    def exchange(self, request: bytes, done: Done) -> list[str]:
        with self._rt.reading():
            return [self._answer(r) for r in request.decode().splitlines() if r]

    def _answer(self, request: str) -> str:
        name = request.removeprefix("get ")
        p = self._power
        if p.battery_failed:
            return f"{name}: I2C not connected"
        values = {
            "battery": f"{p.battery_pct() or 0.0:g}",
            "battery_v": f"{cell_v(p):g}",
            "battery_charging": str(p.state.battery_flow_w > 0).lower(),
            "battery_power_plugged": str(not p.main_lost).lower(),
        }
        return f"{name}: {values[name]}" if name in values else f"error: unknown {name!r}"


class SimUpsPower:
    """The sim board's ``Power`` read through a UPS HAT reader, like a Pi 5 with that HAT."""

    def __init__(self, rt: Runtime, power: SimPower, reader: UpsReader, sync: Callable[[], None]):
        self._rt = rt
        self._power = power
        self.reader = reader
        self._sync = sync

    def read_power(self) -> PowerReading:
        with self._rt.reading():
            self._sync()
            rail_v = self._power.read_power().voltage_v  # what the PMIC's EXT5V_V reads
            return power_from_ups(self.reader.read_ups(), rail_v)

    def select_source(self, source: PowerSource) -> None:
        self._power.select_source(source)

    def request_shutdown(self, reason: str) -> None:
        self._power.request_shutdown(reason)


def attach_ups_hat(
    config: UpsConfig, rt: Runtime, power: SimPower, gpio: SimGpio, health: HealthLog
) -> Power:
    """``power`` as seen through the HAT ``config`` names (the same config a board takes);
    its battery is ``power``'s (``SimSettings`` refuses a HAT without one)."""
    sync: Callable[[], None] = lambda: None  # noqa: E731 - the HATs without a mains line
    chips: dict[int, SimChip] = {}
    if isinstance(config, Max17048Config):
        chips[config.address] = SimMax17048(power)
        if config.mains_line is not None:
            sync = _mains_line(config, power, gpio)
    elif isinstance(config, Ina219Config):
        chips[config.address] = SimIna219(power, cells=config.cells, shunt_ohm=config.shunt_ohm)
    bus = SimI2cBus(rt, power, chips)
    link = SimPiSugarLink(rt, power) if isinstance(config, PiSugarConfig) else None
    reader = open_reader(config, health, gpio=gpio, open_bus=lambda n: bus, pisugar_link=link)
    return SimUpsPower(rt, power, reader, sync)


def _mains_line(config: Max17048Config, power: SimPower, gpio: SimGpio) -> Callable[[], None]:
    line = config.mains_line
    assert line is not None
    for used in gpio.lines():
        what = hat_lines(config).get(used.line)
        if what is not None:
            raise ConfigError(f"GPIO {used.line} is the UPS HAT's {what} line; use another")
    gpio.configure_line(line, LineConfig(direction=Direction.IN, pull=Pull.NONE))

    def drive() -> None:
        level = int(not power.main_lost)
        gpio.drive_input(line, level if config.mains_active_high else 1 - level)

    drive()
    return drive


__all__: Sequence[str] = ("SimUpsPower", "attach_ups_hat")
