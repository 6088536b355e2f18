"""``Readings``: every source of the board read once for one sampling step, each with an
availability flag. A source that fails is marked unavailable and logged once, and once
again when it recovers. Only the sampler calls this; it decides nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TypeVar

import msgspec

from wrale.metal.core import control
from wrale.metal.hw.base import (
    Board,
    EdgeEvent,
    FanReading,
    LineState,
    PowerReading,
    PowerSource,
    StorageReading,
    TamperReading,
    ThermalReading,
    ThrottleReading,
)
from wrale.shared.config import GpioLineSettings
from wrale.shared.errors import HardwareError

log = logging.getLogger("wrale.metal.core.engine")  # the engine's lines, under its name
T = TypeVar("T")


class Readings(msgspec.Struct, frozen=True):
    thermal: ThermalReading
    fan: FanReading
    throttle: ThrottleReading
    power: PowerReading
    tamper: TamperReading
    gpio: dict[str, LineState]
    edges: list[EdgeEvent]
    available: dict[str, bool]
    storage: StorageReading = StorageReading()


def read_all(
    b: Board,
    gpio_lines: Mapping[str, GpioLineSettings],
    prev: Readings | None,
    fan_pct: float,
) -> Readings:
    """Read every source once; a source that fails is marked unavailable. ``prev`` is the
    previous step's readings; ``fan_pct`` the fan duty to assume when the fan is unread."""
    available: dict[str, bool] = {}

    def read(name: str, fn: Callable[[], T], fallback: T) -> T:
        try:
            value = fn()
        except (HardwareError, OSError) as exc:
            if not prev or prev.available.get(name, True):
                log.warning("%s unavailable: %s", name, exc)
            available[name] = False
            return fallback
        if prev and not prev.available.get(name, True):
            log.info("%s available again", name)
        available[name] = True
        return value

    thermal = read("thermal", b.thermal.read_thermal, ThermalReading(None))
    available["cpu_temp"] = control.plausible(thermal.cpu_temp_c) is not None
    fan = read("fan", b.fan.read_fan, FanReading(fan_pct, None))
    throttle = read("throttle", b.throttle.read_throttle, ThrottleReading())
    power = read(
        "power",
        b.power.read_power,
        prev.power if prev else PowerReading(PowerSource.MAIN, None, None, None),
    )
    tamper = read("tamper", b.tamper.read_tamper, TamperReading(None, None, None))
    storage = read("storage", b.storage.read_storage, StorageReading())
    gpio: dict[str, LineState] = {}
    edges: list[EdgeEvent] = []
    if gpio_lines:
        empty: list[LineState] = []
        states = read("gpio", b.gpio.lines, empty)
        by_line = {s.line: s for s in states}
        gpio = {name: by_line[c.line] for name, c in gpio_lines.items() if c.line in by_line}
        edges = read("gpio_edges", b.gpio.drain_edge_events, [])
    return Readings(thermal, fan, throttle, power, tamper, gpio, edges, available, storage)
