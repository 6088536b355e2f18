"""MetalCore: the board's sampler and safety loops, and the operations on the board.

One sampler per board: each step reads every source once, runs the pure control laws,
drives the fan, throttle and power selection, stores the events it raises and then
publishes them. Nothing else reads the hardware; consumers use ``snapshot``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from wrale.metal.core import alarms, control
from wrale.metal.core.control import BatteryAction, FanOverride, ThermalDecision
from wrale.metal.core.events import Event, EventType, Severity
from wrale.metal.core.security import SecurityState, local_time_of_day, step_security
from wrale.metal.core.snapshot import Snapshot
from wrale.metal.core.store import DeviceStore
from wrale.metal.core.supply import SupplyWindow
from wrale.metal.hw.base import (
    Board,
    Direction,
    Edge,
    EdgeEvent,
    FanReading,
    LineConfig,
    LineState,
    PowerReading,
    PowerSource,
    Pull,
    SimControls,
    TamperReading,
    ThermalReading,
    ThrottleReading,
)
from wrale.shared.clock import Clock
from wrale.shared.config import GpioLineSettings
from wrale.shared.errors import (
    AuthError,
    HardwareError,
    InvalidRequestError,
    LockdownError,
    NotFoundError,
    UnavailableError,
    UnsupportedError,
)
from wrale.shared.policy import PowerPolicy, SecurityLevel, SecurityPolicy, ThermalPolicy

log = logging.getLogger(__name__)
T = TypeVar("T")

SUBSCRIBER_QUEUE = 1000


@dataclass(frozen=True, slots=True)
class Readings:
    thermal: ThermalReading
    fan: FanReading
    throttle: ThrottleReading
    power: PowerReading
    tamper: TamperReading
    gpio: dict[str, LineState]
    edges: list[EdgeEvent]
    available: dict[str, bool]


class MetalCore:
    """The running heart of metald for one board."""

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
        self._failing: set[str] = set()  # actuators whose last drive failed
        self._pending: list[Event] = []  # raised while driving, stored with the step
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
            readings = await self._hw(self._read_all)
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
                decision = replace(
                    decision, max_freq_pct=min(decision.max_freq_pct, control.LOAD_SHED_CAP_PCT)
                )
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

            await self._hw(self._apply, readings, decision, source, battery)
            events += self._pending
            self._pending = []

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
            )
            self.snapshot = snap
            self.sampled_mono = now_mono
            self._prev = readings
            await self._emit(events)
        async with self._new_snapshot:
            self._new_snapshot.notify_all()
        return snap

    def _read_all(self) -> Readings:
        """Read every source once; a source that fails is marked unavailable."""
        b = self.board
        available: dict[str, bool] = {}
        prev = self._prev

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
        fan = read("fan", b.fan.read_fan, FanReading(self._decision.fan_pct, None))
        throttle = read("throttle", b.throttle.read_throttle, ThrottleReading())
        power = read(
            "power",
            b.power.read_power,
            prev.power if prev else PowerReading(PowerSource.MAIN, None, None, None),
        )
        tamper = read("tamper", b.tamper.read_tamper, TamperReading(None, None, None))
        gpio: dict[str, LineState] = {}
        edges: list[EdgeEvent] = []
        if self.gpio_lines:
            empty: list[LineState] = []
            states = read("gpio", b.gpio.lines, empty)
            by_line = {s.line: s for s in states}
            gpio = {
                name: by_line[c.line] for name, c in self.gpio_lines.items() if c.line in by_line
            }
            edges = read("gpio_edges", b.gpio.drain_edge_events, [])
        return Readings(thermal, fan, throttle, power, tamper, gpio, edges, available)

    def _apply(
        self, r: Readings, d: ThermalDecision, source: PowerSource, battery: BatteryAction
    ) -> None:
        b = self.board
        prev_fan = self._decision.fan_pct if self._prev else None
        if prev_fan != d.fan_pct or abs(r.fan.duty_pct - d.fan_pct) > 1.0:
            self._drive("fan", b.fan.set_fan_duty, d.fan_pct)
        if abs(r.throttle.max_freq_pct - d.max_freq_pct) > 0.05:
            self._drive("throttle", b.throttle.set_max_freq, d.max_freq_pct)
        if source is not r.power.source:
            self._drive("power source", b.power.select_source, source)
        if battery is BatteryAction.SHUTDOWN and self._battery is not BatteryAction.SHUTDOWN:
            pct = r.power.battery_pct
            self._drive(
                "shutdown",
                b.power.request_shutdown,
                f"battery critical at {pct if pct is None else round(pct, 1)} %",
            )

    def _drive(self, name: str, fn: Callable[[Any], None], value: Any) -> None:
        """Drive one actuator; a failure is logged and raised as an event once, not every
        step, and so is the recovery."""
        try:
            fn(value)
        except (HardwareError, OSError) as exc:
            if name not in self._failing:
                self._failing.add(name)
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
        if name in self._failing:
            self._failing.discard(name)
            self._pending.append(
                self._event(
                    EventType.ACTUATOR_RECOVERED,
                    Severity.INFO,
                    f"the {name} answers again",
                    actuator=name,
                )
            )

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
