"""Policy documents: thermal, power and security settings of a board.

The same documents are set in a device's configuration file, and later arrive from the
fleet as desired state. They are data only; the control laws that apply them live in
``wrale.metal.core.control``.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator


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


class _Doc(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CurvePoint(_Doc):
    """Above ``temp_c`` the fan runs at least at ``pwm`` (0-255, as the Pi firmware counts)."""

    temp_c: float = Field(ge=-40, le=150)
    pwm: int = Field(ge=0, le=255)


# Raspberry Pi 5 firmware fan curve (DESIGN.md §5).
PI5_FAN_CURVE: tuple[CurvePoint, ...] = (
    CurvePoint(temp_c=50.0, pwm=75),
    CurvePoint(temp_c=60.0, pwm=125),
    CurvePoint(temp_c=67.5, pwm=175),
    CurvePoint(temp_c=75.0, pwm=250),
)


class ThermalPolicy(_Doc):
    """Fan curve, profile, fan floor and the warning / critical thresholds of each sensor."""

    profile: FanProfile = FanProfile.BALANCE
    curve: tuple[CurvePoint, ...] = PI5_FAN_CURVE
    min_fan_pct: float = Field(
        default=0.0, ge=0, le=100, description="fan duty that always applies (dusty sites)"
    )
    hysteresis_c: float = Field(default=5.0, ge=0, le=20)
    cpu_warning_c: float = Field(default=70.0, ge=0, le=120)
    cpu_critical_c: float = Field(default=80.0, ge=0, le=120)
    cpu_hard_limit_c: float = Field(default=85.0, ge=0, le=125)
    gpu_warning_c: float = Field(default=70.0, ge=0, le=120)
    gpu_critical_c: float = Field(default=80.0, ge=0, le=120)
    ambient_warning_c: float = Field(default=40.0, ge=-40, le=100)
    ambient_critical_c: float = Field(default=50.0, ge=-40, le=100)
    max_override_s: float = Field(default=3600.0, gt=0, le=86400)
    fan_stall_rpm: float = Field(default=300.0, ge=0, description="below this with duty >= 30 %")

    @model_validator(mode="after")
    def _ordered(self) -> ThermalPolicy:
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
        return self


class PowerPolicy(_Doc):
    """Battery levels, supply limits and the sliding window of the stability metrics."""

    low_battery_pct: float = Field(default=20.0, ge=0, le=100)
    critical_battery_pct: float = Field(default=10.0, ge=0, le=100)
    nominal_voltage_v: float = Field(default=5.0, gt=0, le=60)
    critical_voltage_v: float = Field(default=4.8, gt=0, le=60)
    ripple_limit_v: float = Field(default=0.25, gt=0, le=10, description="peak to peak")
    current_spike_ratio: float = Field(default=1.8, gt=1, le=20)
    window_s: float = Field(default=60.0, ge=5, le=3600)
    prefer_solar_over_battery: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> PowerPolicy:
        if self.critical_battery_pct >= self.low_battery_pct:
            raise ValueError("need critical_battery_pct < low_battery_pct")
        if self.critical_voltage_v >= self.nominal_voltage_v:
            raise ValueError("need critical_voltage_v < nominal_voltage_v")
        return self


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


def _check_quiet_hours(value: str) -> str:
    parse_quiet_hours(value)
    return value


# In the type, not a model validator: the fleet validates each field of a document alone.
QuietHours = Annotated[str, AfterValidator(_check_quiet_hours)]


class SecurityPolicy(_Doc):
    """Tamper detection: armed state, level, quiet hours, debounce and flapping detection.

    ``quiet_hours`` ("HH:MM-HH:MM", board local time, may wrap midnight) limits motion
    tamper to those hours; outside them motion is only noted. ``None``: always armed.
    """

    armed: bool = True
    level: SecurityLevel = SecurityLevel.MEDIUM
    debounce_s: float = Field(default=0.5, ge=0, le=60)
    rapid_transitions: int = Field(default=6, ge=2, le=1000)
    rapid_window_s: float = Field(default=30.0, gt=0, le=3600)
    quiet_hours: QuietHours | None = None


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
