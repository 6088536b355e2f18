"""``Actuators``: the board's fan, frequency cap, power source and shutdown request driven
to a step's decision. An actuator that fails is logged and raised as an event once, not
every step, and so is its recovery. Decides nothing; the sampler hands it the decision.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from wrale.metal.core import alarms
from wrale.metal.core.control import BatteryAction, ThermalDecision
from wrale.metal.core.events import Event, EventType, Severity
from wrale.metal.core.readings import Readings
from wrale.metal.hw.base import Board, PowerSource
from wrale.shared.clock import Clock
from wrale.shared.errors import HardwareError

log = logging.getLogger("wrale.metal.core.engine")  # the engine's lines, under its name


class Actuators:
    """Drives ``board``'s actuators; ``take_events`` hands over the failure and recovery
    events raised since it was last called."""

    def __init__(self, board: Board, clock: Clock) -> None:
        self.board = board
        self.clock = clock
        self.failing: set[str] = set()  # actuators whose last drive failed
        self._pending: list[Event] = []  # raised while driving, stored with the step

    def apply(
        self,
        r: Readings,
        d: ThermalDecision,
        source: PowerSource,
        battery: BatteryAction,
        prev_fan_pct: float | None,
        prev_battery: BatteryAction,
    ) -> None:
        """Drive what differs from the readings ``r``: the fan to ``d`` (also when the
        decision changed from ``prev_fan_pct``), the frequency cap, the power source, and
        a shutdown request when ``battery`` newly says so."""
        b = self.board
        if prev_fan_pct != d.fan_pct or abs(r.fan.duty_pct - d.fan_pct) > 1.0:
            self.drive("fan", b.fan.set_fan_duty, d.fan_pct)
        if abs(r.throttle.max_freq_pct - d.max_freq_pct) > 0.05:
            self.drive("throttle", b.throttle.set_max_freq, d.max_freq_pct)
        if source is not r.power.source:
            self.drive("power source", b.power.select_source, source)
        if battery is BatteryAction.SHUTDOWN and prev_battery is not BatteryAction.SHUTDOWN:
            pct = r.power.battery_pct
            self.drive(
                "shutdown",
                b.power.request_shutdown,
                f"battery critical at {pct if pct is None else round(pct, 1)} %",
            )

    def drive(self, name: str, fn: Callable[[Any], None], value: Any) -> None:
        """Drive one actuator; a failure is logged and raised as an event once, not every
        step, and so is the recovery."""
        try:
            fn(value)
        except (HardwareError, OSError) as exc:
            if name not in self.failing:
                self.failing.add(name)
                log.warning("cannot drive the %s to %s: %s", name, value, exc)
                self._pending.append(
                    self._event(
                        EventType.ACTUATOR_FAILURE,
                        Severity.CRITICAL,
                        f"cannot drive the {name}: {exc}",
                        actuator=name,
                    )
                )
            return
        if name in self.failing:
            self.failing.discard(name)
            self._pending.append(
                self._event(
                    EventType.ACTUATOR_RECOVERED,
                    Severity.INFO,
                    f"the {name} answers again",
                    actuator=name,
                )
            )

    def take_events(self) -> list[Event]:
        events, self._pending = self._pending, []
        return events

    def _event(self, type_: EventType, severity: Severity, message: str, **data: Any) -> Event:
        return alarms.ev(type_, severity, self.clock.now(), message, **data)
