"""What changed between two sampling steps, as events. No I/O and no clock of its own:
the engine passes the time in. ``FanHealth`` keeps the little state fan checks need."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from wrale.metal.core.control import BatteryAction, ThermalDecision, ThermalStatus
from wrale.metal.core.events import Event, EventType, Severity
from wrale.metal.core.security import SecurityState, TamperChange, tamper_response
from wrale.metal.core.supply import SupplyStats
from wrale.metal.hw.base import (
    EdgeEvent,
    FanReading,
    PowerReading,
    PowerSource,
    TamperInput,
    ThermalReading,
)

FAN_CHECK_MIN_DUTY_PCT = 30.0  # below this a fan may legitimately spin slowly
FAN_CHECK_SETTLE_S = 3.0  # a fan must read low this long (spin-up takes ~1 s)
FAN_DEGRADED_RATIO = 0.5  # of the best RPM per duty-% seen while healthy


def ev(type_: EventType, severity: Severity, at: float, message: str, **data: Any) -> Event:
    return Event(type_, severity, at, message, data)


def thermal_events(
    prev: ThermalDecision, d: ThermalDecision, r: ThermalReading, at: float
) -> list[Event]:
    out: list[Event] = []
    temps = {
        "cpu_temp_c": r.cpu_temp_c,
        "gpu_temp_c": r.gpu_temp_c,
        "ambient_temp_c": r.ambient_temp_c,
    }
    if d.status is not prev.status:
        if d.status is ThermalStatus.CRITICAL:
            msg = "temperature critical: fan at 100 %"
            out.append(ev(EventType.THERMAL_CRITICAL, Severity.CRITICAL, at, msg, **temps))
        elif d.status is ThermalStatus.WARNING:
            msg = (
                "temperature back below critical"
                if prev.status is ThermalStatus.CRITICAL
                else "temperature above warning"
            )
            out.append(ev(EventType.THERMAL_WARNING, Severity.WARNING, at, msg, **temps))
        else:
            msg = "temperature normal again"
            out.append(ev(EventType.THERMAL_NORMAL, Severity.INFO, at, msg, **temps))
    if d.throttled and not prev.throttled:
        msg = f"CPU frequency capped at {d.max_freq_pct:.0f} %"
        out.append(
            ev(
                EventType.THROTTLE_ON,
                Severity.WARNING,
                at,
                msg,
                max_freq_pct=d.max_freq_pct,
                **temps,
            )
        )
    elif prev.throttled and not d.throttled:
        out.append(ev(EventType.THROTTLE_OFF, Severity.INFO, at, "CPU back at full speed", **temps))
    return out


class FanHealth:
    """A fan commanded to spin whose tachometer stays low for a while has failed; one far
    below the speed it showed when healthy is degraded. Judged over clock time, so rapid
    sampling steps (an API call samples at once) never raise a false alarm."""

    def __init__(self) -> None:
        self.failed = False
        self._low_since: float | None = None
        self._rpm_per_pct: float | None = None

    def observe(self, fan: FanReading, stall_rpm: float, now: float, at: float) -> list[Event]:
        if fan.rpm is None or fan.duty_pct < FAN_CHECK_MIN_DUTY_PCT:
            self._low_since = None
            return []
        duty, rpm = fan.duty_pct, fan.rpm
        expected = FAN_DEGRADED_RATIO * self._rpm_per_pct * duty if self._rpm_per_pct else 0.0
        low = rpm < max(stall_rpm, expected)
        if not low:
            self._low_since = None
            if not self.failed:
                self._rpm_per_pct = max(self._rpm_per_pct or 0.0, rpm / duty)
                return []
            self.failed = False
            msg = f"fan spinning again at {rpm:.0f} RPM"
            return [ev(EventType.FAN_RECOVERED, Severity.INFO, at, msg, fan_rpm=rpm)]
        if self._low_since is None:
            self._low_since = now
        if self.failed or now - self._low_since < FAN_CHECK_SETTLE_S:
            return []
        self.failed = True
        msg = f"fan at {duty:.0f} % duty reads {rpm:.0f} RPM"
        return [ev(EventType.FAN_FAILURE, Severity.CRITICAL, at, msg, duty_pct=duty, fan_rpm=rpm)]


def power_events(
    prev: PowerReading | None,
    p: PowerReading,
    prev_action: BatteryAction,
    action: BatteryAction,
    at: float,
) -> list[Event]:
    out: list[Event] = []
    if prev is not None and p.source is not prev.source:
        sev = Severity.INFO if p.source is PowerSource.MAIN else Severity.WARNING
        msg = f"power source {prev.source.value} → {p.source.value}"
        out.append(
            ev(
                EventType.SOURCE_FAILOVER,
                sev,
                at,
                msg,
                from_source=prev.source.value,
                to_source=p.source.value,
                battery_pct=p.battery_pct,
            )
        )
    if prev is not None and prev.battery_healthy and not p.battery_healthy:
        msg = "battery failed or disconnected"
        out.append(ev(EventType.BATTERY_FAILURE, Severity.CRITICAL, at, msg))
    if action is prev_action:
        return out
    pct = p.battery_pct
    if action is BatteryAction.SHED_LOAD:
        out.append(
            ev(
                EventType.BATTERY_LOW,
                Severity.WARNING,
                at,
                f"battery low at {pct:.0f} %",
                battery_pct=pct,
            )
        )
        out.append(
            ev(
                EventType.LOAD_SHED,
                Severity.WARNING,
                at,
                "shedding load: CPU capped",
                battery_pct=pct,
            )
        )
    elif action is BatteryAction.SHUTDOWN:
        out.append(
            ev(
                EventType.BATTERY_CRITICAL,
                Severity.CRITICAL,
                at,
                f"battery critical at {pct:.0f} %",
                battery_pct=pct,
            )
        )
        out.append(
            ev(
                EventType.SHUTDOWN_REQUESTED,
                Severity.CRITICAL,
                at,
                "graceful shutdown requested",
                battery_pct=pct,
            )
        )
    elif prev_action is BatteryAction.SHED_LOAD:
        out.append(ev(EventType.LOAD_RESTORED, Severity.INFO, at, "load restored", battery_pct=pct))
    return out


def _fmt(value: float | None, digits: int) -> str:
    """A reading in an event message: rounded as a person reads it ("?" when missing)."""
    return "?" if value is None else f"{value:.{digits}f}"


def supply_events(
    kinds: Iterable[EventType], p: PowerReading, stats: SupplyStats, at: float
) -> list[Event]:
    kinds = list(kinds)
    if not kinds:  # the usual step: no message to write
        return []
    messages = {
        EventType.VOLTAGE_SAG: (Severity.CRITICAL, f"supply sagged to {_fmt(p.voltage_v, 2)} V"),
        EventType.VOLTAGE_RIPPLE: (
            Severity.WARNING,
            f"supply ripple {_fmt(stats.ripple_v, 3)} V p-p",
        ),
        EventType.CURRENT_SPIKE: (Severity.WARNING, f"current spike {_fmt(p.current_a, 2)} A"),
        EventType.POWER_CYCLE: (Severity.WARNING, "main power came back"),
    }
    return [
        ev(
            kind,
            messages[kind][0],
            at,
            messages[kind][1],
            voltage_v=p.voltage_v,
            current_a=p.current_a,
            ripple_v=stats.ripple_v,
        )
        for kind in kinds
    ]


_TAMPER_WORDS = {
    TamperInput.CASE: ("case opened", "case closed"),
    TamperInput.MOTION: ("motion detected", "motion stopped"),
    TamperInput.VOLTAGE: ("supply voltage abnormal", "supply voltage normal"),
}


def security_events(
    prev: SecurityState,
    state: SecurityState,
    changes: Iterable[TamperChange],
    flapping: Iterable[TamperInput],
    at: float,
    noted: Iterable[TamperChange] = (),
) -> list[Event]:
    """Tamper changes at the level's severity; motion outside quiet hours (``noted``) as
    information only; flapping inputs; the start of a lockdown."""
    out: list[Event] = []
    resp = tamper_response(state.armed, state.level)
    for change in noted:
        msg = f"{_TAMPER_WORDS[change.input][0]} outside quiet hours"
        out.append(
            ev(EventType.TAMPER, Severity.INFO, at, msg, input=change.input.value, alert=False)
        )
    for change in changes:
        on, off = _TAMPER_WORDS[change.input]
        if change.tampered:
            out.append(
                ev(
                    EventType.TAMPER,
                    resp.severity,
                    at,
                    on,
                    input=change.input.value,
                    armed=state.armed,
                    level=state.level.value,
                    alert=resp.alert,
                )
            )
        else:
            out.append(
                ev(EventType.TAMPER_CLEARED, Severity.INFO, at, off, input=change.input.value)
            )
    for name in flapping:
        out.append(
            ev(
                EventType.RAPID_TRANSITIONS,
                Severity.WARNING,
                at,
                f"{name.value} sensor is flapping",
                input=name.value,
            )
        )
    if state.lockdown and not prev.lockdown:
        msg = "tamper lockdown: actuator commands refused until disarmed"
        out.append(ev(EventType.LOCKDOWN, Severity.CRITICAL, at, msg))
    return out


def sensor_events(
    prev: Mapping[str, bool] | None, now: Mapping[str, bool], at: float
) -> list[Event]:
    """A source that stops answering, or answers again (``thermal`` is the CPU's job)."""
    out: list[Event] = []
    for name, ok in now.items():
        if name == "thermal":
            continue
        was = True if prev is None else prev.get(name, True)
        if was and not ok:
            sev = Severity.CRITICAL if name == "cpu_temp" else Severity.WARNING
            out.append(
                ev(EventType.SENSOR_FAILURE, sev, at, f"{name} sensor unavailable", sensor=name)
            )
        elif not was and ok:
            out.append(
                ev(
                    EventType.SENSOR_RECOVERED,
                    Severity.INFO,
                    at,
                    f"{name} sensor back",
                    sensor=name,
                )
            )
    return out


def gpio_events(edges: Iterable[EdgeEvent], names: Mapping[int, str]) -> list[Event]:
    return [
        ev(
            EventType.GPIO_EDGE,
            Severity.INFO,
            e.at,
            f"{names.get(e.line, e.line)} {e.kind.value}",
            line=e.line,
            name=names.get(e.line),
            edge=e.kind.value,
        )
        for e in edges
    ]
