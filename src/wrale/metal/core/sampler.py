"""``Sampler``: the board's sampling step and safety loops, and the latest ``Snapshot``.

Each step reads every source once (``readings``), runs the pure control laws, drives the
fan, throttle and power selection (``actuators``), stores the events it raises and then
publishes them. Nothing else reads the hardware; consumers use ``snapshot``. The
operations on the board are ``MetalCore``'s (``engine``), built on this.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, TypeVar

from wrale.metal.core import alarms, control
from wrale.metal.core.actuators import Actuators
from wrale.metal.core.control import BatteryAction, FanOverride, ThermalDecision
from wrale.metal.core.events import Event, EventType, Severity
from wrale.metal.core.readings import Readings, read_all
from wrale.metal.core.security import SecurityState, local_time_of_day, step_security
from wrale.metal.core.snapshot import Snapshot
from wrale.metal.core.store import DeviceStore
from wrale.metal.core.supply import SupplyWindow
from wrale.metal.hw.base import Board, Direction, Edge, LineConfig, PowerSource, Pull
from wrale.shared.clock import Clock
from wrale.shared.config import GpioLineSettings
from wrale.shared.errors import UnavailableError
from wrale.shared.policy import PowerPolicy, SecurityLevel, SecurityPolicy, ThermalPolicy

log = logging.getLogger("wrale.metal.core.engine")  # the engine's lines, under its name
T = TypeVar("T")


class Sampler:
    """One board's sampler: the state of its safety loops and the latest snapshot (the
    base of ``MetalCore``)."""

    def __init__(
        self,
        board: Board,
        *,
        store: DeviceStore,
        clock: Clock,
        thermal: ThermalPolicy | None = None,
        power: PowerPolicy | None = None,
        security: SecurityPolicy | None = None,
        gpio_lines: Mapping[str, GpioLineSettings] | None = None,
        sample_interval_s: float = 1.0,
        device_name: str = "board",
    ) -> None:
        self.board = board
        self.store = store
        self.clock = clock
        self.thermal_policy = thermal or ThermalPolicy()
        self.power_policy = power or PowerPolicy()
        self.security_policy = security or SecurityPolicy()
        self.gpio_lines = dict(gpio_lines or {})
        self.sample_interval_s = sample_interval_s
        self.device_name = device_name
        self.snapshot: Snapshot | None = None
        self.sampled_mono: float | None = None  # clock.monotonic() of the last sample
        self._seq = 0
        self._decision: ThermalDecision = control.INITIAL_THERMAL
        self._override: FanOverride | None = None
        self._freq_cap: float | None = None  # an operator's cap (can only lower frequency)
        self._battery = BatteryAction.NONE
        self._supply = SupplyWindow(self.power_policy)
        self._security = SecurityState(
            armed=self.security_policy.armed, level=self.security_policy.level
        )
        self._prev: Readings | None = None
        self._fan = alarms.FanHealth()
        self._actuators = Actuators(board, clock)
        self._last_tamper_at: float | None = None
        self._subscribers: set[asyncio.Queue[Event]] = set()
        self._tick_lock = asyncio.Lock()
        self._new_snapshot = asyncio.Condition()
        self._started = False
        self._line_names = {cfg.line: name for name, cfg in self.gpio_lines.items()}

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> Snapshot:
        """Restore persisted security state, configure GPIO and take the first sample."""
        saved = await self._io(self.store.get_state, "security")
        if isinstance(saved, dict):
            self._security = replace(
                self._security,
                armed=bool(saved.get("armed", self._security.armed)),
                level=SecurityLevel(saved.get("level", self._security.level.value)),
                lockdown=bool(saved.get("lockdown", False)),
            )
        self._last_tamper_at = await self._io(self.store.get_state, "last_tamper_at")
        cap = await self._io(self.store.get_state, "freq_cap_pct")
        self._freq_cap = float(cap) if isinstance(cap, int | float) else None
        for cfg in self.gpio_lines.values():
            await self._hw(
                self.board.gpio.configure_line,
                cfg.line,
                LineConfig(
                    Direction(cfg.direction), Pull(cfg.pull), Edge(cfg.edge), cfg.debounce_ms
                ),
            )
        self._started = True
        await self._emit(
            [
                self._event(
                    EventType.METALD_STARTED,
                    Severity.INFO,
                    f"metald started on {self.board.model} ({self.board.backend} backend)",
                    lockdown=self._security.lockdown,
                )
            ]
        )
        return await self.tick()

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Sample at the interval until ``stop`` is set; a failing step is logged, not fatal."""
        if not self._started:
            await self.start()
        stop = stop or asyncio.Event()
        next_at = self.clock.monotonic()
        while not stop.is_set():
            next_at += self.sample_interval_s
            delay = next_at - self.clock.monotonic()
            if delay < -self.sample_interval_s:  # fell behind: skip, never burst
                next_at = self.clock.monotonic()
                delay = 0.0
            await self.clock.sleep(max(delay, 0.0))
            if stop.is_set():
                break
            try:
                await self.tick()
            except Exception:
                log.exception("sampling step failed; the next one will retry")

    # ------------------------------------------------------------------ the loop

    async def tick(self) -> Snapshot:
        """One sampling step: read, decide, act, record. Returns the new snapshot."""
        async with self._tick_lock:
            now_mono = self.clock.monotonic()
            now = self.clock.now()
            readings = await self._hw(
                read_all, self.board, self.gpio_lines, self._prev, self._decision.fan_pct
            )
            events: list[Event] = []

            # Power first: a low battery sheds load through the thermal loop's cap.
            battery = control.battery_action(readings.power, self.power_policy, self._battery)
            decision = control.decide_thermal(
                readings.thermal,
                self._decision,
                self.thermal_policy,
                self._override,
                now_mono,
                shed_load=battery is BatteryAction.SHED_LOAD,
            )
            if battery is BatteryAction.SHUTDOWN:
                shed = min(decision.max_freq_pct, control.LOAD_SHED_CAP_PCT)
                decision = replace(decision, max_freq_pct=shed, safety_freq_pct=shed)
            cap = self._freq_cap
            if cap is not None and cap < decision.max_freq_pct:
                decision = replace(
                    decision,
                    max_freq_pct=cap,
                    reasons=(*decision.reasons, f"operator cap: frequency at most {cap:g} %"),
                )
            decision = control.apply_freq_floor(decision, readings.throttle.min_freq_pct)
            source = control.choose_source(readings.power, self.power_policy)
            hour, minute = local_time_of_day(now)  # board local time, for the quiet hours
            sec = step_security(
                self._security,
                readings.tamper,
                now_mono,
                self.security_policy,
                hour=hour,
                minute=minute,
            )

            prev_fan = self._decision.fan_pct if self._prev else None
            await self._hw(
                self._actuators.apply, readings, decision, source, battery, prev_fan, self._battery
            )
            events += self._actuators.take_events()

            prev = self._prev
            events += alarms.thermal_events(self._decision, decision, readings.thermal, now)
            events += self._fan.observe(
                readings.fan, self.thermal_policy.fan_stall_rpm, now_mono, now
            )
            events += alarms.power_events(
                prev.power if prev else None, readings.power, self._battery, battery, now
            )
            p = readings.power
            kinds = self._supply.add(
                now_mono, p.voltage_v, p.current_a, p.available(PowerSource.MAIN)
            )
            events += alarms.supply_events(kinds, p, self._supply.stats(), now)
            events += alarms.security_events(
                self._security, sec.state, sec.changes, sec.flapping, now, sec.noted
            )
            if any(c.tampered for c in sec.changes):
                self._last_tamper_at = now
            events += alarms.sensor_events(
                prev.available if prev else None, readings.available, now
            )
            events += alarms.gpio_events(readings.edges, self._line_names)

            override = self._override
            if override is not None and not decision.override_active:
                events.append(
                    self._event(
                        EventType.FAN_OVERRIDE_ENDED,
                        Severity.INFO,
                        "fan override ended; back on the curve",
                    )
                )
                override = self._override = None
            self._decision = decision
            self._battery = battery
            if sec.state != self._security:
                lockdown_changed = sec.state.lockdown != self._security.lockdown
                self._security = sec.state
                if lockdown_changed:
                    await self._save_security()
            self._seq += 1
            snap = Snapshot(
                seq=self._seq,
                at=now,
                thermal=readings.thermal,
                fan=readings.fan,
                throttle=readings.throttle,
                power=readings.power,
                tamper=readings.tamper,
                gpio=readings.gpio,
                decision=decision,
                profile=self.thermal_policy.profile,
                override=override,
                override_remaining_s=None
                if override is None
                else round(max(0.0, override.until - now_mono), 1),
                battery_action=battery,
                supply=self._supply.stats(),
                security=self._security,
                available=readings.available,
                fan_failed=self._fan.failed,
                last_tamper_at=self._last_tamper_at,
                freq_cap_pct=self._freq_cap,
                storage=readings.storage,
            )
            self.snapshot = snap
            self.sampled_mono = now_mono
            self._prev = readings
            await self._emit(events)
        async with self._new_snapshot:
            self._new_snapshot.notify_all()
        return snap

    # ------------------------------------------------------------------ events

    def _event(self, type_: EventType, severity: Severity, message: str, **data: Any) -> Event:
        return alarms.ev(type_, severity, self.clock.now(), message, **data)

    async def _emit(self, events: list[Event]) -> None:
        """Persist first (a power cut loses nothing), then tell subscribers."""
        if not events:
            return
        stored = await self._io(self.store.append_events, events)
        if any(e.type is EventType.TAMPER for e in stored):
            await self._io(self.store.set_state, "last_tamper_at", self._last_tamper_at)
        for e in stored:
            level = logging.WARNING if e.severity is not Severity.INFO else logging.INFO
            log.log(level, "%s %s", e.type.value, e.message)
            for q in list(self._subscribers):
                if q.full():
                    q.get_nowait()  # a slow reader loses its oldest, never blocks the loop
                q.put_nowait(e)

    async def _save_security(self) -> None:
        s = self._security
        await self._io(
            self.store.set_state,
            "security",
            {"armed": s.armed, "level": s.level.value, "lockdown": s.lockdown},
        )

    # ------------------------------------------------------------------ helpers

    async def _hw(self, fn: Callable[..., T], *args: Any) -> T:
        if self.board.blocking_io:
            return await asyncio.to_thread(fn, *args)
        return fn(*args)

    @staticmethod
    async def _io(fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    def current(self) -> Snapshot:
        if self.snapshot is None:
            raise UnavailableError("metald has not taken its first sample yet")
        return self.snapshot

    async def wait_snapshot(self, after_seq: int) -> Snapshot:
        """Wait for a snapshot newer than ``after_seq`` (used by diagnostics)."""
        async with self._new_snapshot:
            await self._new_snapshot.wait_for(
                lambda: self.snapshot is not None and self.snapshot.seq > after_seq
            )
        return self.current()
