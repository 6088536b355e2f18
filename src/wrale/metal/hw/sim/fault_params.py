"""Checks a requested fault: known kind, known parameters in range, defaults filled in.

``normalize`` is pure; a bad request becomes an ``InvalidRequestError`` that names the
fault kind and the parameter, so ``/v1/sim`` can hand the message straight back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from wrale.metal.hw.base import Fault, FaultKind
from wrale.metal.hw.sim.checks import check_number
from wrale.shared.errors import InvalidRequestError

SENSORS = ("cpu", "gpu", "ambient")
SENSOR_MODES = ("stuck", "range", "missing")
FAN_MODES = ("stalled", "degraded")
PLAUSIBLE_C = (-40.0, 150.0)  # a "range" failure reads outside this band
DEFAULT_RANGE_C = -273.15
MAX_DURATION_S = 10 * 365 * 86400.0

# Allowed params of each kind, and the default duration of kinds that end by themselves.
_PARAMS: dict[FaultKind, frozenset[str]] = {
    FaultKind.FAN_FAILURE: frozenset({"mode", "rpm_factor"}),
    FaultKind.HEAT_SPIKE: frozenset({"watts"}),
    FaultKind.AMBIENT_CHANGE: frozenset({"celsius"}),
    FaultKind.MAIN_POWER_LOSS: frozenset(),
    FaultKind.VOLTAGE_SAG: frozenset({"voltage_v"}),
    FaultKind.BATTERY_FAILURE: frozenset(),
    FaultKind.CASE_OPEN: frozenset(),
    FaultKind.MOTION: frozenset(),
    FaultKind.SENSOR_FAILURE: frozenset({"sensor", "mode", "value_c"}),
    FaultKind.FAN_WEAR: frozenset({"rate_pct_per_day", "onset_in_s"}),
    FaultKind.DUST: frozenset({"rate_pct_per_day", "onset_in_s"}),
    FaultKind.BATTERY_FADE: frozenset({"rate_pct_per_day", "onset_in_s"}),
    FaultKind.EMMC_WEAR: frozenset({"rate_pct_per_day", "onset_in_s"}),
}
# Slow faults last until cleared; their default rates, % per day.
WEAR_RATES = {
    FaultKind.FAN_WEAR: 2.0,
    FaultKind.DUST: 2.0,
    FaultKind.BATTERY_FADE: 0.5,
    FaultKind.EMMC_WEAR: 1.0,
}
MAX_WEAR_RATE = 50.0
_DEFAULT_DURATION_S: dict[FaultKind, float] = {FaultKind.HEAT_SPIKE: 60.0, FaultKind.MOTION: 5.0}


def normalize(fault: Fault) -> Fault:
    """The fault with its kind checked, its params validated and defaulted, and its duration
    resolved (``duration_s`` may be given in params or on the fault, not differently)."""
    try:
        kind = FaultKind(fault.kind)
    except ValueError:
        known = ", ".join(k.value for k in FaultKind)
        raise InvalidRequestError(f"unknown fault kind {fault.kind!r} (known: {known})") from None
    if not isinstance(fault.params, Mapping):
        raise InvalidRequestError(f"{kind.value}: params must be a mapping", kind=kind.value)
    params = dict(fault.params)
    duration = _duration(kind, params.pop("duration_s", None), fault.duration_s)
    unknown = sorted(set(params) - _PARAMS[kind])
    if unknown:
        allowed = ", ".join(sorted(_PARAMS[kind] | {"duration_s"}))
        raise InvalidRequestError(
            f"{kind.value}: unknown parameter(s) {', '.join(unknown)} (allowed: {allowed})",
            kind=kind.value,
        )
    return Fault(
        kind=kind, params=_PARAM_CHECKS.get(kind, _no_params)(kind, params), duration_s=duration
    )


def _duration(kind: FaultKind, in_params: Any, on_fault: float | None) -> float | None:
    values = [
        check_number(f"{kind.value}: duration_s", v, 0.0, MAX_DURATION_S, kind=kind.value)
        for v in (in_params, on_fault)
        if v is not None
    ]
    if len(values) == 2 and not math.isclose(values[0], values[1]):
        raise InvalidRequestError(
            f"{kind.value}: duration_s given twice with different values", kind=kind.value
        )
    if values and kind in WEAR_RATES:
        raise InvalidRequestError(
            f"{kind.value}: a slow fault lasts until cleared", kind=kind.value
        )
    if values and values[0] <= 0:
        raise InvalidRequestError(f"{kind.value}: duration_s must be positive", kind=kind.value)
    return values[0] if values else _DEFAULT_DURATION_S.get(kind)


def _choice(
    kind: FaultKind, params: dict[str, Any], key: str, choices: tuple[str, ...], default: str
) -> str:
    value = params.get(key, default)
    if value not in choices:
        raise InvalidRequestError(
            f"{kind.value}: {key} must be one of {', '.join(choices)}, got {value!r}",
            kind=kind.value,
        )
    return str(value)


def _no_params(kind: FaultKind, params: dict[str, Any]) -> dict[str, Any]:
    return {}


def _fan(kind: FaultKind, params: dict[str, Any]) -> dict[str, Any]:
    mode = _choice(kind, params, "mode", FAN_MODES, "stalled")
    factor = check_number(
        f"{kind.value}: rpm_factor", params.get("rpm_factor", 0.3), 0.0, 1.0, kind=kind.value
    )
    return {"mode": mode, "rpm_factor": factor}


def _heat(kind: FaultKind, params: dict[str, Any]) -> dict[str, Any]:
    watts = check_number(
        f"{kind.value}: watts", params.get("watts", 5.0), 0.0, 100.0, kind=kind.value
    )
    return {"watts": watts}


def _ambient(kind: FaultKind, params: dict[str, Any]) -> dict[str, Any]:
    if "celsius" not in params:
        raise InvalidRequestError(f"{kind.value}: parameter celsius is required", kind=kind.value)
    return {
        "celsius": check_number(
            f"{kind.value}: celsius", params["celsius"], -40.0, 80.0, kind=kind.value
        )
    }


def _sag(kind: FaultKind, params: dict[str, Any]) -> dict[str, Any]:
    volts = check_number(
        f"{kind.value}: voltage_v", params.get("voltage_v", 4.6), 4.0, 5.1, kind=kind.value
    )
    return {"voltage_v": volts}


def _sensor(kind: FaultKind, params: dict[str, Any]) -> dict[str, Any]:
    sensor = _choice(kind, params, "sensor", SENSORS, "cpu")
    mode = _choice(kind, params, "mode", SENSOR_MODES, "missing")
    out: dict[str, Any] = {"sensor": sensor, "mode": mode}
    value = params.get("value_c")
    if mode == "missing" and value is not None:
        raise InvalidRequestError(f"{kind.value}: a missing sensor has no value_c", kind=kind.value)
    if mode == "range":
        value = DEFAULT_RANGE_C if value is None else value
        value = check_number(f"{kind.value}: value_c", value, -1000.0, 1000.0, kind=kind.value)
        if PLAUSIBLE_C[0] <= value <= PLAUSIBLE_C[1]:
            raise InvalidRequestError(
                f"{kind.value}: value_c of a range failure must lie outside "
                f"{PLAUSIBLE_C[0]:g}..{PLAUSIBLE_C[1]:g} °C, got {value:g}",
                kind=kind.value,
            )
    elif mode == "stuck" and value is not None:
        value = check_number(f"{kind.value}: value_c", value, -1000.0, 1000.0, kind=kind.value)
    if value is not None:
        out["value_c"] = value
    return out


def _wear(kind: FaultKind, params: dict[str, Any]) -> dict[str, Any]:
    rate = check_number(
        f"{kind.value}: rate_pct_per_day",
        params.get("rate_pct_per_day", WEAR_RATES[kind]),
        0.0,
        MAX_WEAR_RATE,
        kind=kind.value,
    )
    onset = check_number(
        f"{kind.value}: onset_in_s",
        params.get("onset_in_s", 0.0),
        0.0,
        MAX_DURATION_S,
        kind=kind.value,
    )
    return {"rate_pct_per_day": rate, "onset_in_s": onset}


_PARAM_CHECKS = {
    FaultKind.FAN_FAILURE: _fan,
    FaultKind.HEAT_SPIKE: _heat,
    FaultKind.AMBIENT_CHANGE: _ambient,
    FaultKind.VOLTAGE_SAG: _sag,
    FaultKind.SENSOR_FAILURE: _sensor,
    FaultKind.FAN_WEAR: _wear,
    FaultKind.DUST: _wear,
    FaultKind.BATTERY_FADE: _wear,
    FaultKind.EMMC_WEAR: _wear,
}
