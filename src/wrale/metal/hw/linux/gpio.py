"""``GpiodGpio``: the board's GPIO lines through libgpiod v2, hardware PWM through sysfs.

The chip is found by label on first use (``gpiochip.py``). Each line has its own request so
it can be reconfigured alone. libgpiod's errors become ``WraleError``s here and nowhere else.
"""

from __future__ import annotations

import errno
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from wrale.metal.hw.base import Direction, Edge, EdgeEvent, LineConfig, LineState
from wrale.metal.hw.linux.gpiochip import AUTO, DEV, open_header_chip
from wrale.metal.hw.linux.gpiod_api import (
    ChipLike,
    LineRequestLike,
    line_settings,
    line_value,
    open_gpiod_chip,
)
from wrale.metal.hw.linux.pwm import SysfsPwm
from wrale.shared.clock import Clock, SystemClock
from wrale.shared.errors import (
    ActuatorError,
    ConflictError,
    HardwareError,
    InvalidRequestError,
    NotFoundError,
    SensorError,
    UnsupportedError,
)

if TYPE_CHECKING:
    from gpiod import EdgeEvent as GpiodEdgeEvent

log = logging.getLogger("wrale.metal.hw.linux")
CONSUMER = "wrale-metald"
MAX_DEBOUNCE_MS = 10_000


@dataclass(slots=True)
class _Held:
    request: LineRequestLike
    config: LineConfig
    value: int = 0


class GpiodGpio:
    """The header's GPIO chip; PWM lines go to ``pwm`` when given.

    ``chip`` is ``"auto"`` (the header chip of ``model``, the device-tree model), a chip
    label, or a ``/dev/gpiochipN`` path, which is refused when its label is not the model's
    header chip. ``dev_dir`` and ``open_chip`` are where chips are looked for and how opened.
    """

    def __init__(
        self,
        chip: str | Path = AUTO,
        clock: Clock | None = None,
        *,
        pwm: SysfsPwm | None = None,
        consumer: str = CONSUMER,
        open_chip: Callable[[str], ChipLike] | None = None,
        model: str = "",
        dev_dir: Path = DEV,
    ) -> None:
        self.chip_path = str(chip)  # the path once the chip is open
        self._chip_setting = str(chip)
        self._model = model
        self._dev_dir = dev_dir
        self._clock = clock or SystemClock()
        self._pwm = pwm
        self._consumer = consumer
        self._open_chip = open_chip or open_gpiod_chip
        self._lock = threading.RLock()
        self._chip: ChipLike | None = None
        self._held: dict[int, _Held] = {}
        self._pwm_lines: dict[int, tuple[float, float]] = {}
        self._closed = False

    def configure_line(self, line: int, config: LineConfig) -> None:
        _check_config(line, config)
        with self._lock:
            chip = self._chip_handle()
            if not 0 <= line < chip.get_info().num_lines:
                raise NotFoundError(f"GPIO line {line} does not exist on {self.chip_path}")
            if line in self._pwm_lines and self._pwm is not None:
                self._pwm.stop(line)
                del self._pwm_lines[line]
            held = self._held.get(line)
            keep = held.value if held and held.config.direction is Direction.OUT else 0
            settings = line_settings(config, keep)
            try:
                if held is not None:
                    held.request.reconfigure_lines({line: settings})
                    request = held.request
                else:
                    request = chip.request_lines({line: settings}, consumer=self._consumer)
            except ValueError as exc:
                raise NotFoundError(f"GPIO line {line}: {exc}") from exc
            except OSError as exc:
                raise _translate(exc, line, "configure") from exc
            value = keep if config.direction is Direction.OUT else 0
            self._held[line] = _Held(request, config, value)

    def read_line(self, line: int) -> int:
        with self._lock:
            if line in self._pwm_lines:
                return int(self._pwm_lines[line][1] > 0)
            held = self._get(line)
            try:
                held.value = int(bool(held.request.get_value(line)))
            except OSError as exc:
                raise SensorError(f"cannot read GPIO line {line}: {exc}") from exc
            return held.value

    def write_line(self, line: int, value: int) -> None:
        if value not in (0, 1):
            raise InvalidRequestError(f"a GPIO line is driven to 0 or 1, not {value!r}")
        with self._lock:
            if line in self._pwm_lines:
                raise ConflictError(f"GPIO line {line} is driven by PWM; configure it first")
            held = self._get(line)
            if held.config.direction is not Direction.OUT:
                raise ConflictError(f"GPIO line {line} is an input; configure it as output first")
            try:
                held.request.set_value(line, line_value(value))
            except OSError as exc:
                raise ActuatorError(f"cannot drive GPIO line {line}: {exc}") from exc
            held.value = int(value)

    def set_pwm(self, line: int, frequency_hz: float, duty_pct: float) -> None:
        if self._pwm is None:
            raise UnsupportedError("this board has no hardware PWM configured", line=line)
        self._pwm.check(line, frequency_hz, duty_pct)
        with self._lock:
            self._check_open()
            if line in self._held:
                self._pwm.check_mux(line)  # a line held as GPIO is muxed to GPIO: refused
            held = self._held.pop(line, None)
            if held is not None:
                held.request.release()  # hand the pin back to its PWM function
            self._pwm.set(line, frequency_hz, duty_pct)
            self._pwm_lines[line] = (float(frequency_hz), float(duty_pct))

    def lines(self) -> list[LineState]:
        with self._lock:
            states = []
            for line, held in sorted(self._held.items()):
                try:
                    value = self.read_line(line)
                except SensorError:
                    value = held.value
                states.append(LineState(line=line, config=held.config, value=value))
            for line, (frequency_hz, duty_pct) in sorted(self._pwm_lines.items()):
                states.append(
                    LineState(
                        line=line,
                        config=LineConfig(direction=Direction.OUT),
                        value=int(duty_pct > 0),
                        pwm_frequency_hz=frequency_hz,
                        pwm_duty_pct=duty_pct,
                    )
                )
            return sorted(states, key=lambda s: s.line)

    def drain_edge_events(self) -> list[EdgeEvent]:
        events: list[EdgeEvent] = []
        with self._lock:
            for line, held in self._held.items():
                if held.config.direction is Direction.OUT or held.config.edge is Edge.NONE:
                    continue
                try:
                    while held.request.wait_edge_events(0):
                        events.extend(self._convert(e) for e in held.request.read_edge_events())
                except OSError as exc:
                    log.warning("cannot read edge events of GPIO line %d: %s", line, exc)
        return sorted(events, key=lambda e: e.at)

    def close(self) -> None:
        """Release every line and the chip; PWM channels keep running. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for held in self._held.values():
                try:
                    held.request.release()
                except OSError as exc:
                    log.warning("releasing a GPIO line failed: %s", exc)
            self._held.clear()
            if self._chip is not None:
                self._chip.close()
                self._chip = None

    def _convert(self, event: GpiodEdgeEvent) -> EdgeEvent:
        rising = event.event_type.name == "RISING_EDGE"
        at = event.timestamp_ns / 1e9 if event.timestamp_ns else self._clock.now()
        return EdgeEvent(
            line=event.line_offset, kind=Edge.RISING if rising else Edge.FALLING, at=at
        )

    def _get(self, line: int) -> _Held:
        self._check_open()
        held = self._held.get(line)
        if held is None:
            raise NotFoundError(f"GPIO line {line} is not configured", line=line)
        return held

    def _check_open(self) -> None:
        if self._closed:
            raise HardwareError(f"GPIO chip {self.chip_path} is closed")

    def _chip_handle(self) -> ChipLike:
        self._check_open()
        if self._chip is None:
            self.chip_path, self._chip = open_header_chip(
                self._chip_setting, self._model, open_chip=self._open_chip, dev_dir=self._dev_dir
            )
        return self._chip


def _check_config(line: int, config: LineConfig) -> None:
    if config.direction is Direction.OUT and config.edge is not Edge.NONE:
        raise InvalidRequestError(f"GPIO line {line}: edge detection needs an input", line=line)
    if not 0 <= config.debounce_ms <= MAX_DEBOUNCE_MS:
        raise InvalidRequestError(f"GPIO line {line}: debounce must be 0-{MAX_DEBOUNCE_MS} ms")


def _translate(
    exc: OSError, line: int, action: str
) -> HardwareError | ConflictError | InvalidRequestError:
    if exc.errno == errno.EBUSY:
        return ConflictError(f"GPIO line {line} is in use by another program", line=line)
    if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
        return InvalidRequestError(f"GPIO line {line} cannot {action} that way: {exc}", line=line)
    return HardwareError(f"cannot {action} GPIO line {line}: {exc}", line=line)
