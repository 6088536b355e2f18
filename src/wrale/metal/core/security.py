"""Tamper policy: debounce of each tamper input, flapping detection, quiet hours, and what
a tamper triggers at each security level. Pure: state and time of day in, state and
decisions out."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import msgspec

from wrale.metal.core.events import Severity
from wrale.metal.hw.base import TamperInput, TamperReading
from wrale.shared.policy import SecurityLevel, SecurityPolicy, in_quiet_hours


class InputState(msgspec.Struct, frozen=True):
    """A debounced tamper input: ``tampered`` once the raw value held for ``debounce_s``."""

    tampered: bool | None = None
    pending: bool | None = None
    pending_since: float | None = None
    recent_transitions: tuple[float, ...] = ()
    flapping_reported_at: float | None = None


class TamperChange(msgspec.Struct, frozen=True):
    input: TamperInput
    tampered: bool
    at: float


# still a dataclass: the engine and the sampler update it with dataclasses.replace
@dataclass(frozen=True, slots=True)
class SecurityState:
    armed: bool
    level: SecurityLevel
    lockdown: bool = False
    inputs: dict[TamperInput, InputState] = field(default_factory=dict)


def raw_tampered(reading: TamperReading) -> dict[TamperInput, bool | None]:
    """Each input as 'is it in the tampered state' (case open, motion, voltage abnormal)."""
    return {
        TamperInput.CASE: reading.case_open,
        TamperInput.MOTION: reading.motion_detected,
        TamperInput.VOLTAGE: None if reading.voltage_normal is None else not reading.voltage_normal,
    }


def debounce(prev: InputState, raw: bool | None, now: float, debounce_s: float) -> InputState:
    """Accept a new value once it has been read unchanged for ``debounce_s`` seconds."""
    if raw is None:
        return msgspec.structs.replace(prev, pending=None, pending_since=None)
    if prev.tampered is None:
        return msgspec.structs.replace(prev, tampered=raw, pending=None, pending_since=None)
    if raw == prev.tampered:
        return msgspec.structs.replace(prev, pending=None, pending_since=None)
    if prev.pending != raw or prev.pending_since is None:
        prev = msgspec.structs.replace(prev, pending=raw, pending_since=now)
    if now - prev.pending_since >= debounce_s:  # type: ignore[operator]
        return msgspec.structs.replace(prev, tampered=raw, pending=None, pending_since=None)
    return prev


class SecurityStep(msgspec.Struct, frozen=True):
    """``changes`` are tamper changes; ``noted`` motion seen outside the quiet hours, which
    is only an INFO event and never an alert or a lockdown."""

    state: SecurityState
    changes: tuple[TamperChange, ...]
    flapping: tuple[TamperInput, ...]
    noted: tuple[TamperChange, ...] = ()


CLOCK_SET_FROM = 1_577_836_800.0  # 2020-01-01T00:00Z: before it, the clock was never set


def local_time_of_day(now: float) -> tuple[int | None, int]:
    """``(hour, minute)`` of ``now`` in the board's zone (``TZ`` / ``/etc/localtime``), for
    the quiet hours; ``(None, 0)`` while the clock was never set (no RTC, before NTP)."""
    if now < CLOCK_SET_FROM:
        return None, 0
    tod = time.localtime(now)
    return tod.tm_hour, tod.tm_min


def motion_is_tamper(policy: SecurityPolicy, hour: int | None, minute: int) -> bool:
    """Motion is a tamper without quiet hours, or when the time of day is unknown, or
    during them; outside them people work there and motion is only noted."""
    return policy.quiet_hours is None or hour is None or in_quiet_hours(policy, hour, minute)


def step_security(
    state: SecurityState,
    reading: TamperReading,
    now: float,
    policy: SecurityPolicy,
    *,
    hour: int | None = None,
    minute: int = 0,
) -> SecurityStep:
    """Debounce every input, note accepted changes and inputs that flap.

    ``hour`` and ``minute`` are the board's local time of day, for the quiet hours.
    """
    motion_tamper = motion_is_tamper(policy, hour, minute)
    inputs = dict(state.inputs)
    changes: list[TamperChange] = []
    noted: list[TamperChange] = []
    flapping: list[TamperInput] = []
    for name, raw in raw_tampered(reading).items():
        prev = inputs.get(name, InputState())
        cur = debounce(prev, raw, now, policy.debounce_s)
        edges = max(int(reading.transitions.get(name, 0)), 0)
        if prev.tampered is not None and cur.tampered != prev.tampered:
            edges = max(edges, 1)
            change = TamperChange(name, bool(cur.tampered), now)
            if name is TamperInput.MOTION and change.tampered and not motion_tamper:
                noted.append(change)
            else:
                changes.append(change)
        window = tuple(t for t in cur.recent_transitions if t > now - policy.rapid_window_s)
        window += (now,) * min(edges, policy.rapid_transitions)
        cur = msgspec.structs.replace(cur, recent_transitions=window)
        if len(window) >= policy.rapid_transitions and (
            cur.flapping_reported_at is None
            or now - cur.flapping_reported_at >= policy.rapid_window_s
        ):
            flapping.append(name)
            cur = msgspec.structs.replace(cur, flapping_reported_at=now)
        inputs[name] = cur
    new_state = replace(state, inputs=inputs)
    if state.armed and state.level is SecurityLevel.HIGH and any(c.tampered for c in changes):
        new_state = replace(new_state, lockdown=True)
    return SecurityStep(new_state, tuple(changes), tuple(flapping), tuple(noted))


class TamperResponse(msgspec.Struct, frozen=True):
    severity: Severity
    alert: bool
    lockdown: bool


def tamper_response(armed: bool, level: SecurityLevel) -> TamperResponse:
    """What a tamper triggers: LOW an event, MEDIUM an alert, HIGH an alert and lockdown."""
    if not armed:
        return TamperResponse(Severity.INFO, alert=False, lockdown=False)
    match level:
        case SecurityLevel.LOW:
            return TamperResponse(Severity.WARNING, alert=False, lockdown=False)
        case SecurityLevel.MEDIUM:
            return TamperResponse(Severity.CRITICAL, alert=True, lockdown=False)
        case SecurityLevel.HIGH:
            return TamperResponse(Severity.CRITICAL, alert=True, lockdown=True)
