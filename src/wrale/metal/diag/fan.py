"""Fan spin-up test: run the fan at 100 %, check that its RPM rises and the CPU does not
heat up, then give the fan back. ``judge_spin_up`` is pure; ``spin_up`` drives the core."""

from __future__ import annotations

import math

import msgspec

from wrale.metal.core.engine import MetalCore
from wrale.metal.core.snapshot import Snapshot
from wrale.metal.diag.evidence import finite
from wrale.metal.diag.limits import DiagLimits
from wrale.metal.diag.result import DiagResult, DiagStatus, DiagType, Reading
from wrale.metal.diag.sampling import sample
from wrale.shared.clock import Clock
from wrale.shared.errors import LockdownError, WraleError

NAME = "fan_spin_up"
FULL_PCT = 100.0


def _result(
    status: DiagStatus, message: str, reading: Reading = None, expected: str | None = None
) -> DiagResult:
    unit = "rpm" if reading is not None else None
    return DiagResult(DiagType.THERMAL, NAME, "fan", status, message, reading, expected, unit)


def judge_spin_up(
    before: Snapshot,
    during: list[Snapshot],
    stall_rpm: float,
    limits: DiagLimits,
    expected_rpm: float | None,
) -> DiagResult:
    """Judge the samples taken with the fan commanded to 100 % (``during``, oldest first)."""
    peak = max(finite(s.fan.rpm for s in during), default=0.0)
    want = expected_rpm * limits.fan_low_ratio if expected_rpm else stall_rpm
    expected = f">= {want:.0f} rpm"
    duty = during[-1].fan.duty_pct if during else before.fan.duty_pct
    if duty < FULL_PCT - 1.0:
        return _result(
            DiagStatus.FAIL, f"fan duty stayed at {duty:.0f} %, not 100 %", peak, expected
        )
    if peak < stall_rpm:
        return _result(
            DiagStatus.FAIL,
            f"fan commanded to 100 % reads {peak:.0f} rpm (a spinning fan reads over "
            f"{stall_rpm:.0f}): the fan has failed, stalled or is unplugged",
            round(peak),
            expected,
        )
    if expected_rpm and peak < want:
        return _result(
            DiagStatus.WARNING,
            f"fan reaches only {peak:.0f} rpm at 100 %, expected about {expected_rpm:.0f}: "
            "worn bearing, obstruction or a weak fan",
            round(peak),
            expected,
        )
    msg = f"fan spun up to {peak:.0f} rpm"
    t0, t1 = before.thermal.cpu_temp_c, during[-1].thermal.cpu_temp_c
    elapsed = during[-1].at - before.at
    if t0 is not None and t1 is not None and math.isfinite(t1 - t0):
        rise = t1 - t0
        if elapsed >= limits.fan_temp_min_s and rise > limits.fan_temp_rise_c:
            return _result(
                DiagStatus.WARNING,
                f"{msg}, yet the CPU warmed {rise:.1f} °C in {elapsed:.0f} s at 100 % fan: "
                "check the heat sink and the airflow",
                round(peak),
                expected,
            )
        msg += f"; CPU {t0:.1f} → {t1:.1f} °C in {elapsed:.0f} s"
    return _result(DiagStatus.PASS, msg, round(peak), expected)


class SpinUp(msgspec.Struct, frozen=True):
    result: DiagResult
    snapshots: list[Snapshot]
    peak_rpm: float | None  # measured at 100 %, None when the test did not run


async def spin_up(
    core: MetalCore, clock: Clock, limits: DiagLimits, expected_rpm: float | None
) -> SpinUp:
    """Command 100 % for a few samples, judge, and restore the fan whatever happens."""
    before = core.current()
    if before.security.lockdown:
        msg = "skipped: tamper lockdown is on and refuses fan commands until disarmed"
        return SpinUp(_result(DiagStatus.SKIPPED, msg), [], None)
    if not before.available.get("fan", True):
        return SpinUp(_result(DiagStatus.FAIL, "the fan could not be read"), [], None)
    if before.fan.rpm is None:
        msg = "the fan has no tachometer, so its speed cannot be checked"
        return SpinUp(_result(DiagStatus.SKIPPED, msg), [], None)
    count = max(3, math.ceil(limits.fan_test_s / core.sample_interval_s))
    duration = max(1.0, 2 * count * core.sample_interval_s + 5.0)  # outlives a slow run
    duration = min(core.thermal_policy.max_override_s, duration)
    try:
        await core.set_fan_override(FULL_PCT, duration)
    except LockdownError as exc:
        return SpinUp(_result(DiagStatus.SKIPPED, f"skipped: {exc.message}"), [], None)
    try:
        snaps = await sample(core, clock, count)
    finally:
        await _restore(core, before)
    result = judge_spin_up(before, snaps, core.thermal_policy.fan_stall_rpm, limits, expected_rpm)
    return SpinUp(result, snaps, max(finite(s.fan.rpm for s in snaps), default=0.0))


async def _restore(core: MetalCore, before: Snapshot) -> None:
    """Give the operator's own override back (for the time it had left), else the curve."""
    prior, remaining = before.override, before.override_remaining_s
    if prior is not None and before.decision.override_active and remaining is not None:
        left = remaining - (core.clock.now() - before.at)
        if left >= 1.0:
            try:
                await core.set_fan_override(prior.percent, left)
            except WraleError:
                pass
            else:
                return
    await core.clear_fan_override()
