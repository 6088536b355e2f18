"""Policy documents: thermal, power and security settings of a board.

The same documents are set in a device's configuration file, and later arrive from the
fleet as desired state. They are data only; the control laws that apply them live in
``wrale.metal.core.control``.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from msgspec import Meta

from wrale.shared.structs import Doc


class FanProfile(StrEnum):
    """How the fan curve is bent: quieter and warmer, or cooler and louder."""

    QUIET = "quiet"
    BALANCE = "balance"
    COOL = "cool"
    MAX = "max"


class SecurityLevel(StrEnum):
    """What a tamper event triggers: LOW an event, MEDIUM an alert, HIGH a lockdown."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class CurvePoint(Doc, frozen=True):
    """Above ``temp_c`` the fan runs at least at ``pwm`` (0-255, as the Pi firmware counts)."""

    temp_c: Annotated[float, Meta(ge=-40, le=150)]
    pwm: Annotated[int, Meta(ge=0, le=255)]


# Raspberry Pi 5 firmware fan curve (DESIGN.md §5).
PI5_FAN_CURVE: tuple[CurvePoint, ...] = (
    CurvePoint(temp_c=50.0, pwm=75),
    CurvePoint(temp_c=60.0, pwm=125),
    CurvePoint(temp_c=67.5, pwm=175),
    CurvePoint(temp_c=75.0, pwm=250),
)


class ThermalPolicy(Doc, frozen=True):
    """Fan curve, profile, fan floor and the warning / critical thresholds of each sensor."""

    profile: FanProfile = FanProfile.BALANCE
    curve: tuple[CurvePoint, ...] = PI5_FAN_CURVE
    min_fan_pct: Annotated[
        float, Meta(ge=0, le=100, description="fan duty that always applies (dusty sites)")
    ] = 0.0
    hysteresis_c: Annotated[float, Meta(ge=0, le=20)] = 5.0
    cpu_warning_c: Annotated[float, Meta(ge=0, le=120)] = 70.0
    cpu_critical_c: Annotated[float, Meta(ge=0, le=120)] = 80.0
    cpu_hard_limit_c: Annotated[float, Meta(ge=0, le=125)] = 85.0
    gpu_warning_c: Annotated[float, Meta(ge=0, le=120)] = 70.0
    gpu_critical_c: Annotated[float, Meta(ge=0, le=120)] = 80.0
    ambient_warning_c: Annotated[float, Meta(ge=-40, le=100)] = 40.0
    ambient_critical_c: Annotated[float, Meta(ge=-40, le=100)] = 50.0
    max_override_s: Annotated[float, Meta(gt=0, le=86400)] = 3600.0
    fan_stall_rpm: Annotated[float, Meta(ge=0, description="below this with duty >= 30 %")] = 300.0

    def check(self) -> None:
        if not self.curve:
            raise ValueError("curve needs at least one point")
        temps = [p.temp_c for p in self.curve]
        if temps != sorted(temps) or len(set(temps)) != len(temps):
            raise ValueError("curve temperatures must rise strictly")
        if not self.cpu_warning_c < self.cpu_critical_c <= self.cpu_hard_limit_c:
            raise ValueError("need cpu_warning_c < cpu_critical_c <= cpu_hard_limit_c")
        if not self.gpu_warning_c < self.gpu_critical_c:
            raise ValueError("need gpu_warning_c < gpu_critical_c")
        if not self.ambient_warning_c < self.ambient_critical_c:
            raise ValueError("need ambient_warning_c < ambient_critical_c")


class PowerPolicy(Doc, frozen=True):
    """Battery levels, supply limits and the sliding window of the stability metrics."""

    low_battery_pct: Annotated[float, Meta(ge=0, le=100)] = 20.0
    critical_battery_pct: Annotated[float, Meta(ge=0, le=100)] = 10.0
    nominal_voltage_v: Annotated[float, Meta(gt=0, le=60)] = 5.0
    critical_voltage_v: Annotated[float, Meta(gt=0, le=60)] = 4.8
    ripple_limit_v: Annotated[float, Meta(gt=0, le=10, description="peak to peak")] = 0.25
    current_spike_ratio: Annotated[float, Meta(gt=1, le=20)] = 1.8
    window_s: Annotated[float, Meta(ge=5, le=3600)] = 60.0
    prefer_solar_over_battery: bool = False

    def check(self) -> None:
        if self.critical_battery_pct >= self.low_battery_pct:
            raise ValueError("need critical_battery_pct < low_battery_pct")
        if self.critical_voltage_v >= self.nominal_voltage_v:
            raise ValueError("need critical_voltage_v < nominal_voltage_v")


_QUIET_HOURS = re.compile(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)")


def parse_quiet_hours(value: str) -> tuple[int, int]:
    """Start and end of ``"HH:MM-HH:MM"`` in minutes after midnight; ValueError if malformed."""
    match = _QUIET_HOURS.fullmatch(value)
    if match is None:
        raise ValueError(
            f"quiet_hours must be 'HH:MM-HH:MM' in 24-hour time, e.g. '22:00-06:00', not {value!r}"
        )
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end:
        raise ValueError("quiet_hours must not start and end at the same time")
    return start, end


def _check_quiet_hours(value: Any) -> None:
    parse_quiet_hours(value)


class SecurityPolicy(Doc, frozen=True):
    """Tamper detection: armed state, level, quiet hours, debounce and flapping detection.

    ``quiet_hours`` ("HH:MM-HH:MM", board local time, may wrap midnight) limits motion
    tamper to those hours; outside them motion is only noted. ``None``: always armed.
    """

    # A rule of the field, not across fields: the fleet validates each field alone.
    FIELD_CHECKS: ClassVar[dict[str, Any]] = {"quiet_hours": _check_quiet_hours}

    armed: bool = True
    level: SecurityLevel = SecurityLevel.MEDIUM
    debounce_s: Annotated[float, Meta(ge=0, le=60)] = 0.5
    rapid_transitions: Annotated[int, Meta(ge=2, le=1000)] = 6
    rapid_window_s: Annotated[float, Meta(gt=0, le=3600)] = 30.0
    quiet_hours: str | None = None


def in_quiet_hours(policy: SecurityPolicy, hour: int, minute: int) -> bool:
    """Whether ``hour:minute`` (board local time) falls in the quiet hours: start included,
    end excluded, wrapping midnight when the end is earlier. False when none are set."""
    if policy.quiet_hours is None:
        return False
    start, end = parse_quiet_hours(policy.quiet_hours)
    now = hour * 60 + minute
    if start < end:
        return start <= now < end
    return now >= start or now < end
