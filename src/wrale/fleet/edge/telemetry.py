"""Telemetry points from one metald state (``GET /v1/state`` / ``Snapshot.to_dict``) and
the protocol form of a metald event. Pure; every metric name says its unit (``_c``,
``_pct``, ``_rpm``, ``_v``, ``_a``, ``_w``) or is a 0/1 flag."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

Point = tuple[str, float, float]

# (metric, section, key): numbers as they are; booleans become 0/1
_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("cpu_temp_c", "thermal", "cpu_temp_c"),
    ("gpu_temp_c", "thermal", "gpu_temp_c"),
    ("ambient_temp_c", "thermal", "ambient_temp_c"),
    ("fan_pct", "thermal", "fan_percent"),
    ("fan_rpm", "thermal", "fan_rpm"),
    ("fan_floor_pct", "thermal", "fan_floor_percent"),
    ("cpu_freq_pct", "thermal", "max_freq_pct"),
    ("throttled", "thermal", "throttled"),
    ("battery_pct", "power", "battery_pct"),
    ("voltage_v", "power", "voltage_v"),
    ("current_a", "power", "current_a"),
    ("power_w", "power", "power_w"),
    ("charging", "power", "charging"),
    ("battery_health_pct", "power", "battery_health_pct"),
    ("emmc_life_used_pct", "storage", "emmc_life_used_pct"),
    ("emmc_pre_eol", "storage", "emmc_pre_eol"),
    ("case_open", "security", "case_open"),
    ("motion", "security", "motion_detected"),
    ("lockdown", "security", "lockdown"),
)
METRICS = (*(f[0] for f in _FIELDS), "on_battery", "under_voltage")


def _value(v: Any) -> float | None:
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if isinstance(v, int | float) and math.isfinite(v):
        return float(v)
    return None


def _under_voltage(state: Mapping[str, Any], previous: Mapping[str, Any] | None) -> float | None:
    """1 when the firmware shows under-voltage now (``get_throttled`` bit 0) or its
    "since boot" latch (bit 16) is set now but was not in ``previous`` (a dip between two
    samples); 0 otherwise; ``None`` without the flags. With no previous state (the agent's
    first sample) the latch is not counted: it may have been reported before a restart."""
    flags = _firmware(state)
    if flags is None or not isinstance(flags.get("under_voltage_now"), bool):
        return None
    if flags["under_voltage_now"]:
        return 1.0
    before = _firmware(previous) if previous is not None else None
    latched = flags.get("under_voltage_occurred") is True
    was = before is not None and before.get("under_voltage_occurred") is True
    return 1.0 if latched and before is not None and not was else 0.0


def _firmware(state: Mapping[str, Any]) -> Mapping[str, Any] | None:
    thermal = state.get("thermal")
    flags = thermal.get("firmware_throttle") if isinstance(thermal, Mapping) else None
    return flags if isinstance(flags, Mapping) else None


def points(state: Mapping[str, Any], previous: Mapping[str, Any] | None = None) -> list[Point]:
    """``[metric, ts, value]`` of every reading the state has (a failed sensor: none);
    ``previous``: the state of the agent's last sample (for ``under_voltage``)."""
    ts = state.get("updated_at")
    if not isinstance(ts, int | float):
        return []
    out: list[Point] = []
    for metric, section, key in _FIELDS:
        part = state.get(section)
        if isinstance(part, Mapping):
            v = _value(part.get(key))
            if v is not None:
                out.append((metric, float(ts), v))
    power = state.get("power")
    if isinstance(power, Mapping) and isinstance(power.get("source"), str):
        out.append(("on_battery", float(ts), 1.0 if power["source"] == "battery" else 0.0))
    under_voltage = _under_voltage(state, previous)
    if under_voltage is not None:
        out.append(("under_voltage", float(ts), under_voltage))
    return out


def protocol_event(e: Mapping[str, Any]) -> dict[str, Any]:
    """A metald event (``id, type, severity, at, message, data``) as the protocol sends it
    (``ts, type, severity, message, data``)."""
    data = e.get("data")
    return {
        "ts": float(e.get("at") or 0.0),
        "type": str(e.get("type", "UNKNOWN"))[:64],
        "severity": str(e.get("severity", "info"))[:16],
        "message": str(e.get("message", "")),
        "data": dict(data) if isinstance(data, Mapping) else {},
    }
