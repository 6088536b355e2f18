"""Tamper inputs: case switch and PIR motion on GPIO lines, supply voltage from the firmware.

Both GPIO inputs are pulled up; which level means "case open" / "motion" is the board's
``TamperWiring`` (NC/NO switch, active-high/low PIR), decoded as the simulator decodes it.
Edges between reads are counted so short events are not missed.
"""

from __future__ import annotations

from collections.abc import Mapping

from wrale.metal.hw.base import (
    Direction,
    Edge,
    LineConfig,
    Pull,
    TamperInput,
    TamperReading,
    TamperWiring,
)
from wrale.metal.hw.linux.edges import EdgeTap
from wrale.metal.hw.linux.firmware import FirmwareFlags
from wrale.metal.hw.linux.sysfs import RESCAN_INTERVAL_S, HealthLog
from wrale.shared.clock import Clock
from wrale.shared.errors import WraleError

# Case switch to ground (NC or NO): the pull-up gives the open contact its level.
CASE_LINE = LineConfig(direction=Direction.IN, pull=Pull.UP, edge=Edge.BOTH, debounce_ms=50.0)
# PIR output: push-pull active high (a cut wire then reads motion) or open-drain active low.
MOTION_LINE = LineConfig(direction=Direction.IN, pull=Pull.UP, edge=Edge.BOTH, debounce_ms=50.0)


class LinuxTamper:
    """Reads the tamper inputs; ``transitions`` counts edges (or level changes) per read."""

    def __init__(
        self,
        gpio: EdgeTap,
        flags: FirmwareFlags,
        clock: Clock,
        health: HealthLog,
        *,
        lines: Mapping[TamperInput, tuple[int, LineConfig]],
        wiring: TamperWiring | None = None,
    ) -> None:
        self._gpio = gpio
        self.wiring = wiring or TamperWiring()
        self._flags = flags
        self._clock = clock
        self._health = health
        self._lines = dict(lines)
        self._configured: set[TamperInput] = set()
        self._retry_at = float("-inf")
        self._last: dict[TamperInput, bool] = {}
        gpio.watch(line for line, _ in self._lines.values())
        self._configure_pending()

    def read_tamper(self) -> TamperReading:
        self._configure_pending()
        edges = self._gpio.take_edge_counts()
        under_voltage = self._flags.under_voltage_now()
        values = {
            TamperInput.CASE: self._level(TamperInput.CASE),
            TamperInput.MOTION: self._level(TamperInput.MOTION),
            TamperInput.VOLTAGE: None if under_voltage is None else not under_voltage,
        }
        transitions: dict[TamperInput, int] = {}
        for name, value in values.items():
            if value is None and name not in self._lines:
                continue  # the board has no such sensor
            count = edges.get(self._lines[name][0], 0) if name in self._lines else 0
            last = self._last.get(name)
            changed = value is not None and last is not None and value != last
            transitions[name] = max(count, int(changed))
            if value is not None:
                self._last[name] = value
        return TamperReading(
            case_open=values[TamperInput.CASE],
            motion_detected=values[TamperInput.MOTION],
            voltage_normal=values[TamperInput.VOLTAGE],
            transitions=transitions,
        )

    def _level(self, name: TamperInput) -> bool | None:
        if name not in self._configured:
            return None
        line = self._lines[name][0]
        try:
            value = self._gpio.read_line(line)
        except WraleError as exc:
            self._health.failed(_source(name, line), str(exc))
            return None
        self._health.ok(_source(name, line))
        if name is TamperInput.CASE:
            return self.wiring.case_open(value)
        return self.wiring.motion(value)

    def _configure_pending(self) -> None:
        pending = [name for name in self._lines if name not in self._configured]
        if not pending or self._clock.monotonic() < self._retry_at:
            return
        for name in pending:
            line, config = self._lines[name]
            try:
                self._gpio.configure_line(line, config)
            except WraleError as exc:
                self._health.failed(_source(name, line), f"cannot configure: {exc}")
                self._retry_at = self._clock.monotonic() + RESCAN_INTERVAL_S
                continue
            self._configured.add(name)


def _source(name: TamperInput, line: int) -> str:
    return f"tamper {name.value} input (GPIO line {line})"
