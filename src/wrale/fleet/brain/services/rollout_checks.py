"""Checks of a rollout's input (pure, total: any input is clean or an
``InvalidRequestError`` naming its field): its name, waves and gate limits."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from wrale.fleet.brain.decisions import gates as gate_core
from wrale.fleet.brain.decisions import waves as wave_core
from wrale.shared.errors import InvalidRequestError

DEFAULT_OBSERVE_S = 60.0
MAX_OBSERVE_S = 7 * 86400.0
MAX_BOARDS = 5000
RATE_WAVE_S = 60.0
GATE_NUMBERS = {
    "max_failure_pct": (0.0, 100.0),
    "max_temp_rise_c": (0.0, 100.0),
    "max_power_rise_w": (0.0, 1000.0),
    "observe_s": (0.0, MAX_OBSERVE_S),
    "max_offline": (0.0, float(MAX_BOARDS)),
    "max_alerts": (0.0, 1e6),
    "max_fan_anomalies": (0.0, float(MAX_BOARDS)),
}


def bad(field: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(f"{field}: {message}", field=field)


# ----------------------------------------------------------------------------- checks


def check_gates(raw: Any) -> dict[str, Any]:
    """Clean gate limits from hostile input (unknown keys and bad numbers are 422)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise bad("gates", "an object")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "allow_new_throttling":
            if not isinstance(value, bool):
                raise bad("gates.allow_new_throttling", "true or false")
            out[key] = value
            continue
        if key not in GATE_NUMBERS:
            known = ", ".join([*GATE_NUMBERS, "allow_new_throttling"])
            raise bad("gates", f"unknown key {str(key)[:40]!r}; known: {known}")
        if value is None:
            out[key] = None
            continue
        lo, hi = GATE_NUMBERS[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad(f"gates.{key}", "a number")
        if not math.isfinite(value) or not lo <= value <= hi:
            raise bad(f"gates.{key}", f"a number from {lo:g} to {hi:g}")
        out[key] = float(value)
    out.setdefault("observe_s", DEFAULT_OBSERVE_S)
    return out


def limits_of(gates: dict[str, Any]) -> gate_core.Limits:
    """The pure gate's limits from stored gates (missing: the defaults)."""

    def pick(key: str, default: float | None) -> float | None:
        return gates.get(key, default)

    offline, alerts = pick("max_offline", gate_core.DEFAULT_MAX_OFFLINE), pick("max_alerts", None)
    fans = pick("max_fan_anomalies", gate_core.DEFAULT_MAX_FAN_ANOMALIES)
    return gate_core.Limits(
        max_failure_pct=pick("max_failure_pct", gate_core.DEFAULT_MAX_FAILURE_PCT),
        max_temp_rise_c=pick("max_temp_rise_c", gate_core.DEFAULT_MAX_TEMP_RISE_C),
        max_offline=None if offline is None else int(offline),
        max_power_rise_w=pick("max_power_rise_w", None),
        max_alerts=None if alerts is None else int(alerts),
        max_fan_anomalies=None if fans is None else int(fans),
        allow_new_throttling=bool(gates.get("allow_new_throttling", False)),
    )


def check_waves(raw: Any) -> dict[str, Any]:
    """``[steps…]``, ``{"steps": […], "one_per_rack_first"?, "max_per_rack"?,
    "max_per_feed"?}`` or ``{"rate": {"base_per_minute", "increment_factor",
    "after_succeeded", "max_per_minute"?}, "one_per_rack_first"?, "max_per_rack"?,
    "max_per_feed"?}``."""
    if raw is None:
        raw = [{"percent": 100}]
    spec = raw if isinstance(raw, dict) else {"steps": raw}
    unknown = set(spec) - {"steps", "rate", "one_per_rack_first", "max_per_rack", "max_per_feed"}
    if unknown:
        raise bad("waves", f"unknown key(s) {', '.join(sorted(map(str, unknown)))[:80]}")
    if "steps" in spec and "rate" in spec:
        raise bad("waves", "steps or rate, not both")
    try:
        if "rate" in spec:
            rate: dict[str, Any] | None = wave_core.parse_rate(spec["rate"]).as_dict()
            steps: list[dict[str, Any]] | None = None
        else:
            rate = None
            steps = [
                {"count": s.count} if s.count is not None else {"percent": s.percent}
                for s in wave_core.parse_steps(spec.get("steps"))
            ]
    except wave_core.WaveSpecError as e:
        raise InvalidRequestError(str(e), field=e.field) from e
    first = spec.get("one_per_rack_first", False)
    if not isinstance(first, bool):
        raise bad("waves.one_per_rack_first", "true or false")
    caps: dict[str, int | None] = {}
    for key in ("max_per_rack", "max_per_feed"):
        cap = spec.get(key)
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise bad(f"waves.{key}", "an integer of 1 or more")
        caps[key] = cap
    out: dict[str, Any] = {"one_per_rack_first": first, **caps}
    if rate is not None:
        out["rate"] = rate
    else:
        out["steps"] = steps
    return out


def plan(
    boards: dict[str, str | None],
    spec: dict[str, Any],
    feeds: Mapping[str, str] | None = None,
) -> list[list[str]]:
    """The waves of a checked ``spec`` (``check_waves``) over ``boards`` (device id → rack
    id); ``feeds``: device id → its rack's power feed."""
    first, cap = bool(spec.get("one_per_rack_first")), spec.get("max_per_rack")
    per_feed = spec.get("max_per_feed")
    if spec.get("rate") is not None:
        return wave_core.plan_rate_waves(
            boards,
            wave_core.parse_rate({k: v for k, v in spec["rate"].items() if v is not None}),
            one_per_rack_first=first,
            max_per_rack=cap,
            feeds=feeds,
            max_per_feed=per_feed,
        )
    return wave_core.plan_waves(
        boards,
        wave_core.parse_steps(spec["steps"]),
        one_per_rack_first=first,
        max_per_rack=cap,
        feeds=feeds,
        max_per_feed=per_feed,
    )


def min_observe_s(spec: dict[str, Any]) -> float:
    """A rate's waves are a minute's worth of boards each: none is judged (and the next
    started) before a minute of observation."""
    return RATE_WAVE_S if spec.get("rate") is not None else 0.0


def check_name(raw: Any) -> str:
    if not isinstance(raw, str):
        raise bad("name", "a string of 1–100 characters")
    clean = "".join(ch if ch.isprintable() else " " for ch in raw).strip()
    if not 0 < len(clean) <= 100:
        raise bad("name", "a string of 1–100 characters")
    return clean
