"""What to do to bring the board from its reported state to the desired one: a pure
``plan(current, desired) -> list[Step]``; the executor does the I/O.

``current`` has the shape of the reported document (``thermal``, ``power``, ``security``,
``sampling``, ``fan``, ``tamper``, ``gpio``, ``config``); ``desired`` the shape of the
desired one. A section missing from ``desired`` is left as it runs, except ``fan``: no fan
section means no override. A malformed desired value becomes a ``Reject`` step, so it is
reported with a reason instead of being dropped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, TypeGuard

import msgspec

from wrale.fleet.sync.twin import merge, same, unmet

Json = dict[str, Any]
POLICY_KINDS = ("thermal", "power", "security")
LEVELS = ("low", "medium", "high")
DEFAULT_FAN_DURATION_S = 300.0


class SetPolicy(msgspec.Struct, frozen=True):
    """Replace one policy (``kind``) with ``document``; ``paths`` are the desired values
    it brings in."""

    kind: str
    document: Json
    paths: tuple[str, ...]


class SetSampling(msgspec.Struct, frozen=True):
    interval_s: float
    report_interval_s: float
    paths: tuple[str, ...] = ("sampling",)


class SetConfig(msgspec.Struct, frozen=True):
    config: Json
    paths: tuple[str, ...] = ("config",)


class Arm(msgspec.Struct, frozen=True):
    level: str | None
    paths: tuple[str, ...] = ("tamper.armed",)


class Disarm(msgspec.Struct, frozen=True):
    paths: tuple[str, ...] = ("tamper.armed",)


class SetFanOverride(msgspec.Struct, frozen=True):
    """Hold the fan at ``percent``, renewed every ``duration_s`` while desired (so a dead
    agent's override lapses back to the curve)."""

    percent: float
    duration_s: float
    paths: tuple[str, ...] = ("fan.override_pct",)


class ClearFan(msgspec.Struct, frozen=True):
    paths: tuple[str, ...] = ("fan.override_pct",)


class GpioWrite(msgspec.Struct, frozen=True):
    line: str
    value: int
    paths: tuple[str, ...] = ()


class GpioPwm(msgspec.Struct, frozen=True):
    line: str
    frequency_hz: float
    duty_percent: float
    paths: tuple[str, ...] = ()


class Reject(msgspec.Struct, frozen=True):
    """A desired value that cannot even be tried (wrong type or shape)."""

    path: str
    reason: str

    @property
    def paths(self) -> tuple[str, ...]:
        return (self.path,)


Step = (
    SetPolicy
    | SetSampling
    | SetConfig
    | Arm
    | Disarm
    | SetFanOverride
    | ClearFan
    | GpioWrite
    | GpioPwm
    | Reject
)


def _number(v: Any) -> TypeGuard[float]:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _section(doc: Mapping[str, Any], name: str) -> Any:
    return doc.get(name)


def plan(current: Mapping[str, Any], desired: Mapping[str, Any]) -> list[Step]:
    """The steps that bring ``current`` to ``desired``, safest first: policies (the thermal
    one first), sampling, config, tamper, fan, GPIO. Empty when nothing differs."""
    steps: list[Step] = []
    steps += _policies(current, desired)
    steps += _sampling(current, desired)
    steps += _config(current, desired)
    steps += _tamper(current, desired)
    steps += _fan(current, desired)
    steps += _gpio(current, desired)
    return steps


def _policies(current: Mapping[str, Any], desired: Mapping[str, Any]) -> list[Step]:
    steps: list[Step] = []
    for kind in POLICY_KINDS:
        want = _section(desired, kind)
        if want is None:
            continue
        if not isinstance(want, Mapping):
            steps.append(Reject(kind, f"{kind} must be an object"))
            continue
        have = _section(current, kind)
        have = have if isinstance(have, Mapping) else {}
        missing = unmet(have, want)
        if missing:
            paths = tuple(f"{kind}.{p}" for p in sorted(missing))
            steps.append(SetPolicy(kind, merge(have, want), paths))
    return steps


def _sampling(current: Mapping[str, Any], desired: Mapping[str, Any]) -> list[Step]:
    want = _section(desired, "sampling")
    if want is None:
        return []
    if not isinstance(want, Mapping):
        return [Reject("sampling", "sampling must be an object")]
    have = _section(current, "sampling")
    have = have if isinstance(have, Mapping) else {}
    missing = unmet(have, want)
    if not missing:
        return []
    doc = merge(have, want)
    interval, report = doc.get("interval_s"), doc.get("report_interval_s")
    if not (_number(interval) and _number(report)):
        return [Reject("sampling", "interval_s and report_interval_s must be numbers")]
    paths = tuple(f"sampling.{p}" for p in sorted(missing))
    return [SetSampling(float(interval), float(report), paths)]


def _config(current: Mapping[str, Any], desired: Mapping[str, Any]) -> list[Step]:
    want = _section(desired, "config")
    if want is None:
        return []
    if not isinstance(want, Mapping):
        return [Reject("config", "config must be an object")]
    if same(_section(current, "config") or {}, want):
        return []
    return [SetConfig(dict(want))]


def _tamper(current: Mapping[str, Any], desired: Mapping[str, Any]) -> list[Step]:
    want = _section(desired, "tamper")
    if want is None:
        return []
    if not isinstance(want, Mapping):
        return [Reject("tamper", "tamper must be an object")]
    armed, level = want.get("armed"), want.get("level")
    if armed is not None and not isinstance(armed, bool):
        return [Reject("tamper.armed", "armed must be true or false")]
    if level is not None and level not in LEVELS:
        return [Reject("tamper.level", f"level must be one of {', '.join(LEVELS)}")]
    have = _section(current, "tamper")
    have = have if isinstance(have, Mapping) else {}
    is_armed = have.get("armed") is True
    if armed is True and (not is_armed or (level is not None and level != have.get("level"))):
        return [Arm(level, ("tamper.armed", "tamper.level") if level else ("tamper.armed",))]
    if armed is False and is_armed:
        return [Disarm()]
    if armed is None and level is not None and is_armed and level != have.get("level"):
        return [Arm(level, ("tamper.level",))]
    return []


def _fan(current: Mapping[str, Any], desired: Mapping[str, Any]) -> list[Step]:
    want = _section(desired, "fan")
    have = _section(current, "fan")
    have = have if isinstance(have, Mapping) else {}
    if want is None:
        want = {"override_pct": None}
    if not isinstance(want, Mapping):
        return [Reject("fan", "fan must be an object")]
    pct = want.get("override_pct")
    duration = want.get("duration_s", DEFAULT_FAN_DURATION_S)
    if pct is None:
        return [ClearFan()] if have.get("override_pct") is not None else []
    if not _number(pct):
        return [Reject("fan.override_pct", "override_pct must be a number or null")]
    if not _number(duration):
        return [Reject("fan.duration_s", "duration_s must be a number")]
    if same(have.get("override_pct"), pct) and same(have.get("duration_s"), duration):
        return []
    return [SetFanOverride(float(pct), float(duration))]


def _gpio(current: Mapping[str, Any], desired: Mapping[str, Any]) -> list[Step]:
    want = _section(desired, "gpio")
    if want is None:
        return []
    if not isinstance(want, Mapping):
        return [Reject("gpio", "gpio must be an object of lines")]
    have = _section(current, "gpio")
    have = have if isinstance(have, Mapping) else {}
    steps: list[Step] = []
    for line in sorted(want):
        spec = want[line]
        now = have.get(line)
        path = f"gpio.{line}"
        if not isinstance(spec, Mapping):
            steps.append(Reject(path, "a line's desired state must be an object"))
        elif "value" in spec:
            value = spec["value"]
            if set(spec) != {"value"} or value not in (0, 1) or isinstance(value, bool):
                steps.append(Reject(path, "give {'value': 0 or 1}"))
            elif not (isinstance(now, Mapping) and same(now, {"value": value})):
                steps.append(GpioWrite(line, int(value), (f"{path}.value",)))
        else:
            freq, duty = spec.get("frequency_hz"), spec.get("duty_percent")
            if set(spec) != {"frequency_hz", "duty_percent"} or not (
                _number(freq) and _number(duty)
            ):
                steps.append(Reject(path, "give {'value'} or {'frequency_hz', 'duty_percent'}"))
            elif not (isinstance(now, Mapping) and same(now, spec)):
                steps.append(GpioPwm(line, float(freq), float(duty), (path,)))
    return steps
