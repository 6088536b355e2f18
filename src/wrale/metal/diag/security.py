"""Tamper-sensor check: each input present and readable, what it says, whether it flaps,
and whether the board is in lockdown. A pure function of ``Evidence``."""

from __future__ import annotations

from wrale.metal.diag.evidence import Evidence
from wrale.metal.diag.result import DiagResult, DiagStatus, DiagType
from wrale.metal.hw.base import TamperInput

NAME = "tamper_sensors"
_COMPONENTS = {
    TamperInput.CASE: "case_switch",
    TamperInput.MOTION: "motion_sensor",
    TamperInput.VOLTAGE: "voltage_monitor",
}


def _result(
    component: str, status: DiagStatus, message: str, reading: str | None, expected: str
) -> DiagResult:
    return DiagResult(DiagType.SECURITY, NAME, component, status, message, reading, expected)


def _judge(
    inp: TamperInput, value: bool | None, armed: bool
) -> tuple[DiagStatus, str, str | None, str]:
    """Status, message, reading and expected value of one input."""
    if inp is TamperInput.VOLTAGE:
        reading = None if value is None else "normal" if value else "abnormal"
        if value is None:
            return DiagStatus.SKIPPED, "the board has no supply-voltage monitor", reading, "normal"
        if not value:
            return (
                DiagStatus.FAIL,
                "supply-voltage monitor reports abnormal voltage",
                reading,
                "normal",
            )
        return DiagStatus.PASS, "supply-voltage monitor reports normal voltage", reading, "normal"
    what, on, off = (
        ("case switch", "open", "closed")
        if inp is TamperInput.CASE
        else ("motion sensor", "motion", "still")
    )
    reading = None if value is None else on if value else off
    if value is None:
        return DiagStatus.SKIPPED, f"the board has no {what}", reading, off
    if value and armed:
        return (
            DiagStatus.WARNING,
            f"{what} reads {on} while tamper detection is armed",
            reading,
            off,
        )
    if value:
        return DiagStatus.PASS, f"{what} reads {on} (tamper detection disarmed)", reading, off
    return DiagStatus.PASS, f"{what} reads {off}", reading, off


def tamper_sensors(ev: Evidence) -> list[DiagResult]:
    snap = ev.latest
    if not snap.available.get("tamper", True):
        msg = "tamper inputs could not be read"
        return [_result("tamper_inputs", DiagStatus.FAIL, msg, None, "readable")]
    t, sec = snap.tamper, snap.security
    values = {
        TamperInput.CASE: t.case_open,
        TamperInput.MOTION: t.motion_detected,
        TamperInput.VOLTAGE: t.voltage_normal,
    }
    out = []
    for inp, value in values.items():
        status, msg, reading, expected = _judge(inp, value, sec.armed)
        state = sec.inputs.get(inp)
        changes = len(state.recent_transitions) if state is not None else 0
        if changes >= ev.security.rapid_transitions and status is DiagStatus.PASS:
            status = DiagStatus.WARNING
            msg += f"; it changed {changes} times recently (flapping)"
        out.append(_result(_COMPONENTS[inp], status, msg, reading, expected))
    if sec.lockdown:
        msg = "tamper lockdown: actuator commands are refused until an authorised disarm"
        out.append(_result("lockdown", DiagStatus.WARNING, msg, "on", "off"))
    return out
