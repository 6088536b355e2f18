"""One GPIO input a HAT drives (e.g. X120x power-loss detection), read through the board's
``Gpio`` so the simulated header and libgpiod behave alike. Failures read ``None``."""

from __future__ import annotations

from wrale.metal.hw.base import Direction, Gpio, LineConfig, Pull
from wrale.metal.hw.linux.sysfs import HealthLog
from wrale.shared.errors import WraleError

HAT_INPUT = LineConfig(direction=Direction.IN, pull=Pull.NONE)  # the HAT drives the line


class GpioLevel:
    """The level of ``line`` (0/1), the line claimed as an input on first use."""

    def __init__(self, gpio: Gpio, line: int, health: HealthLog, *, purpose: str) -> None:
        self._gpio = gpio
        self.line = line
        self._health = health
        self._source = f"GPIO {line} ({purpose})"
        self._configured = False

    def __call__(self) -> int | None:
        try:
            if not self._configured:
                self._gpio.configure_line(self.line, HAT_INPUT)
                self._configured = True
            level = self._gpio.read_line(self.line)
        except WraleError as exc:
            self._configured = False
            self._health.failed(self._source, exc.message)
            return None
        self._health.ok(self._source)
        return level
