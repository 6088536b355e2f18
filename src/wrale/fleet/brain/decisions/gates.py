"""A rollout wave's gate: did the boards that got the change suffer? Pure.

Measured from each board's values before the change (its own baseline) and after the
observation period: the share of boards whose change failed (failed, refused, timed out),
boards gone offline, the temperature rise of each board minus the rise of the boards not
yet in the rollout over the same time (the weather cancelled out), new throttling or
under-voltage, the power draw rise, fan anomalies and the alerts raised. An unknown value
(no reading before or after) is not counted as a rise; the values say how many were
unknown.

A **fan anomaly** is a board whose fan failed since its baseline (driven but not turning,
as the fleet view judges it), whose RPM fell by more than ``FAN_RPM_DROP_PCT`` (or to 0)
while its duty stayed at or above what it was, or that reported a fan failure (an event
or a fan alert) during the wave.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import median
from typing import Any

DEFAULT_MAX_FAILURE_PCT = 0.0
DEFAULT_MAX_TEMP_RISE_C = 5.0
DEFAULT_MAX_OFFLINE = 0
DEFAULT_MAX_FAN_ANOMALIES = 0
FAN_RPM_DROP_PCT = 25.0  # a fan turning this much slower at the same duty is suspect
DUTY_SLACK_PCT = 1.0  # duty "stayed" within this much below its baseline


@dataclass(frozen=True, slots=True)
class Sample:
    """A board's values at one moment (``None``: unknown)."""

    online: bool = True
    temp_c: float | None = None
    power_w: float | None = None
    throttled: bool | None = None
    under_voltage: bool | None = None
    fan_duty_pct: float | None = None
    fan_rpm: float | None = None
    fan_failed: bool | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    """What a wave may cost; ``None`` leaves that measure unchecked."""

    max_failure_pct: float | None = DEFAULT_MAX_FAILURE_PCT
    max_temp_rise_c: float | None = DEFAULT_MAX_TEMP_RISE_C
    max_offline: int | None = DEFAULT_MAX_OFFLINE
    max_power_rise_w: float | None = None
    max_alerts: int | None = None
    max_fan_anomalies: int | None = DEFAULT_MAX_FAN_ANOMALIES
    allow_new_throttling: bool = False


@dataclass(frozen=True, slots=True)
class Gate:
    """A gate's verdict: the measured values, the reasons it failed (none: passed) and the
    boards that failed it (for a retry of only those)."""

    passed: bool
    values: Mapping[str, Any]
    reasons: tuple[str, ...] = ()
    offenders: tuple[str, ...] = field(default=())


def _finite(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


def _rise(before: Sample | None, after: Sample | None, attr: str) -> float | None:
    if before is None or after is None:
        return None
    b, a = _finite(getattr(before, attr)), _finite(getattr(after, attr))
    return None if a is None or b is None else a - b


def fan_anomaly(before: Sample | None, after: Sample | None) -> str | None:
    """Why the fan of a board looks wrong after the change (``None``: it does not, or its
    fan is unknown)."""
    if after is None or not after.online:
        return None
    if after.fan_failed and not (before is not None and before.fan_failed):
        return "fan driven but not turning"
    if before is None:
        return None
    rpm_b, rpm_a = _finite(before.fan_rpm), _finite(after.fan_rpm)
    duty_b, duty_a = _finite(before.fan_duty_pct), _finite(after.fan_duty_pct)
    if rpm_b is None or rpm_a is None or duty_b is None or duty_a is None:
        return None
    if duty_a < duty_b - DUTY_SLACK_PCT or rpm_b <= 0:
        return None
    if rpm_a <= 0 and duty_a > 0:
        return f"fan stopped at {duty_a:.0f}% duty (was {rpm_b:.0f} rpm)"
    if rpm_a < rpm_b * (1 - FAN_RPM_DROP_PCT / 100):
        return f"fan rpm fell {rpm_b:.0f} → {rpm_a:.0f} at {duty_a:.0f}% duty (was {duty_b:.0f}%)"
    return None


def weather_rise(
    before: Mapping[str, Sample], after: Mapping[str, Sample], control: Sequence[str]
) -> float:
    """The median temperature rise of the boards not in the rollout yet (0: none known)."""
    rises = [
        r
        for d in control
        if (r := _rise(before.get(d), after.get(d), "temp_c")) is not None and after[d].online
    ]
    return float(median(rises)) if rises else 0.0


def evaluate(
    wave: Sequence[str],
    failed: Sequence[str],
    before: Mapping[str, Sample],
    after: Mapping[str, Sample],
    control: Sequence[str],
    limits: Limits,
    *,
    alerts: int = 0,
    fan_reports: Mapping[str, str] | None = None,
) -> Gate:
    """The gate of a wave of boards ``wave``, of which ``failed`` saw their change fail;
    ``control`` are the boards not yet in the rollout (for the weather); ``alerts`` raised
    on the wave's boards; ``fan_reports``: boards that reported a fan failure (why)."""
    boards = sorted(set(wave))
    n = len(boards)
    failed_set = set(failed) & set(boards)
    failure_pct = 100.0 * len(failed_set) / n if n else 0.0
    offline = sorted(d for d in boards if d in after and not after[d].online)
    weather = weather_rise(before, after, control)
    excess: dict[str, float] = {}
    power: dict[str, float] = {}
    new_throttle: list[str] = []
    new_uv: list[str] = []
    fans: dict[str, str] = {
        d: str(why)[:200] for d, why in (fan_reports or {}).items() if d in set(boards)
    }
    for d in boards:
        b, a = before.get(d), after.get(d)
        fan = fan_anomaly(b, a)
        if fan is not None:
            fans.setdefault(d, fan)
        if a is not None and not a.online:
            continue
        t = _rise(b, a, "temp_c")
        if t is not None:
            excess[d] = round(t - weather, 3)
        p = _rise(b, a, "power_w")
        if p is not None:
            power[d] = round(p, 3)
        if a is not None and a.throttled and not (b is not None and b.throttled):
            new_throttle.append(d)
        if a is not None and a.under_voltage and not (b is not None and b.under_voltage):
            new_uv.append(d)
    values: dict[str, Any] = {
        "boards": n,
        "failed": len(failed_set),
        "failure_pct": round(failure_pct, 2),
        "offline": len(offline),
        "weather_rise_c": round(weather, 3),
        "temp_rise_c": max(excess.values()) if excess else None,
        "mean_temp_rise_c": round(sum(excess.values()) / len(excess), 3) if excess else None,
        "temp_rise_by_board": excess,
        "temp_unknown": n - len(excess) - len(offline),
        "power_rise_w": max(power.values()) if power else None,
        "new_throttling": len(new_throttle),
        "new_under_voltage": len(new_uv),
        "fan_anomalies": len(fans),
        "fan_anomaly_by_board": dict(sorted(fans.items())),
        "alerts": alerts,
    }
    reasons: list[str] = []
    offenders: set[str] = set()
    if limits.max_failure_pct is not None and failure_pct > limits.max_failure_pct:
        reasons.append(
            f"{len(failed_set)} of {n} boards failed ({failure_pct:.0f}% > "
            f"{limits.max_failure_pct:g}%)"
        )
        offenders |= failed_set
    if limits.max_offline is not None and len(offline) > limits.max_offline:
        reasons.append(f"{len(offline)} board(s) went offline (> {limits.max_offline})")
        offenders |= set(offline)
    if limits.max_temp_rise_c is not None:
        hot = sorted(d for d, r in excess.items() if r > limits.max_temp_rise_c)
        if hot:
            reasons.append(
                f"{len(hot)} board(s) rose more than {limits.max_temp_rise_c:g} °C above their "
                f"baseline (weather {weather:+.1f} °C cancelled; worst {max(excess.values()):+.1f})"
            )
            offenders |= set(hot)
    if limits.max_power_rise_w is not None:
        hungry = sorted(d for d, r in power.items() if r > limits.max_power_rise_w)
        if hungry:
            reasons.append(
                f"{len(hungry)} board(s) draw more than {limits.max_power_rise_w:g} W above "
                "their baseline"
            )
            offenders |= set(hungry)
    if not limits.allow_new_throttling and (new_throttle or new_uv):
        reasons.append(
            f"{len(new_throttle)} board(s) started throttling, {len(new_uv)} reported under-voltage"
        )
        offenders |= set(new_throttle) | set(new_uv)
    if limits.max_fan_anomalies is not None and len(fans) > limits.max_fan_anomalies:
        first = min(fans)
        reasons.append(
            f"{len(fans)} board(s) with a fan anomaly (> {limits.max_fan_anomalies}; "
            f"{first}: {fans[first]})"
        )
        offenders |= set(fans)
    if limits.max_alerts is not None and alerts > limits.max_alerts:
        reasons.append(f"{alerts} alert(s) raised on the wave's boards (> {limits.max_alerts})")
    return Gate(not reasons, values, tuple(reasons), tuple(sorted(offenders)))
