"""The pure side of device twins: the sections of the desired document and their shapes,
composing it from the effective policies, the explicit overrides and the board's job
placements, merge patches of the overrides, and the per-path diff from the reported
document. No I/O, no database.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from wrale.fleet.brain.models.twin import DeviceTwin
from wrale.fleet.brain.services.policy_effective import KINDS, defaults
from wrale.fleet.sync.twin import merge_patch
from wrale.shared.errors import InvalidRequestError
from wrale.shared.policy import SecurityLevel

__all__ = [
    "CONFIG_KEY",
    "JOBS",
    "MAX_DEPTH",
    "POLICY_SECTIONS",
    "SECTIONS",
    "apply_patch",
    "check_json",
    "check_section",
    "compose",
    "deep_merge",
    "diff",
    "in_sync",
    "merge_patch",
    "same_json",
    "twin_view",
]

POLICY_SECTIONS = tuple(KINDS)  # thermal, power, security, sampling
EXTRA_SECTIONS = ("fan", "tamper", "gpio", "config")
SECTIONS = (*POLICY_SECTIONS, *EXTRA_SECTIONS)
# composed by the brain from the board's placements (docs/jobs.md), never set by a patch
JOBS = "jobs"
MAX_DEPTH = 16
MAX_CONFIG_BYTES = 64 * 1024
MAX_GPIO_LINES = 64
CONFIG_KEY = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
GPIO_LINE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored and sent back as JSON on both databases, or None:
    PostgreSQL refuses NUL, and a lone surrogate (``"\\ud800"`` in JSON) is not UTF-8."""
    if "\x00" in text:
        return "text must not contain NUL characters"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "text must be valid Unicode (no lone surrogates)"
    return None


def check_json(value: Any, path: str, depth: int = 0) -> None:
    """A JSON value we can store on both databases and send back: finite numbers, text
    that is valid Unicode without NUL, bounded nesting."""
    if depth > MAX_DEPTH:
        raise InvalidRequestError(f"{path}: nested more than {MAX_DEPTH} levels", path=path)
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidRequestError(f"{path}: numbers must be finite", path=path)
    if isinstance(value, str) and (why := text_problem(value)):
        raise InvalidRequestError(f"{path}: {why}", path=path)
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidRequestError(f"{path}: keys must be strings", path=path)
            if why := text_problem(k):
                raise InvalidRequestError(f"{path}: keys: {why}", path=path)
            check_json(v, f"{path}.{k}", depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            check_json(v, f"{path}.{i}", depth + 1)
    elif value is not None and not isinstance(value, str | int | float | bool):
        raise InvalidRequestError(f"{path}: not a JSON value", path=path)


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` laid on ``base``: objects merge recursively, other values replace."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def compose(
    effective: Mapping[str, Mapping[str, Any]],
    overrides: Mapping[str, Any],
    jobs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The desired document: each policy section's effective document with the explicit
    values on top; fan, tamper and gpio only when set; config always (empty: none);
    ``jobs`` (the board's placements) when given."""
    doc: dict[str, Any] = {}
    for kind in POLICY_SECTIONS:
        base = effective.get(kind) or defaults(kind)
        doc[kind] = deep_merge(base, overrides.get(kind) or {})
    for section in ("fan", "tamper", "gpio"):
        if section in overrides:
            doc[section] = copy.deepcopy(overrides[section])
    doc["config"] = copy.deepcopy(overrides.get("config") or {})
    if jobs is not None:
        doc[JOBS] = copy.deepcopy(dict(jobs))
    return doc


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FanSection(_Section):
    """A fan override the agent holds for ``duration_s`` (metal still enforces the floor)."""

    override_pct: float | None = Field(default=None, ge=0, le=100)
    duration_s: float = Field(default=300.0, ge=1, le=86_400)


class TamperSection(_Section):
    armed: bool | None = None
    level: SecurityLevel | None = None


class GpioLevel(_Section):
    value: int = Field(ge=0, le=1)


class GpioPwm(_Section):
    frequency_hz: float = Field(gt=0, le=1_000_000)
    duty_percent: float = Field(ge=0, le=100)


def _first_error(exc: ValidationError, prefix: str) -> InvalidRequestError:
    err = exc.errors()[0]
    where = ".".join([prefix, *(str(p) for p in err.get("loc", ()))])
    return InvalidRequestError(f"desired.{where}: {err['msg']}", path=where)


def _strict(model: type[BaseModel], value: Any, prefix: str) -> None:
    """Validate ``value`` as JSON in strict mode: no coercion ("70" is not a number)."""
    if not isinstance(value, dict):
        raise InvalidRequestError(f"desired.{prefix}: must be an object", path=prefix)
    try:
        model.model_validate_json(json.dumps(value), strict=True)
    except ValidationError as exc:
        raise _first_error(exc, prefix) from None


def check_section(name: str, value: Any) -> None:
    """The shape of one section of the overrides (or of a composed policy section);
    ``InvalidRequestError`` names the path (``desired.thermal.cpu_warning_c: …``)."""
    check_json(value, f"desired.{name}")
    if name in KINDS:
        _strict(KINDS[name], value, name)
    elif name == "fan":
        _strict(FanSection, value, name)
    elif name == "tamper":
        _strict(TamperSection, value, name)
    elif name == "gpio":
        if not isinstance(value, dict) or len(value) > MAX_GPIO_LINES:
            raise InvalidRequestError(
                f"desired.gpio: an object of at most {MAX_GPIO_LINES} lines", path="gpio"
            )
        for line, setting in value.items():
            if not GPIO_LINE.match(line):
                raise InvalidRequestError(
                    f"desired.gpio.{line}: line names are 1-32 letters, digits, _ . -",
                    path=f"gpio.{line}",
                )
            pwm = isinstance(setting, dict) and "value" not in setting
            _strict(GpioPwm if pwm else GpioLevel, setting, f"gpio.{line}")
    elif name == "config":
        if not isinstance(value, dict):
            raise InvalidRequestError("desired.config: must be an object", path="config")
        for key in value:
            if not CONFIG_KEY.match(key):
                raise InvalidRequestError(
                    f"desired.config.{key}: keys are 1-64 letters, digits, _ . : -",
                    path=f"config.{key}",
                )
        if len(json.dumps(value)) > MAX_CONFIG_BYTES:
            raise InvalidRequestError(
                f"desired.config: larger than {MAX_CONFIG_BYTES} bytes", path="config"
            )
    else:
        raise InvalidRequestError(
            f"desired.{name}: unknown section (sections: {', '.join(SECTIONS)})", path=name
        )


def apply_patch(overrides: Mapping[str, Any], patch: Any) -> tuple[dict[str, Any], set[str]]:
    """The overrides after ``patch`` and the sections it touched (shapes checked)."""
    if not isinstance(patch, dict):
        raise InvalidRequestError("desired: a JSON merge patch object", path="")
    for name, value in patch.items():
        if name not in SECTIONS:
            name = name if isinstance(name, str) and not text_problem(name) else ascii(name)
            raise InvalidRequestError(
                f"desired.{name}: unknown section (sections: {', '.join(SECTIONS)})", path=name
            )
        if value is not None and not isinstance(value, dict):
            raise InvalidRequestError(
                f"desired.{name}: an object (or null to drop the section)", path=name
            )
        check_json(value, f"desired.{name}")
    result = merge_patch(dict(overrides), patch)
    for name in patch:
        if name in result and name not in POLICY_SECTIONS:
            check_section(name, result[name])
    return result, set(patch)


def same_json(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    return bool(a == b)


def _rejected_reason(path: str, rejected: Mapping[str, str]) -> str | None:
    for where, why in rejected.items():
        if where == path or path.startswith(f"{where}.") or where.startswith(f"{path}."):
            return why
    return None


def diff(
    desired: Mapping[str, Any], reported: Mapping[str, Any], rejected: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Every leaf of ``desired`` whose reported value differs or is missing, with the
    device's reason when it rejected it. Lists compare whole; extra reported keys
    (hardware facts, agent version) are not differences. The ``jobs`` section has other
    shapes each way (placements asked for, their states reported): a desired placement
    the board does not report is the difference."""
    out: list[dict[str, Any]] = []
    jobs = desired.get(JOBS)
    if isinstance(jobs, Mapping):
        have = reported.get(JOBS)
        have = have if isinstance(have, Mapping) else {}
        for pid, want in jobs.items():
            if pid not in have:
                path = f"{JOBS}.{pid}"
                out.append(
                    {
                        "path": path,
                        "desired": want,
                        "reported": None,
                        "missing": True,
                        "rejected": _rejected_reason(path, rejected),
                    }
                )
        desired = {k: v for k, v in desired.items() if k != JOBS}

    def walk(path: str, want: Any, have: Any, present: bool) -> None:
        if isinstance(want, dict) and want:
            for key, value in want.items():
                inside = present and isinstance(have, dict) and key in have
                walk(
                    f"{path}.{key}" if path else key,
                    value,
                    have.get(key) if inside else None,
                    inside,
                )
            return
        if isinstance(want, dict):  # an empty object asks for nothing
            return
        if present and same_json(want, have):
            return
        out.append(
            {
                "path": path,
                "desired": want,
                "reported": have if present else None,
                "missing": not present,
                "rejected": _rejected_reason(path, rejected),
            }
        )

    walk("", dict(desired), dict(reported), True)
    return out


def in_sync(t: DeviceTwin, changes: list[dict[str, Any]] | None = None) -> bool:
    """The device has applied the current desired version, rejected nothing, and reports
    every desired value."""
    pending = diff(t.desired, t.reported, t.rejected) if changes is None else changes
    return (
        t.reported_version > 0
        and t.applied_desired_version >= t.desired_version
        and not t.rejected
        and not pending
    )


def twin_view(t: DeviceTwin) -> dict[str, Any]:
    changes = diff(t.desired, t.reported, t.rejected)
    return {
        "device_id": t.device_id,
        "desired": {"version": t.desired_version, "doc": t.desired},
        "reported": {"version": t.reported_version, "doc": t.reported, "at": t.reported_at},
        "overrides": t.overrides,
        "applied_desired_version": t.applied_desired_version,
        "rejected": t.rejected,
        "in_sync": in_sync(t, changes),
        "diff": changes,
        "updated_at": t.updated_at,
    }
