"""The immutable ``Snapshot`` of one sampling step, and its JSON form (``GET /v1/state``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wrale.metal.core.control import BatteryAction, FanOverride, ThermalDecision
from wrale.metal.core.security import SecurityState
from wrale.metal.core.supply import SupplyStats
from wrale.metal.hw.base import (
    FanReading,
    LineState,
    PowerReading,
    PowerSource,
    StorageReading,
    TamperReading,
    ThermalReading,
    ThrottleReading,
)
from wrale.shared.policy import FanProfile

NO_STORAGE = StorageReading()


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the board sensed and decided in one step; never mutated afterwards."""

    seq: int
    at: float  # wall time, seconds since the epoch
    thermal: ThermalReading
    fan: FanReading
    throttle: ThrottleReading
    power: PowerReading
    tamper: TamperReading
    gpio: dict[str, LineState]
    decision: ThermalDecision
    profile: FanProfile
    override: FanOverride | None
    override_remaining_s: float | None
    battery_action: BatteryAction
    supply: SupplyStats
    security: SecurityState
    available: dict[str, bool]
    fan_failed: bool
    last_tamper_at: float | None
    freq_cap_pct: float | None = None  # the operator's frequency cap, if any
    storage: StorageReading = NO_STORAGE  # the eMMC's wear estimate, if any

    def thermal_dict(self) -> dict[str, Any]:
        d = self.decision
        warnings = list(d.reasons)
        for name, status in (
            ("cpu", d.cpu_status),
            ("gpu", d.gpu_status),
            ("ambient", d.ambient_status),
        ):
            if status.value != "normal":
                warnings.append(f"{name} temperature {status.value}")
        if self.fan_failed:
            warnings.append("fan not spinning as commanded")
        return {
            "cpu_temp_c": _r(self.thermal.cpu_temp_c),
            "gpu_temp_c": _r(self.thermal.gpu_temp_c),
            "ambient_temp_c": _r(self.thermal.ambient_temp_c),
            "fan_percent": d.fan_pct,
            "fan_rpm": _r(self.fan.rpm, 0),
            "fan_floor_percent": d.floor_pct,
            "fan_failed": self.fan_failed,
            "throttled": d.throttled,
            "max_freq_pct": d.max_freq_pct,
            "freq_cap_pct": self.freq_cap_pct,
            "status": d.status.value,
            "profile": self.profile.value,
            "override": None
            if self.override is None or not d.override_active
            else {"percent": self.override.percent, "remaining_s": self.override_remaining_s},
            "firmware_throttle": {
                "under_voltage_now": self.throttle.under_voltage_now,
                "throttled_now": self.throttle.throttled_now,
                "soft_temp_limit_now": self.throttle.soft_temp_limit_now,
                "under_voltage_occurred": self.throttle.under_voltage_occurred,
                "throttled_occurred": self.throttle.throttled_occurred,
            },
            "sensor_ok": d.cpu_sensor_ok,
            "warnings": warnings,
        }

    def power_dict(self) -> dict[str, Any]:
        p, s = self.power, self.supply
        return {
            "source": p.source.value,
            "battery_pct": _r(p.battery_pct),
            "charging": p.battery_charging,
            "battery_healthy": p.battery_healthy,
            "battery_health_pct": _r(p.battery_health_pct),
            "voltage_v": _r(p.voltage_v, 3),
            "current_a": _r(p.current_a, 3),
            "power_w": _r(p.power_w, 2),
            "available": {
                src.value: p.available(src)
                for src in PowerSource
                if any(r.source is src for r in p.sources)
            },
            "sources": [
                {
                    "source": r.source.value,
                    "available": r.available,
                    "voltage_v": _r(r.voltage_v, 3),
                    "power_w": _r(r.power_w, 2),
                }
                for r in p.sources
            ],
            "battery_action": self.battery_action.value,
            "stability": {
                "window_samples": s.samples,
                "min_voltage_v": s.min_voltage_v,
                "max_voltage_v": s.max_voltage_v,
                "mean_voltage_v": s.mean_voltage_v,
                "ripple_v": s.ripple_v,
                "mean_current_a": s.mean_current_a,
                "max_current_a": s.max_current_a,
                "current_spikes": s.current_spikes,
                "power_cycles": s.power_cycles,
            },
        }

    def storage_dict(self) -> dict[str, Any]:
        return {
            "emmc_life_used_pct": self.storage.emmc_life_used_pct,
            "emmc_pre_eol": self.storage.emmc_pre_eol,
        }

    def security_dict(self) -> dict[str, Any]:
        t = self.tamper
        return {
            "case_open": t.case_open,
            "motion_detected": t.motion_detected,
            "voltage_normal": t.voltage_normal,
            "armed": self.security.armed,
            "level": self.security.level.value,
            "lockdown": self.security.lockdown,
            "last_tamper_at": self.last_tamper_at,
        }

    def gpio_dict(self) -> dict[str, Any]:
        return {
            name: {k: v for k, v in line_dict(st, name).items() if k != "name"}
            for name, st in self.gpio.items()
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "thermal": self.thermal_dict(),
            "power": self.power_dict(),
            "storage": self.storage_dict(),
            "security": self.security_dict(),
            "gpio": self.gpio_dict(),
            "available": self.available,
            "seq": self.seq,
            "updated_at": self.at,
        }


def line_dict(st: LineState, name: str | None) -> dict[str, Any]:
    """One GPIO line as the API shows it."""
    return {
        "name": name,
        "line": st.line,
        "direction": st.config.direction.value,
        "pull": st.config.pull.value,
        "edge": st.config.edge.value,
        "value": st.value,
        "pwm": None
        if st.pwm_frequency_hz is None
        else {"frequency_hz": st.pwm_frequency_hz, "duty_percent": st.pwm_duty_pct},
    }


def _r(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)
