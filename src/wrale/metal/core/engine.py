"""MetalCore: metald's engine for one board. The operations on the board (fan override,
policies, frequency cap, arming, GPIO, the simulator's controls) and its event feed, on
top of ``Sampler`` (``sampler``): the sampling step and safety loops. An operation
changes the loops' state, then most take a step so their answer shows the effect; the
hardware is reached only through the sampler's helpers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

from wrale.metal.core import control
from wrale.metal.core.control import FanOverride
from wrale.metal.core.events import Event, EventType, Severity
from wrale.metal.core.sampler import Sampler
from wrale.metal.core.snapshot import Snapshot
from wrale.metal.hw.base import LineState, SimControls
from wrale.shared.config import GpioLineSettings
from wrale.shared.errors import (
    AuthError,
    InvalidRequestError,
    LockdownError,
    NotFoundError,
    UnsupportedError,
)
from wrale.shared.policy import PowerPolicy, SecurityLevel, SecurityPolicy, ThermalPolicy

SUBSCRIBER_QUEUE = 1000


class MetalCore(Sampler):
    """The running heart of metald for one board."""

    # ------------------------------------------------------------------ operations

    def _check_lockdown(self, what: str) -> None:
        if self._security.lockdown:
            raise LockdownError(f"refused: tamper lockdown is on; disarm before {what}")

    async def set_fan_override(self, percent: float, duration_s: float) -> Snapshot:
        """Run the fan at ``percent`` for ``duration_s``; never below the safety floor."""
        self._check_lockdown("changing the fan")
        control.check_fan_override(
            percent, duration_s, self.current().decision, self.thermal_policy
        )
        self._override = FanOverride(float(percent), self.clock.monotonic() + duration_s)
        await self._emit(
            [
                self._event(
                    EventType.FAN_OVERRIDE,
                    Severity.INFO,
                    f"fan override {percent:.0f} % for {duration_s:g} s",
                    percent=percent,
                    duration_s=duration_s,
                )
            ]
        )
        return await self.tick()

    async def clear_fan_override(self) -> Snapshot:
        self._override = FanOverride(0.0, float("-inf")) if self._override else None
        return await self.tick()

    def update_policies(
        self,
        *,
        thermal: ThermalPolicy | None = None,
        power: PowerPolicy | None = None,
        security: SecurityPolicy | None = None,
    ) -> None:
        """Swap policy documents; the next step uses them. ``UnsafeOperationError`` (and
        nothing changed) when one would weaken the safety rules."""
        if thermal is not None:
            control.check_thermal_policy(thermal)
        if power is not None:
            control.check_power_policy(power)
        if thermal is not None:
            self.thermal_policy = thermal
        if power is not None:
            self.power_policy = power
            self._supply.policy = power
        if security is not None:
            self.security_policy = security

    async def apply_policies(
        self,
        *,
        thermal: ThermalPolicy | None = None,
        power: PowerPolicy | None = None,
        security: SecurityPolicy | None = None,
    ) -> Snapshot:
        """``update_policies``, recorded as an event, then a step under the new policies."""
        self.update_policies(thermal=thermal, power=power, security=security)
        kinds = [
            k
            for k, doc in (("thermal", thermal), ("power", power), ("security", security))
            if doc is not None
        ]
        if kinds:
            await self._emit(
                [
                    self._event(
                        EventType.POLICY_CHANGED,
                        Severity.INFO,
                        f"{', '.join(kinds)} policy updated",
                        kinds=kinds,
                    )
                ]
            )
        return await self.tick()

    async def set_freq_cap(self, max_freq_pct: float | None) -> Snapshot:
        """Cap the CPU frequency at ``max_freq_pct`` (40-100 %), ``None`` to lift the cap.

        The cap only ever lowers the frequency: the thermal loop's own throttling still
        applies below it, so no cap can lift a safety throttle. Kept across restarts.
        """
        control.check_freq_cap(max_freq_pct)
        self._freq_cap = None if max_freq_pct is None else float(max_freq_pct)
        await self._io(self.store.set_state, "freq_cap_pct", self._freq_cap)
        floor = self.snapshot.throttle.min_freq_pct if self.snapshot else 0.0
        message = (
            "operator frequency cap lifted"
            if max_freq_pct is None
            else f"operator frequency cap set to {max_freq_pct:g} %"
            + (
                f" (below the board's floor of {floor:g} %: applied as {floor:g} %)"
                if max_freq_pct < floor
                else ""
            )
        )
        await self._emit(
            [self._event(EventType.FREQ_CAP, Severity.INFO, message, max_freq_pct=self._freq_cap)]
        )
        return await self.tick()

    async def arm(self, level: SecurityLevel | None = None) -> Snapshot:
        self._security = replace(self._security, armed=True, level=level or self._security.level)
        await self._save_security()
        await self._emit(
            [
                self._event(
                    EventType.ARMED,
                    Severity.INFO,
                    f"tamper detection armed at {self._security.level.value}",
                    level=self._security.level.value,
                )
            ]
        )
        return await self.tick()

    async def disarm(self, *, authorised: bool) -> Snapshot:
        """Disarm and lift a lockdown; the caller must have checked the operator's right."""
        if not authorised:
            raise AuthError("disarming needs an authorised operator")
        was_locked = self._security.lockdown
        self._security = replace(self._security, armed=False, lockdown=False)
        await self._save_security()
        await self._emit(
            [
                self._event(
                    EventType.DISARMED,
                    Severity.WARNING,
                    "tamper detection disarmed" + (", lockdown lifted" if was_locked else ""),
                )
            ]
        )
        return await self.tick()

    def _line(self, name: str) -> GpioLineSettings:
        cfg = self.gpio_lines.get(name)
        if cfg is None and name.isdigit():
            cfg = next((c for c in self.gpio_lines.values() if c.line == int(name)), None)
        if cfg is None:
            raise NotFoundError(f"no GPIO line named {name!r}", line=name)
        return cfg

    async def gpio_write(self, name: str, value: int) -> LineState:
        self._check_lockdown("driving GPIO")
        cfg = self._line(name)
        if value not in (0, 1):
            raise InvalidRequestError("value must be 0 or 1", field="value")
        await self._hw(self.board.gpio.write_line, cfg.line, value)
        if self._started:
            await self.tick()  # the state the API shows includes the new level at once
        return await self._hw(self._line_state, cfg.line)

    async def gpio_pwm(self, name: str, frequency_hz: float, duty_pct: float) -> LineState:
        self._check_lockdown("driving GPIO")
        cfg = self._line(name)
        await self._hw(self.board.gpio.set_pwm, cfg.line, frequency_hz, duty_pct)
        if self._started:
            await self.tick()
        return await self._hw(self._line_state, cfg.line)

    async def gpio_read(self, name: str) -> LineState:
        return await self._hw(self._line_state, self._line(name).line)

    def _line_state(self, line: int) -> LineState:
        for st in self.board.gpio.lines():
            if st.line == line:
                return st
        raise NotFoundError(f"GPIO line {line} is not configured", line=line)

    @property
    def sim(self) -> SimControls:
        if self.board.sim is None:
            raise UnsupportedError("simulation controls exist only with the sim backend")
        return self.board.sim

    async def sim_call(self, fn: Callable[[], Any]) -> Snapshot:
        """Run a simulator control, then sample so the answer shows its effect."""
        fn()
        return await self.tick()

    # ------------------------------------------------------------------ events out

    async def events(
        self,
        *,
        since_id: int | None = None,
        limit: int = 100,
        types: list[str] | None = None,
        min_severity: Severity | None = None,
    ) -> list[Event]:
        return await asyncio.to_thread(
            self.store.events,
            since_id=since_id,
            limit=limit,
            types=types,
            min_severity=min_severity,
        )

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[Event]]:
        """A queue that receives every event from now on, for as long as the block runs."""
        q: asyncio.Queue[Event] = asyncio.Queue(SUBSCRIBER_QUEUE)
        self._subscribers.add(q)
        try:
            yield q
        finally:
            self._subscribers.discard(q)

    async def record(self, events: list[Event]) -> None:
        """Store and publish events raised elsewhere on the board (e.g. diagnostics)."""
        await self._emit(events)
