"""Thermal snapshot checks: sensor range, stuck sensors, sensors that disagree, and the
firmware's throttle flags. Pure functions of ``Evidence``; no I/O, no clock."""

from __future__ import annotations

import math
from collections.abc import Sequence

from wrale.metal.core.snapshot import Snapshot
from wrale.metal.diag.evidence import SENSORS, Evidence, span, temp_of
from wrale.metal.diag.limits import DiagLimits
from wrale.metal.diag.result import DiagResult, DiagStatus, DiagType, Reading

C = "°C"


def _result(
    name: str,
    component: str,
    status: DiagStatus,
    message: str,
    reading: Reading = None,
    expected: str | None = None,
    unit: str | None = C,
) -> DiagResult:
    return DiagResult(DiagType.THERMAL, name, component, status, message, reading, expected, unit)


def _in_range(value: float | None, low: float, high: float) -> bool:
    return value is not None and math.isfinite(value) and low <= value <= high


def sensor_range(ev: Evidence) -> list[DiagResult]:
    """Each sensor reads a plausible temperature: FAIL when missing or out of range now,
    WARNING when it failed in some samples only, SKIPPED for sensors the board lacks."""
    out = []
    for sensor in SENSORS:
        low, high = ev.limits.range_of(sensor)
        expected = f"{low:g}..{high:g} {C}"
        values = [temp_of(s, sensor) for s in ev.snapshots]
        latest, component = values[-1], f"{sensor}_temp"
        bad = [v for v in values if not _in_range(v, low, high)]
        if sensor not in ev.sensors and all(v is None for v in values):
            status, msg = DiagStatus.SKIPPED, f"no {sensor} temperature sensor on this board"
        elif latest is None:
            status, msg = DiagStatus.FAIL, f"{sensor} temperature sensor gives no reading"
        elif not _in_range(latest, low, high):
            status = DiagStatus.FAIL
            msg = f"{sensor} sensor reads {latest:g} {C}, outside the plausible {expected}"
        elif bad:
            status = DiagStatus.WARNING
            msg = f"{sensor} sensor failed in {len(bad)} of {len(values)} samples"
        else:
            status, msg = DiagStatus.PASS, f"{sensor} reads {latest:.1f} {C}"
        reading = None if latest is None else round(latest, 2)
        out.append(_result("sensor_range", component, status, msg, reading, expected))
    return out


def load_or_fan_changed(snaps: Sequence[Snapshot], limits: DiagLimits) -> bool:
    """Whether the fan or the power draw moved enough that every sensor should have too."""
    return (
        span(s.fan.rpm for s in snaps) >= limits.stuck_fan_delta_rpm
        or span(s.fan.duty_pct for s in snaps) >= limits.stuck_fan_delta_pct
        or span(s.power.power_w for s in snaps) >= limits.stuck_power_delta_w
    )


def trailing_repeats(readings: Sequence[tuple[Snapshot, float]], tol: float) -> int:
    """How many of the latest readings equal the very latest one (within ``tol``)."""
    count = 0
    for _, value in reversed(readings):
        if abs(value - readings[-1][1]) > tol:
            break
        count += 1
    return count


def sensor_stuck(ev: Evidence) -> list[DiagResult]:
    """A sensor repeating the very same value over its latest readings, while the fan or
    the load changed across them, is stuck."""
    out = []
    need, tol = ev.limits.stuck_samples, ev.limits.stuck_tolerance_c
    expected = f"< {need} identical readings while the fan or load changes"
    for sensor in SENSORS:
        readings = [
            (s, v)
            for s in ev.snapshots
            if (v := temp_of(s, sensor)) is not None and math.isfinite(v)
        ]
        repeats = trailing_repeats(readings, tol) if readings else 0
        window = [s for s, _ in readings[len(readings) - repeats :]]
        if len(readings) < need:
            status = DiagStatus.SKIPPED
            msg = f"{sensor}: {len(readings)} readings, {need} needed to judge"
        elif repeats >= need and load_or_fan_changed(window, ev.limits):
            status = DiagStatus.WARNING
            msg = (
                f"{sensor} read {readings[-1][1]:.2f} {C} in the last {repeats} samples while "
                "the fan or the load changed: the sensor may be stuck"
            )
        elif repeats >= need:
            status = DiagStatus.PASS
            msg = f"{sensor} steady at {readings[-1][1]:.1f} {C}, as are the fan and the load"
        else:
            values = [v for _, v in readings]
            status = DiagStatus.PASS
            msg = f"{sensor} varies by {span(values):.2f} {C} over {len(values)} samples"
        out.append(
            _result("sensor_stuck", f"{sensor}_temp", status, msg, repeats, expected, "samples")
        )
    return out


def _mean_gap(ev: Evidence, a: str, b: str) -> float | None:
    """Mean of ``a - b`` over the snapshots where both read a finite value."""
    gaps = [
        x - y
        for s in ev.snapshots
        if (x := temp_of(s, a)) is not None
        and (y := temp_of(s, b)) is not None
        and math.isfinite(x - y)
    ]
    return sum(gaps) / len(gaps) if gaps else None


def sensor_agreement(ev: Evidence) -> list[DiagResult]:
    """CPU and GPU sit on one die and read alike; ambient is never much above the CPU."""
    limit = ev.limits.disagreement_c
    out = []
    for a, b, absolute in (("cpu", "gpu", True), ("ambient", "cpu", False)):
        gap = _mean_gap(ev, a, b)
        component = f"{a}_vs_{b}"
        expected = f"|{a} - {b}| <= {limit:g} {C}" if absolute else f"{a} - {b} <= {limit:g} {C}"
        if gap is None:
            status, msg = DiagStatus.SKIPPED, f"needs readings from both {a} and {b}"
        elif (abs(gap) if absolute else gap) > limit:
            status = DiagStatus.WARNING
            msg = f"{a} and {b} differ by {gap:+.1f} {C}: one of them reads wrong"
        else:
            status, msg = DiagStatus.PASS, f"{a} and {b} agree ({gap:+.1f} {C})"
        reading = None if gap is None else round(gap, 2)
        out.append(_result("sensor_agreement", component, status, msg, reading, expected))
    return out


def throttle_flags(ev: Evidence) -> list[DiagResult]:
    """The firmware's under-voltage and throttle flags, now and since boot."""
    t = ev.latest.throttle
    if not ev.latest.available.get("throttle", True):
        msg = "firmware throttle flags unreadable"
        return [_result("throttle_flags", "firmware", DiagStatus.SKIPPED, msg, unit=None)]
    now = [
        name
        for name, flag in (
            ("under-voltage", t.under_voltage_now),
            ("frequency capped", t.freq_capped_now),
            ("throttled", t.throttled_now),
            ("soft temperature limit", t.soft_temp_limit_now),
        )
        if flag
    ]
    occurred = [
        name
        for name, flag in (
            ("under-voltage", t.under_voltage_occurred),
            ("frequency capped", t.freq_capped_occurred),
            ("throttled", t.throttled_occurred),
            ("soft temperature limit", t.soft_temp_limit_occurred),
        )
        if flag
    ]
    parts = ([f"now: {', '.join(now)}"] if now else []) + (
        [f"since boot: {', '.join(occurred)}"] if occurred else []
    )
    if parts:
        status, msg = DiagStatus.WARNING, "firmware reports " + "; ".join(parts)
    else:
        status, msg = DiagStatus.PASS, "no under-voltage or throttling since boot"
    reading = "; ".join(parts) or "none"
    return [_result("throttle_flags", "firmware", status, msg, reading, "none", unit=None)]
