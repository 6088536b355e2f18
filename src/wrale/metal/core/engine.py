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

from wrale.metal.core import control
from wrale.metal.core.control import BatteryAction, FanOverride, ThermalDecision, ThermalStatus
from wrale.metal.core.events import Event, EventType, Severity
from wrale.metal.core.security import SecurityState, step_security, tamper_response
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
    TamperInput,
    TamperReading,
    ThermalReading,
    ThrottleReading,
)
from wrale.shared.clock import Clock
from wrale.shared.config import GpioLineSettings
from wrale.shared.errors import (
    AuthError,
    ConflictError,
    HardwareError,
    InvalidRequestError,
    LockdownError,
    NotFoundError,
    UnsupportedError,
)
from wrale.shared.policy import PowerPolicy, SecurityLevel, SecurityPolicy, ThermalPolicy

log = logging.getLogger(__name__)
T = TypeVar("T")

FAN_CHECK_MIN_DUTY_PCT = 30.0
FAN_CHECK_SETTLE_STEPS = 3
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
        self._seq = 0
        self._decision: ThermalDecision = control.INITIAL_THERMAL
        self._override: FanOverride | None = None
        self._battery = BatteryAction.NONE
        self._supply = SupplyWindow(self.power_policy)
        self._security = SecurityState(
            armed=self.security_policy.armed, level=self.security_policy.level
        )
        self._prev: Readings | None = None
        self._fan_low_steps = 0
        self._fan_failed = False
        self._rpm_per_pct: float | None = None
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
            source = control.choose_source(readings.power, self.power_policy)
            sec = step_security(self._security, readings.tamper, now_mono, self.security_policy)

            await self._hw(self._apply, readings, decision, source, battery)

            events += self._thermal_events(decision, readings)
            events += self._power_events(readings, battery)
            events += self._security_events(sec.state, sec.changes, sec.flapping, now)
            events += self._sensor_events(readings)
            events += self._gpio_events(readings.edges)

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
                fan_failed=self._fan_failed,
                last_tamper_at=self._last_tamper_at,
            )
            self.snapshot = snap
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
            self._drive("power", b.power.select_source, source)
        if battery is BatteryAction.SHUTDOWN and self._battery is not BatteryAction.SHUTDOWN:
            pct = r.power.battery_pct
            self._drive(
                "power",
                b.power.request_shutdown,
                f"battery critical at {pct if pct is None else round(pct, 1)} %",
            )

    @staticmethod
    def _drive(name: str, fn: Callable[[Any], None], value: Any) -> None:
        try:
            fn(value)
        except (HardwareError, OSError):
            log.exception("could not drive %s to %s", name, value)

    # ------------------------------------------------------------------ events

    def _event(self, type_: EventType, severity: Severity, message: str, **data: Any) -> Event:
        return Event(type_, severity, self.clock.now(), message, data)

    def _thermal_events(self, d: ThermalDecision, r: Readings) -> list[Event]:
        prev = self._decision
        out: list[Event] = []
        cpu = r.thermal.cpu_temp_c
        temps = {
            "cpu_temp_c": cpu,
            "gpu_temp_c": r.thermal.gpu_temp_c,
            "ambient_temp_c": r.thermal.ambient_temp_c,
        }
        if d.status is not prev.status:
            if d.status is ThermalStatus.CRITICAL:
                out.append(
                    self._event(
                        EventType.THERMAL_CRITICAL,
                        Severity.CRITICAL,
                        "temperature critical: fan at 100 %",
                        **temps,
                    )
                )
            elif d.status is ThermalStatus.WARNING:
                msg = (
                    "temperature back below critical"
                    if prev.status is ThermalStatus.CRITICAL
                    else "temperature above warning"
                )
                out.append(self._event(EventType.THERMAL_WARNING, Severity.WARNING, msg, **temps))
            else:
                out.append(
                    self._event(
                        EventType.THERMAL_NORMAL, Severity.INFO, "temperature normal again", **temps
                    )
                )
        if d.throttled and not prev.throttled:
            out.append(
                self._event(
                    EventType.THROTTLE_ON,
                    Severity.WARNING,
                    f"CPU frequency capped at {d.max_freq_pct:.0f} %",
                    max_freq_pct=d.max_freq_pct,
                    **temps,
                )
            )
        elif prev.throttled and not d.throttled:
            out.append(
                self._event(
                    EventType.THROTTLE_OFF, Severity.INFO, "CPU back at full speed", **temps
                )
            )
        out += self._fan_health(r.fan)
        return out

    def _fan_health(self, fan: FanReading) -> list[Event]:
        """A fan commanded to spin whose tachometer stays low has failed (or is degraded)."""
        if fan.rpm is None:
            return []
        duty = fan.duty_pct
        low = False
        if duty >= FAN_CHECK_MIN_DUTY_PCT:
            expected = 0.5 * self._rpm_per_pct * duty if self._rpm_per_pct else 0.0
            if fan.rpm < max(self.thermal_policy.fan_stall_rpm, expected):
                low = True
            elif not self._fan_failed and self._fan_low_steps == 0:
                ratio = fan.rpm / duty
                self._rpm_per_pct = max(self._rpm_per_pct or 0.0, ratio)
        self._fan_low_steps = self._fan_low_steps + 1 if low else 0
        if self._fan_low_steps >= FAN_CHECK_SETTLE_STEPS and not self._fan_failed:
            self._fan_failed = True
            return [
                self._event(
                    EventType.FAN_FAILURE,
                    Severity.CRITICAL,
                    f"fan at {duty:.0f} % duty reads {fan.rpm:.0f} RPM",
                    duty_pct=duty,
                    fan_rpm=fan.rpm,
                )
            ]
        if self._fan_failed and not low and duty >= FAN_CHECK_MIN_DUTY_PCT:
            self._fan_failed = False
            return [
                self._event(
                    EventType.FAN_RECOVERED,
                    Severity.INFO,
                    f"fan spinning again at {fan.rpm:.0f} RPM",
                    fan_rpm=fan.rpm,
                )
            ]
        return []

    def _power_events(self, r: Readings, battery: BatteryAction) -> list[Event]:
        out: list[Event] = []
        p = r.power
        prev = self._prev.power if self._prev else None
        if prev is not None and p.source is not prev.source:
            sev = Severity.INFO if p.source is PowerSource.MAIN else Severity.WARNING
            out.append(
                self._event(
                    EventType.SOURCE_FAILOVER,
                    sev,
                    f"power source {prev.source.value} → {p.source.value}",
                    from_source=prev.source.value,
                    to_source=p.source.value,
                    battery_pct=p.battery_pct,
                )
            )
        if prev is not None and prev.battery_healthy and not p.battery_healthy:
            out.append(
                self._event(
                    EventType.BATTERY_FAILURE, Severity.CRITICAL, "battery failed or disconnected"
                )
            )
        if battery is not self._battery:
            pct = p.battery_pct
            if battery is BatteryAction.SHED_LOAD:
                out.append(
                    self._event(
                        EventType.BATTERY_LOW,
                        Severity.WARNING,
                        f"battery low at {pct:.0f} %",
                        battery_pct=pct,
                    )
                )
                out.append(
                    self._event(
                        EventType.LOAD_SHED,
                        Severity.WARNING,
                        "shedding load: CPU capped",
                        battery_pct=pct,
                    )
                )
            elif battery is BatteryAction.SHUTDOWN:
                out.append(
                    self._event(
                        EventType.BATTERY_CRITICAL,
                        Severity.CRITICAL,
                        f"battery critical at {pct:.0f} %",
                        battery_pct=pct,
                    )
                )
                out.append(
                    self._event(
                        EventType.SHUTDOWN_REQUESTED,
                        Severity.CRITICAL,
                        "graceful shutdown requested",
                        battery_pct=pct,
                    )
                )
            elif self._battery is BatteryAction.SHED_LOAD:
                out.append(
                    self._event(
                        EventType.LOAD_RESTORED, Severity.INFO, "load restored", battery_pct=pct
                    )
                )
        for kind in self._supply.add(
            self.clock.monotonic(), p.voltage_v, p.current_a, p.available(PowerSource.MAIN)
        ):
            out.append(self._supply_event(kind, p))
        return out

    def _supply_event(self, kind: EventType, p: PowerReading) -> Event:
        s = self._supply.stats()
        messages = {
            EventType.VOLTAGE_SAG: (Severity.CRITICAL, f"supply sagged to {p.voltage_v} V"),
            EventType.VOLTAGE_RIPPLE: (Severity.WARNING, f"supply ripple {s.ripple_v} V p-p"),
            EventType.CURRENT_SPIKE: (Severity.WARNING, f"current spike {p.current_a} A"),
            EventType.POWER_CYCLE: (Severity.WARNING, "main power came back"),
        }
        sev, msg = messages[kind]
        return self._event(
            kind, sev, msg, voltage_v=p.voltage_v, current_a=p.current_a, ripple_v=s.ripple_v
        )

    def _security_events(
        self, state: SecurityState, changes: Any, flapping: Any, now: float
    ) -> list[Event]:
        out: list[Event] = []
        resp = tamper_response(state.armed, state.level)
        what = {
            TamperInput.CASE: ("case opened", "case closed"),
            TamperInput.MOTION: ("motion detected", "motion stopped"),
            TamperInput.VOLTAGE: ("supply voltage abnormal", "supply voltage normal"),
        }
        for change in changes:
            on, off = what[change.input]
            if change.tampered:
                self._last_tamper_at = now
                out.append(
                    self._event(
                        EventType.TAMPER,
                        resp.severity,
                        on,
                        input=change.input.value,
                        armed=state.armed,
                        level=state.level.value,
                        alert=resp.alert,
                    )
                )
            else:
                out.append(
                    self._event(
                        EventType.TAMPER_CLEARED, Severity.INFO, off, input=change.input.value
                    )
                )
        for name in flapping:
            out.append(
                self._event(
                    EventType.RAPID_TRANSITIONS,
                    Severity.WARNING,
                    f"{name.value} sensor is flapping",
                    input=name.value,
                )
            )
        if state.lockdown and not self._security.lockdown:
            out.append(
                self._event(
                    EventType.LOCKDOWN,
                    Severity.CRITICAL,
                    "tamper lockdown: actuator commands refused until disarmed",
                )
            )
        return out

    def _sensor_events(self, r: Readings) -> list[Event]:
        out: list[Event] = []
        prev = self._prev
        for name in r.available:
            if name == "thermal":
                continue
            was = True if prev is None else prev.available.get(name, True)
            now_ok = r.available.get(name, True)
            if was and not now_ok:
                out.append(
                    self._event(
                        EventType.SENSOR_FAILURE,
                        Severity.CRITICAL if name == "cpu_temp" else Severity.WARNING,
                        f"{name} sensor unavailable",
                        sensor=name,
                    )
                )
            elif not was and now_ok:
                out.append(
                    self._event(
                        EventType.SENSOR_RECOVERED,
                        Severity.INFO,
                        f"{name} sensor back",
                        sensor=name,
                    )
                )
        return out

    def _gpio_events(self, edges: list[EdgeEvent]) -> list[Event]:
        return [
            Event(
                EventType.GPIO_EDGE,
                Severity.INFO,
                e.at,
                f"{self._line_names.get(e.line, e.line)} {e.kind.value}",
                {"line": e.line, "name": self._line_names.get(e.line), "edge": e.kind.value},
            )
            for e in edges
        ]

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
            raise ConflictError("metald has not taken its first sample yet")
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
        """Swap policy documents (validated already); the next step uses them."""
        if thermal is not None:
            self.thermal_policy = thermal
        if power is not None:
            self.power_policy = power
            self._supply.policy = power
        if security is not None:
            self.security_policy = security

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
        return await self._hw(self._line_state, cfg.line)

    async def gpio_pwm(self, name: str, frequency_hz: float, duty_pct: float) -> LineState:
        self._check_lockdown("driving GPIO")
        cfg = self._line(name)
        await self._hw(self.board.gpio.set_pwm, cfg.line, frequency_hz, duty_pct)
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
