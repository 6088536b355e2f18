"""Supply stability window and tamper policy (pure, deterministic)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from wrale.metal.core import alarms
from wrale.metal.core.events import Event, EventType, Severity
from wrale.metal.core.security import (
    InputState,
    SecurityState,
    SecurityStep,
    debounce,
    motion_is_tamper,
    step_security,
    tamper_response,
)
from wrale.metal.core.supply import SupplyWindow
from wrale.metal.hw.base import TamperInput, TamperReading
from wrale.shared.policy import PowerPolicy, SecurityLevel, SecurityPolicy


def test_supply_window_stats_and_events() -> None:
    w = SupplyWindow(PowerPolicy(window_s=10))
    events: list[EventType] = []
    for t in range(6):
        events += w.add(float(t), 5.1, 0.8, True)
    assert events == []
    events += w.add(6.0, 4.6, 2.0, True)  # sag + spike + ripple at once
    assert {EventType.VOLTAGE_SAG, EventType.CURRENT_SPIKE, EventType.VOLTAGE_RIPPLE} <= set(events)
    assert w.add(7.0, 4.6, 0.8, True) == []  # sag already reported: edge-triggered
    s = w.stats()
    assert s.min_voltage_v == 4.6
    assert s.max_voltage_v == 5.1
    assert s.ripple_v == 0.5
    assert s.current_spikes == 1
    assert w.add(8.0, 5.0, 0.8, False) == []
    assert w.add(9.0, 5.1, 0.8, True) == [EventType.POWER_CYCLE]
    for t in range(10, 30):  # old samples leave the window
        w.add(float(t), 5.1, 0.8, True)
    s = w.stats()
    assert s.samples == 11
    assert s.power_cycles == 0
    assert s.ripple_v == 0.0


@given(st.lists(st.tuples(st.floats(0, 6), st.floats(0, 5), st.booleans()), max_size=100))
def test_supply_window_never_exceeds_its_span(samples: list[tuple[float, float, bool]]) -> None:
    w = SupplyWindow(PowerPolicy(window_s=5))
    for i, (v, a, main) in enumerate(samples):
        w.add(float(i), v, a, main)
        assert w.stats().samples <= 6


def test_debounce_needs_a_stable_value() -> None:
    s = debounce(InputState(), False, 0.0, 0.5)
    assert s.tampered is False
    s = debounce(s, True, 1.0, 0.5)
    assert s.tampered is False
    assert s.pending is True
    s = debounce(s, False, 1.2, 0.5)  # bounce back: pending dropped
    assert s.tampered is False
    assert s.pending is None
    s = debounce(s, True, 2.0, 0.5)
    s = debounce(s, True, 2.5, 0.5)
    assert s.tampered is True


def reading(case: bool, transitions: int = 0) -> TamperReading:
    return TamperReading(case, False, True, {TamperInput.CASE: transitions})


def test_high_level_locks_down_and_flapping_is_reported() -> None:
    pol = SecurityPolicy(level=SecurityLevel.HIGH, debounce_s=0, rapid_transitions=4)
    state = SecurityState(armed=True, level=SecurityLevel.HIGH)
    state = step_security(state, reading(False), 0.0, pol).state
    step = step_security(state, reading(True, 1), 1.0, pol)
    assert [c.input for c in step.changes] == [TamperInput.CASE]
    assert step.state.lockdown
    step = step_security(step.state, reading(True, 5), 2.0, pol)
    assert step.flapping == (TamperInput.CASE,)
    again = step_security(step.state, reading(True, 5), 3.0, pol)
    assert again.flapping == ()  # once per window


def test_disarmed_board_never_locks_down() -> None:
    pol = SecurityPolicy(level=SecurityLevel.HIGH, debounce_s=0)
    state = SecurityState(armed=False, level=SecurityLevel.HIGH)
    state = step_security(state, reading(False), 0.0, pol).state
    assert not step_security(state, reading(True, 1), 1.0, pol).state.lockdown


def test_tamper_response_by_level() -> None:
    assert tamper_response(False, SecurityLevel.HIGH).severity is Severity.INFO
    assert not tamper_response(True, SecurityLevel.LOW).alert
    assert tamper_response(True, SecurityLevel.MEDIUM).alert
    assert tamper_response(True, SecurityLevel.HIGH).lockdown


def motion(moving: bool, case: bool = False) -> TamperReading:
    return TamperReading(case, moving, True)


def step_at(
    reading: TamperReading, hour: int, pol: SecurityPolicy, level: SecurityLevel
) -> tuple[SecurityStep, list[Event]]:
    """From a quiet board, one reading at ``hour``:00; the step and the tamper events."""
    state = SecurityState(armed=True, level=level)
    state = step_security(state, motion(False), 0.0, pol, hour=hour).state
    step = step_security(state, reading, 1.0, pol, hour=hour, minute=0)
    return step, alarms.security_events(state, step.state, step.changes, step.flapping, 1.0)


def test_motion_is_a_tamper_only_during_quiet_hours() -> None:
    pol = SecurityPolicy(debounce_s=0, quiet_hours="22:00-06:00")
    step, events = step_at(motion(True), 23, pol, SecurityLevel.MEDIUM)
    assert [(e.type, e.severity, e.data["alert"]) for e in events] == [
        (EventType.TAMPER, Severity.CRITICAL, True)
    ]
    assert step.noted == ()

    step, events = step_at(motion(True), 14, pol, SecurityLevel.MEDIUM)
    assert events == []
    assert [c.input for c in step.noted] == [TamperInput.MOTION]  # the engine's INFO event

    step, events = step_at(motion(False, case=True), 14, pol, SecurityLevel.MEDIUM)
    assert [(e.type, e.severity, e.data["input"]) for e in events] == [
        (EventType.TAMPER, Severity.CRITICAL, "case")
    ]


def test_daytime_motion_never_locks_down() -> None:
    pol = SecurityPolicy(level=SecurityLevel.HIGH, debounce_s=0, quiet_hours="22:00-06:00")
    step, _ = step_at(motion(True), 14, pol, SecurityLevel.HIGH)
    assert not step.state.lockdown
    step, _ = step_at(motion(True), 5, pol, SecurityLevel.HIGH)
    assert step.state.lockdown


def test_without_quiet_hours_motion_is_always_a_tamper() -> None:
    pol = SecurityPolicy(debounce_s=0)
    for hour in (None, 3, 14):
        state = SecurityState(armed=True, level=SecurityLevel.MEDIUM)
        state = step_security(state, motion(False), 0.0, pol, hour=hour).state
        step = step_security(state, motion(True), 1.0, pol, hour=hour)
        assert [c.input for c in step.changes] == [TamperInput.MOTION]
        assert step.noted == ()
    assert motion_is_tamper(SecurityPolicy(quiet_hours="22:00-06:00"), None, 0)


def _naive(window: list[tuple[float, float | None, float | None]]) -> tuple[object, ...]:
    """The window's figures recomputed from its samples (the reference)."""
    volts = [v for _, v, _ in window if v is not None and v > 0]
    amps = [a for _, _, a in window if a is not None]
    return (
        len(window),
        min(volts) if volts else None,
        max(volts) if volts else None,
        round(sum(volts) / len(volts), 4) if volts else None,
        max(amps) if amps else None,
        round(sum(amps) / len(amps), 4) if amps else None,
    )


# eighths: exact in binary, so the running sums equal the reference's to the last bit
_volt = st.one_of(st.none(), st.integers(-8, 48).map(lambda n: n / 8))
_amp = st.one_of(st.none(), st.integers(0, 40).map(lambda n: n / 8))


@given(st.lists(st.tuples(st.integers(0, 3), _volt, _amp), max_size=300), st.integers(5, 40))
def test_the_running_window_agrees_with_recomputing_it(
    steps: list[tuple[int, float | None, float | None]], window_s: int
) -> None:
    w = SupplyWindow(PowerPolicy(window_s=window_s))
    kept: list[tuple[float, float | None, float | None]] = []
    t = 0.0
    for gap, v, a in steps:
        t += gap
        w.add(t, v, a, True)
        kept = [s for s in [*kept, (t, v, a)] if s[0] >= t - window_s]
        s = w.stats()
        got = (
            s.samples,
            s.min_voltage_v,
            s.max_voltage_v,
            s.mean_voltage_v,
            s.max_current_a,
            s.mean_current_a,
        )
        assert got == _naive(kept)
