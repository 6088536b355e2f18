"""Simulated GPIO header of a Raspberry Pi (BCM lines 0-27) with loopback wiring.

Inputs follow a wired output, else an external drive (``drive_input``), else their pull.
Edges are debounced: a level must hold for ``debounce_ms`` before its edge is reported.
Hardware PWM only on the pins the board's overlays muxed (default ``dtoverlay=pwm-2chan``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping

import msgspec

from wrale.metal.hw.base import Direction, Edge, EdgeEvent, LineConfig, LineState, Pull
from wrale.metal.hw.pwm_pins import PI5_PWM_PINS, not_muxed
from wrale.metal.hw.sim.checks import check_number
from wrale.metal.hw.sim.runtime import Runtime
from wrale.shared.clock import Clock
from wrale.shared.config import GpioLineSettings
from wrale.shared.errors import (
    ConfigError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    UnsupportedError,
)

LINE_COUNT = 28  # BCM 0-27 on the 40-pin header
PWM_LINES = frozenset(PI5_PWM_PINS)  # RP1 PWM0 on the header: 12, 13, 18, 19
PWM_2CHAN_MUXED = (18, 19)  # what a Pi 5 booted with ``dtoverlay=pwm-2chan`` has
PWM_HZ = (1.0, 50e6)
MAX_QUEUED_EVENTS = 4096


class _Line(msgspec.Struct):
    config: LineConfig
    value: int = 0  # output: driven level; input: level at the pin
    level: int = 0  # input: debounced level, the one edges are reported against
    external: int | None = None
    pending: tuple[float, float] | None = None  # (monotonic, wall) of an unconfirmed change
    pwm: tuple[float, float] | None = None


class SimGpio:
    """The header; ``pwm_muxed`` are the PWM pins the boot's overlays gave to PWM0."""

    def __init__(
        self,
        rt: Runtime,
        clock: Clock,
        settings: Mapping[str, GpioLineSettings] | None = None,
        *,
        pwm_muxed: Iterable[int] = PWM_2CHAN_MUXED,
    ) -> None:
        self._rt = rt
        self._pwm_muxed = frozenset(pwm_muxed) & PWM_LINES
        self._clock = clock
        self._lines: dict[int, _Line] = {}
        self._wires: dict[int, set[int]] = {}
        self._events: deque[EdgeEvent] = deque(maxlen=MAX_QUEUED_EVENTS)
        self._configure_from(settings or {})

    # ------------------------------------------------------------------ Gpio protocol

    def configure_line(self, line: int, config: LineConfig) -> None:
        config = _checked(line, config)
        with self._rt.reading():
            self._configure(line, config)

    def read_line(self, line: int) -> int:
        with self._rt.reading():
            return self._get(line).value

    def write_line(self, line: int, value: int) -> None:
        if not isinstance(value, int) or value not in (0, 1):
            raise InvalidRequestError(f"GPIO value must be 0 or 1, got {value!r}", line=line)
        with self._rt.reading():
            state = self._output(line)
            state.pwm = None
            self._drive(line, state, int(value))

    def set_pwm(self, line: int, frequency_hz: float, duty_pct: float) -> None:
        with self._rt.reading():
            self._get(line)
            if line not in PWM_LINES:
                lines = ", ".join(str(n) for n in sorted(PWM_LINES))
                raise UnsupportedError(f"GPIO {line} has no hardware PWM (only {lines})", line=line)
            if line not in self._pwm_muxed:
                pin = PI5_PWM_PINS[line]
                message = not_muxed(pin, "the simulated board was booted without it")
                raise UnsupportedError(message, line=line, config_txt=pin.overlay)
            state = self._output(line)
            freq = check_number("PWM frequency_hz", frequency_hz, *PWM_HZ, line=line)
            duty = check_number("PWM duty_pct", duty_pct, 0.0, 100.0, line=line)
            state.pwm = (freq, duty)
            self._drive(line, state, 1 if duty >= 50.0 else 0)  # its dominant level

    def lines(self) -> list[LineState]:
        with self._rt.reading():
            self._settle()
            return [
                LineState(
                    line=n,
                    config=s.config,
                    value=s.value,
                    pwm_frequency_hz=s.pwm[0] if s.pwm else None,
                    pwm_duty_pct=s.pwm[1] if s.pwm else None,
                )
                for n, s in sorted(self._lines.items())
            ]

    def drain_edge_events(self) -> list[EdgeEvent]:
        with self._rt.reading():
            self._settle()
            events = sorted(self._events, key=lambda e: e.at)
            self._events.clear()
            return events

    # ------------------------------------------------------------------ simulation

    def drive_input(self, line: int, value: int | None) -> None:
        """An external signal on an input line (a button, a sensor); ``None`` releases it."""
        if value is not None and (not isinstance(value, int) or value not in (0, 1)):
            raise InvalidRequestError(f"GPIO value must be 0, 1 or None, got {value!r}")
        with self._rt.reading():
            state = self._get(line)
            if state.config.direction is not Direction.IN:
                raise ConflictError(f"GPIO {line} is an output; it cannot be driven from outside")
            state.external = None if value is None else int(value)
            self._update_input(line, state)

    # ------------------------------------------------------------------ internals

    def _configure(self, line: int, config: LineConfig) -> None:
        self._settle()
        old = self._lines.get(line)
        state = _Line(config, external=old.external if old is not None else None)
        self._lines[line] = state
        if config.direction is Direction.IN:
            state.value = state.level = self._input_level(line)
        self._propagate(line)

    def _get(self, line: int) -> _Line:
        state = self._lines.get(line)
        if state is None:
            raise NotFoundError(f"GPIO {line} is not configured", line=line)
        return state

    def _output(self, line: int) -> _Line:
        state = self._get(line)
        if state.config.direction is not Direction.OUT:
            raise ConflictError(
                f"GPIO {line} is an input; configure it as an output first", line=line
            )
        return state

    def _drive(self, line: int, state: _Line, value: int) -> None:
        self._settle()
        if state.value != value:
            state.value = value
            self._propagate(line)

    def _propagate(self, line: int) -> None:
        """Let every input wired to ``line`` follow what is on the wire now."""
        for peer in self._wires.get(line, ()):
            peer_state = self._lines.get(peer)
            if peer_state is not None and peer_state.config.direction is Direction.IN:
                self._update_input(peer, peer_state)

    def _input_level(self, line: int) -> int:
        for peer in self._wires.get(line, ()):
            peer_state = self._lines.get(peer)
            if peer_state is not None and peer_state.config.direction is Direction.OUT:
                return peer_state.value
        state = self._lines[line]
        if state.external is not None:
            return state.external
        return 1 if state.config.pull is Pull.UP else 0  # a floating line reads low

    def _update_input(self, line: int, state: _Line) -> None:
        self._settle()
        level = self._input_level(line)
        if level == state.value:
            return
        state.value = level
        if level == state.level:
            state.pending = None  # a glitch shorter than the debounce time
        else:
            state.pending = (self._clock.monotonic(), self._clock.now())
        self._settle()

    def _settle(self) -> None:
        """Confirm the pending changes that have held for their debounce time."""
        now = self._clock.monotonic()
        for line, state in self._lines.items():
            if state.pending is None:
                continue
            since, wall = state.pending
            if now - since < state.config.debounce_ms / 1000.0:
                continue
            state.pending = None
            state.level = state.value
            kind = Edge.RISING if state.value else Edge.FALLING
            if state.config.edge in (kind, Edge.BOTH):
                self._events.append(EdgeEvent(line=line, kind=kind, at=wall))

    def _configure_from(self, settings: Mapping[str, GpioLineSettings]) -> None:
        offsets = {name: s.line for name, s in settings.items()}
        for name, s in settings.items():
            if not 0 <= s.line < LINE_COUNT:
                raise ConfigError(f"gpio line '{name}': BCM line {s.line} is not 0-27")
            if list(offsets.values()).count(s.line) > 1:
                raise ConfigError(f"gpio line '{name}': line {s.line} is used twice")
            if s.loopback_to is not None:
                if s.loopback_to not in offsets or s.loopback_to == name:
                    raise ConfigError(
                        f"gpio line '{name}': loopback_to names no other line ({s.loopback_to!r})"
                    )
                self._wire(s.line, offsets[s.loopback_to])
        for name, s in settings.items():
            config = LineConfig(Direction(s.direction), Pull(s.pull), Edge(s.edge), s.debounce_ms)
            try:
                self._configure(s.line, _checked(s.line, config))
            except InvalidRequestError as exc:
                raise ConfigError(f"gpio line '{name}': {exc.message}") from None

    def _wire(self, a: int, b: int) -> None:
        self._wires.setdefault(a, set()).add(b)
        self._wires.setdefault(b, set()).add(a)


def _checked(line: int, config: LineConfig) -> LineConfig:
    if isinstance(line, bool) or not isinstance(line, int) or not 0 <= line < LINE_COUNT:
        raise NotFoundError(f"GPIO {line!r} does not exist (BCM lines 0-27)", line=line)
    try:
        config = LineConfig(
            Direction(config.direction),
            Pull(config.pull),
            Edge(config.edge),
            check_number("debounce_ms", config.debounce_ms, 0.0, 10_000.0, line=line),
        )
    except ValueError as exc:
        raise InvalidRequestError(f"GPIO {line}: {exc}", line=line) from None
    if config.direction is Direction.OUT and config.edge is not Edge.NONE:
        raise InvalidRequestError(f"GPIO {line}: edge detection needs an input line", line=line)
    return config
