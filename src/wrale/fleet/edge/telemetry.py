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
    ("case_open", "security", "case_open"),
    ("motion", "security", "motion_detected"),
    ("lockdown", "security", "lockdown"),
)
METRICS = (*(f[0] for f in _FIELDS), "on_battery")


def _value(v: Any) -> float | None:
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if isinstance(v, int | float) and math.isfinite(v):
        return float(v)
    return None


def points(state: Mapping[str, Any]) -> list[Point]:
    """``[metric, ts, value]`` of every reading the state has (a failed sensor: none)."""
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
