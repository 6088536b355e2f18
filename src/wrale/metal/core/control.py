"""Pure control laws of the board: fan curve with hysteresis, throttling, fan overrides,
power source failover and battery thresholds.

Every function here is a pure function of readings, previous decision and policy; no I/O,
no clock. ``wrale.metal.core.sampler`` decides each tick with them and
``wrale.metal.core.actuators`` applies the decisions to the hardware.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace
from enum import StrEnum

import msgspec

from wrale.metal.hw.base import PowerReading, PowerSource, ThermalReading
from wrale.shared.errors import InvalidRequestError, UnsafeOperationError
from wrale.shared.policy import CurvePoint, FanProfile, PowerPolicy, ThermalPolicy

PLAUSIBLE_TEMP_C = (-40.0, 150.0)
STATUS_HYSTERESIS_C = 2.0
THROTTLE_FIRST_STEP_PCT = 90.0  # cap as soon as the critical temperature is reached
THROTTLE_HARD_PCT = 40.0  # cap at and above the hard limit
SENSOR_LOST_CAP_PCT = 70.0  # cap while the CPU temperature cannot be read
LOAD_SHED_CAP_PCT = 60.0  # cap while shedding load on a low battery
FIRMWARE_HARD_LIMIT_C = 85.0  # the Pi firmware throttles hard here whatever we say
MIN_CRITICAL_BATTERY_PCT = 5.0  # below this a graceful shutdown may not finish


class ThermalStatus(StrEnum):
    NORMAL = "normal"
    WARNING = "warning"
    CRITICAL = "critical"


_STATUS_RANK = {ThermalStatus.NORMAL: 0, ThermalStatus.WARNING: 1, ThermalStatus.CRITICAL: 2}


def plausible(temp_c: float | None) -> float | None:
    """The reading if it can be a real temperature, else ``None`` (failed sensor)."""
    if temp_c is None or not math.isfinite(temp_c):
        return None
    low, high = PLAUSIBLE_TEMP_C
    return temp_c if low <= temp_c <= high else None


def pwm_to_pct(pwm: int) -> float:
    return round(pwm * 100.0 / 255.0, 1)


def profile_curve(policy: ThermalPolicy) -> tuple[CurvePoint, ...]:
    """The fan curve bent by the profile: QUIET runs 5 °C warmer and slower, COOL 5 °C
    cooler and faster, MAX at full speed everywhere."""
    match policy.profile:
        case FanProfile.BALANCE:
            return policy.curve
        case FanProfile.QUIET:
            return tuple(
                CurvePoint(temp_c=p.temp_c + 5.0, pwm=max(1, round(p.pwm * 0.85)))
                for p in policy.curve
            )
        case FanProfile.COOL:
            return tuple(
                CurvePoint(temp_c=p.temp_c - 5.0, pwm=min(255, round(p.pwm * 1.15)))
                for p in policy.curve
            )
        case FanProfile.MAX:
            return tuple(CurvePoint(temp_c=p.temp_c, pwm=255) for p in policy.curve)


def curve_level(
    temp_c: float, prev_level: int, curve: tuple[CurvePoint, ...], hysteresis_c: float
) -> int:
    """Index of the curve point in force (-1: below the first point).

    The level rises as soon as the temperature reaches a point, and falls one step only
    once the temperature is ``hysteresis_c`` below the point that raised it.
    """
    target = -1
    for i, point in enumerate(curve):
        if temp_c >= point.temp_c:
            target = i
    level = min(prev_level, len(curve) - 1)
    if target >= level:
        return target
    while level > target and temp_c < curve[level].temp_c - hysteresis_c:
        level -= 1
    return level


def status_of(
    temp_c: float | None, warning_c: float, critical_c: float, prev: ThermalStatus
) -> ThermalStatus:
    """Status of one sensor, leaving a state only 2 °C below the threshold that set it."""
    if temp_c is None:
        return ThermalStatus.NORMAL
    if temp_c >= critical_c:
        return ThermalStatus.CRITICAL
    if prev is ThermalStatus.CRITICAL and temp_c >= critical_c - STATUS_HYSTERESIS_C:
        return ThermalStatus.CRITICAL
    if temp_c >= warning_c:
        return ThermalStatus.WARNING
    if prev is not ThermalStatus.NORMAL and temp_c >= warning_c - STATUS_HYSTERESIS_C:
        return ThermalStatus.WARNING
    return ThermalStatus.NORMAL


def worst(*statuses: ThermalStatus) -> ThermalStatus:
    return max(statuses, key=_STATUS_RANK.__getitem__)


class FanOverride(msgspec.Struct, frozen=True):
    """A manual fan speed that expires at ``until`` (monotonic seconds)."""

    percent: float
    until: float


# still a dataclass: the sampler and tests update it with dataclasses.replace
@dataclass(frozen=True, slots=True)
class ThermalDecision:
    """What the thermal loop decided in one step, and why."""

    fan_pct: float
    floor_pct: float
    level: int
    max_freq_pct: float
    status: ThermalStatus
    cpu_status: ThermalStatus
    gpu_status: ThermalStatus
    ambient_status: ThermalStatus
    cpu_sensor_ok: bool
    override_active: bool
    reasons: tuple[str, ...]
    # the cap the board's own safety loops set (heat, low battery), before an operator's
    # (or the fleet brain's power capping) cap lowers ``max_freq_pct`` further
    safety_freq_pct: float = 100.0

    @property
    def throttled(self) -> bool:
        """The board's own safety loops slow it: a cap an operator set is not throttling
        (the fleet brain caps clocks to keep a rack in budget and must not read its own cap
        back as heat)."""
        return self.safety_freq_pct < 100.0


INITIAL_THERMAL = ThermalDecision(
    fan_pct=0.0,
    floor_pct=0.0,
    level=-1,
    max_freq_pct=100.0,
    status=ThermalStatus.NORMAL,
    cpu_status=ThermalStatus.NORMAL,
    gpu_status=ThermalStatus.NORMAL,
    ambient_status=ThermalStatus.NORMAL,
    cpu_sensor_ok=True,
    override_active=False,
    reasons=(),
)


def throttle_cap(cpu_c: float, policy: ThermalPolicy, was_throttled: bool) -> float:
    """Frequency cap in % of full speed: progressive from the critical temperature to the
    hard limit, held until the CPU is 2 °C below critical again."""
    critical, hard = policy.cpu_critical_c, policy.cpu_hard_limit_c
    if cpu_c >= hard:
        return THROTTLE_HARD_PCT
    if cpu_c >= critical:
        frac = (cpu_c - critical) / (hard - critical) if hard > critical else 1.0
        return THROTTLE_FIRST_STEP_PCT - frac * (THROTTLE_FIRST_STEP_PCT - THROTTLE_HARD_PCT)
    if was_throttled and cpu_c >= critical - STATUS_HYSTERESIS_C:
        return THROTTLE_FIRST_STEP_PCT
    return 100.0


def decide_thermal(
    reading: ThermalReading,
    prev: ThermalDecision,
    policy: ThermalPolicy,
    override: FanOverride | None,
    now: float,
    *,
    shed_load: bool = False,
) -> ThermalDecision:
    """One step of the thermal loop: fan duty, frequency cap and status."""
    cpu = plausible(reading.cpu_temp_c)
    gpu = plausible(reading.gpu_temp_c)
    ambient = plausible(reading.ambient_temp_c)
    reasons: list[str] = []
    cpu_st = status_of(cpu, policy.cpu_warning_c, policy.cpu_critical_c, prev.cpu_status)
    gpu_st = status_of(gpu, policy.gpu_warning_c, policy.gpu_critical_c, prev.gpu_status)
    amb_st = status_of(
        ambient, policy.ambient_warning_c, policy.ambient_critical_c, prev.ambient_status
    )
    status = worst(cpu_st, gpu_st, amb_st)
    curve = profile_curve(policy)

    if cpu is None:
        # Fail safe: a board whose temperature is unknown is treated as hot.
        level = len(curve) - 1
        auto_pct, floor_pct, cap = 100.0, 100.0, SENSOR_LOST_CAP_PCT
        status = worst(status, ThermalStatus.WARNING)
        reasons.append("cpu temperature unavailable: fan at 100 %, frequency capped")
    else:
        level = curve_level(cpu, prev.level, curve, policy.hysteresis_c)
        auto_pct = pwm_to_pct(curve[level].pwm) if level >= 0 else 0.0
        if policy.profile is FanProfile.MAX:
            auto_pct = 100.0
        cap = throttle_cap(cpu, policy, prev.throttled and prev.cpu_sensor_ok)
        if status is ThermalStatus.CRITICAL:
            auto_pct = 100.0
            reasons.append("critical temperature: fan at 100 %")
        if auto_pct < policy.min_fan_pct:
            auto_pct = policy.min_fan_pct
            reasons.append(f"policy minimum: fan at least {policy.min_fan_pct:.0f} %")
        floor_pct = auto_pct if status is not ThermalStatus.NORMAL else policy.min_fan_pct
        if cap < 100.0:
            reasons.append(f"cpu at {cpu:.1f} °C: frequency capped at {cap:.0f} %")

    active = override is not None and override.until > now
    fan_pct = auto_pct
    if active and override is not None:
        fan_pct = max(override.percent, floor_pct)
        if fan_pct > override.percent:
            reasons.append(
                f"override {override.percent:.0f} % raised to the floor {floor_pct:.0f} %"
            )
    if shed_load:
        cap = min(cap, LOAD_SHED_CAP_PCT)
        reasons.append("low battery: load shed")
    return ThermalDecision(
        fan_pct=max(round(fan_pct, 1), policy.min_fan_pct),
        floor_pct=floor_pct,
        level=level,
        max_freq_pct=round(cap, 1),
        safety_freq_pct=round(cap, 1),
        status=status,
        cpu_status=cpu_st,
        gpu_status=gpu_st,
        ambient_status=amb_st,
        cpu_sensor_ok=cpu is not None,
        override_active=active,
        reasons=tuple(reasons),
    )


def apply_freq_floor(decision: ThermalDecision, min_freq_pct: float) -> ThermalDecision:
    """The board cannot run slower than ``min_freq_pct`` (a Pi 5: 62.5 %, cpuinfo_min_freq):
    a lower cap is applied as that floor, and the decision says so. The firmware's own
    throttling (80 °C soft, 85 °C hard on a Pi 5) still acts below it."""
    if not math.isfinite(min_freq_pct) or decision.max_freq_pct >= min_freq_pct:
        return decision
    return replace(
        decision,
        max_freq_pct=min_freq_pct,
        reasons=(
            *decision.reasons,
            f"frequency cap {decision.max_freq_pct:g} % is below the board's floor of "
            f"{min_freq_pct:g} %: applied as {min_freq_pct:g} %",
        ),
    )


def check_fan_override(
    percent: float, duration_s: float, current: ThermalDecision, policy: ThermalPolicy
) -> None:
    """Refuse an override that is malformed (422) or unsafe right now (409, says why)."""
    if not (math.isfinite(percent) and 0.0 <= percent <= 100.0):
        raise InvalidRequestError("percent must be between 0 and 100", field="percent")
    if not (math.isfinite(duration_s) and 1.0 <= duration_s <= policy.max_override_s):
        raise InvalidRequestError(
            f"duration_s must be between 1 and {policy.max_override_s:g}", field="duration_s"
        )
    if percent < policy.min_fan_pct:
        raise UnsafeOperationError(
            f"refused: the policy's minimum fan speed is {policy.min_fan_pct:.0f} %",
            floor_pct=max(policy.min_fan_pct, current.floor_pct),
            status=current.status.value,
        )
    if percent < current.floor_pct:
        raise UnsafeOperationError(
            f"refused: the board is {current.status.value} and the fan may not go below "
            f"{current.floor_pct:.0f} % until it cools down",
            floor_pct=current.floor_pct,
            status=current.status.value,
        )


def check_thermal_policy(policy: ThermalPolicy) -> None:
    """Refuse a thermal policy that would weaken the safety rules (409, says which field).

    The hard limit may not exceed the firmware's; the curve may not slow the fan as the
    board heats up, and must already run the fan at the warning temperature (otherwise the
    fan floor that protects a warm board would be zero).
    """
    if policy.cpu_hard_limit_c > FIRMWARE_HARD_LIMIT_C:
        raise UnsafeOperationError(
            f"refused: cpu_hard_limit_c {policy.cpu_hard_limit_c:g} °C is above the board's "
            f"firmware limit of {FIRMWARE_HARD_LIMIT_C:g} °C",
            path="thermal.cpu_hard_limit_c",
            limit_c=FIRMWARE_HARD_LIMIT_C,
        )
    pwms = [p.pwm for p in policy.curve]
    if any(b < a for a, b in itertools.pairwise(pwms)):
        raise UnsafeOperationError(
            "refused: the fan curve slows the fan as the temperature rises",
            path="thermal.curve",
        )
    at_warning = [p.pwm for p in policy.curve if p.temp_c <= policy.cpu_warning_c]
    if policy.profile is not FanProfile.MAX and max(at_warning, default=0) == 0:
        raise UnsafeOperationError(
            f"refused: the fan curve does not run the fan at the warning temperature "
            f"({policy.cpu_warning_c:g} °C), which would remove the fan floor",
            path="thermal.curve",
        )


def check_power_policy(policy: PowerPolicy) -> None:
    """Refuse a power policy that would let the battery run flat before shutting down."""
    if policy.critical_battery_pct < MIN_CRITICAL_BATTERY_PCT:
        raise UnsafeOperationError(
            f"refused: critical_battery_pct {policy.critical_battery_pct:g} % is below "
            f"{MIN_CRITICAL_BATTERY_PCT:g} %, too little to shut down gracefully",
            path="power.critical_battery_pct",
        )


def check_freq_cap(max_freq_pct: float | None) -> None:
    """An operator's frequency cap: 40-100 % of full speed, or ``None`` to lift it."""
    if max_freq_pct is None:
        return
    if not (math.isfinite(max_freq_pct) and THROTTLE_HARD_PCT <= max_freq_pct <= 100.0):
        raise InvalidRequestError(
            f"max_freq_pct must be between {THROTTLE_HARD_PCT:g} and 100", field="max_freq_pct"
        )


# ----------------------------------------------------------------------------- power


class BatteryAction(StrEnum):
    NONE = "none"
    SHED_LOAD = "shed_load"
    SHUTDOWN = "shutdown"


def choose_source(reading: PowerReading, policy: PowerPolicy) -> PowerSource:
    """Failover order MAIN → BATTERY → SOLAR (SOLAR before BATTERY if the policy says so)."""
    order = [PowerSource.MAIN, PowerSource.BATTERY, PowerSource.SOLAR]
    if policy.prefer_solar_over_battery:
        order = [PowerSource.MAIN, PowerSource.SOLAR, PowerSource.BATTERY]
    for source in order:
        if source is PowerSource.BATTERY and not (
            reading.battery_healthy and (reading.battery_pct or 0.0) > 0.0
        ):
            continue
        if reading.available(source):
            return source
    return reading.source


def battery_action(
    reading: PowerReading, policy: PowerPolicy, prev: BatteryAction
) -> BatteryAction:
    """On battery: shed load at the low level, shut down at the critical level.

    Load shedding ends 5 points above the low level or when the board leaves its battery;
    a shutdown, once decided, is never taken back.
    """
    if prev is BatteryAction.SHUTDOWN:
        return prev
    pct = reading.battery_pct
    if reading.source is not PowerSource.BATTERY or pct is None:
        return BatteryAction.NONE
    if pct <= policy.critical_battery_pct:
        return BatteryAction.SHUTDOWN
    if pct <= policy.low_battery_pct:
        return BatteryAction.SHED_LOAD
    if prev is BatteryAction.SHED_LOAD and pct <= policy.low_battery_pct + 5.0:
        return BatteryAction.SHED_LOAD
    return BatteryAction.NONE
