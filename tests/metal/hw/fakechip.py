"""A fake libgpiod chip and its line requests, standing in for ``/dev/gpiochip*``.

``FakeChip`` is RP1 as ``gpiod.Chip`` shows it (label ``pinctrl-rp1``, 54 lines): requests,
outputs, the outside world driving inputs and the edge events the kernel would queue.
It touches no files; ``fakegpio.py`` lays out the /dev sets, ``fakesys.py`` the sysfs tree.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Iterable, Mapping
from datetime import timedelta
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import gpiod
from gpiod.line import Bias, Direction, Edge, Value

if TYPE_CHECKING:
    from tests.metal.hw.fakegpio import FakePinctrl


class FakeLineRequest:
    """One libgpiod line request on a ``FakeChip``."""

    def __init__(self, chip: FakeChip, settings: dict[int, gpiod.LineSettings]) -> None:
        self.chip = chip
        self.settings = settings
        self.events: list[gpiod.EdgeEvent] = []
        self.released = False
        for line, s in settings.items():
            if s.direction is Direction.OUTPUT:
                chip.outputs[line] = s.output_value

    def get_value(self, line: int | str) -> Value:
        self._check()
        return Value.ACTIVE if self.chip.level(int(line)) else Value.INACTIVE

    def set_value(self, line: int | str, value: Value) -> None:
        self._check()
        self.chip.outputs[int(line)] = value

    def reconfigure_lines(self, config: dict[Any, gpiod.LineSettings | None]) -> None:
        self._check()
        for line, s in config.items():
            self.settings[line] = s or gpiod.LineSettings()
            if self.settings[line].direction is Direction.OUTPUT:
                self.chip.outputs[line] = self.settings[line].output_value
            else:
                self.chip.outputs.pop(line, None)
        self.chip.muxed_to_gpio(self.settings)

    def wait_edge_events(self, timeout: timedelta | float | None = None) -> bool:
        self._check()
        return bool(self.events)

    def read_edge_events(self, max_events: int | None = None) -> list[gpiod.EdgeEvent]:
        self._check()
        events, self.events = self.events, []
        return events

    def release(self) -> None:
        self.released = True
        for line in self.settings:
            self.chip.requests.pop(line, None)
            self.chip.outputs.pop(line, None)

    def _check(self) -> None:
        if self.released:
            raise gpiod.RequestReleasedError()


class FakeChip:
    """Stands in for ``gpiod.Chip`` (RP1 on a Pi 5 has 54 lines; BCM 0-27 on the header).

    ``drive(line, level)`` is the outside world changing an input; edges are queued on the
    line's request as the kernel would (no debounce here: that is the kernel's job).
    """

    def __init__(
        self,
        num_lines: int = 54,
        *,
        busy: Iterable[int] = (),
        label: str = "pinctrl-rp1",
        pinctrl: FakePinctrl | None = None,
    ) -> None:
        self.num_lines = num_lines
        self.label = label  # what ``gpiod.Chip(path).get_info().label`` returns
        self.pinctrl = pinctrl  # RP1: requesting a line switches its function to GPIO
        self.busy = set(busy)  # lines another program holds
        self.external: dict[int, int] = {}
        self.outputs: dict[int, Value] = {}
        self.requests: dict[int, FakeLineRequest] = {}
        self.consumers: list[str | None] = []
        self.opened: list[str] = []
        self.closed = False
        self._seq = 0

    def open(self, path: str) -> FakeChip:
        self.opened.append(path)
        return self

    def get_info(self) -> SimpleNamespace:
        return SimpleNamespace(name="gpiochip0", label=self.label, num_lines=self.num_lines)

    def request_lines(
        self,
        config: dict[Any, gpiod.LineSettings | None],
        consumer: str | None = None,
        event_buffer_size: int | None = None,
        output_values: dict[int | str, Value] | None = None,
    ) -> FakeLineRequest:
        settings = {int(line): s or gpiod.LineSettings() for line, s in config.items()}
        for line in settings:
            if line >= self.num_lines:
                raise ValueError("line offset of out range")
            if line in self.busy or line in self.requests:
                raise OSError(errno.EBUSY, "Device or resource busy")
        request = FakeLineRequest(self, settings)
        self.consumers.append(consumer)
        self.muxed_to_gpio(settings)
        for line in settings:
            self.requests[line] = request
        return request

    def close(self) -> None:
        self.closed = True

    def level(self, line: int) -> int:
        """What the line reads: the driven output, else the outside signal, else the bias."""
        if line in self.outputs:
            return int(self.outputs[line] == Value.ACTIVE)
        if line in self.external:
            return self.external[line]
        request = self.requests.get(line)
        pulled_up = request is not None and request.settings[line].bias is Bias.PULL_UP
        return int(pulled_up)

    def drive(self, line: int, level: int) -> None:
        before = self.level(line)
        self.external[line] = level
        after = self.level(line)
        request = self.requests.get(line)
        if request is None or before == after:
            return
        edge = request.settings[line].edge_detection
        rising = after == 1
        if edge is Edge.BOTH or edge is (Edge.RISING if rising else Edge.FALLING):
            self._seq += 1
            kind = gpiod.EdgeEvent.Type.RISING_EDGE if rising else gpiod.EdgeEvent.Type.FALLING_EDGE
            request.events.append(
                gpiod.EdgeEvent(kind.value, time.time_ns(), line, self._seq, self._seq)
            )

    def settings(self, line: int) -> gpiod.LineSettings:
        return self.requests[line].settings[line]

    def muxed_to_gpio(self, settings: Mapping[int, gpiod.LineSettings]) -> None:
        """pinctrl-rp1's direction_input/output set the pin's function to GPIO (SYS_RIO)."""
        if self.pinctrl is None:
            return
        for line, s in settings.items():
            self.pinctrl.fsel[line] = "op" if s.direction is Direction.OUTPUT else "ip"
