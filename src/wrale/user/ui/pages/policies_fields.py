"""The policy kinds, the pages' limits, and a kind's form fields: labels, units and hints
from the policy models, the texts shown and typed, and the typed texts parsed back into a
policy document (pure).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from functools import cache
from typing import Any

from pydantic.fields import FieldInfo

from wrale.fleet.brain.services import policies
from wrale.shared.errors import InvalidRequestError

KINDS = tuple(policies.KINDS)
KIND_TITLES = {
    "thermal": "Thermal",
    "power": "Power",
    "security": "Security",
    "sampling": "Sampling",
}
SCOPE_TITLES = {"fleet": "Fleet", "group": "Group", "device": "Device"}
PAGE_SIZE = 50
VERSIONS_PAGE = 20
DEVICE_OPTIONS = 20
CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# ----------------------------------------------------------------------------- form fields

LABELS = {
    "profile": "Fan profile",
    "curve": "Fan curve",
    "min_fan_pct": "Minimum fan duty",
    "hysteresis_c": "Hysteresis",
    "cpu_warning_c": "CPU warning",
    "cpu_critical_c": "CPU critical",
    "cpu_hard_limit_c": "CPU hard limit",
    "gpu_warning_c": "GPU warning",
    "gpu_critical_c": "GPU critical",
    "ambient_warning_c": "Ambient warning",
    "ambient_critical_c": "Ambient critical",
    "max_override_s": "Longest fan override",
    "fan_stall_rpm": "Fan stall below",
    "low_battery_pct": "Low battery",
    "critical_battery_pct": "Critical battery",
    "nominal_voltage_v": "Nominal supply voltage",
    "critical_voltage_v": "Critical supply voltage",
    "ripple_limit_v": "Ripple limit",
    "current_spike_ratio": "Current spike ratio",
    "window_s": "Stability window",
    "prefer_solar_over_battery": "Prefer solar over battery",
    "armed": "Tamper detection armed",
    "level": "Tamper level",
    "debounce_s": "Debounce",
    "rapid_transitions": "Rapid transitions",
    "rapid_window_s": "Rapid-transition window",
    "quiet_hours": "Quiet hours",
    "interval_s": "Sampling interval",
    "report_interval_s": "Report interval",
}
UNITS = (("_pct", "%"), ("_rpm", "rpm"), ("_c", "°C"), ("_s", "s"), ("_v", "V"), ("_w", "W"))
HINTS = {
    "curve": "°C:PWM points (PWM 0–255), rising, e.g. 50:75, 60:125",
    "quiet_hours": "HH:MM-HH:MM, board time; motion tamper counts only then; “none”: always armed",
    "current_spike_ratio": "times the window's mean current",
    "level": "low: an event · medium: an alert · high: a lockdown",
}


@dataclass(frozen=True, slots=True)
class PolicyField:
    """One field of a policy form: how it is entered and what it means."""

    name: str
    label: str
    unit: str
    widget: str  # number | integer | choice | flag | curve | text
    choices: tuple[str, ...]
    default: str  # the default as the form writes it (the placeholder)
    hint: str


def _unit(name: str) -> str:
    if name.endswith("_ratio"):
        return "×"
    return next((unit for suffix, unit in UNITS if name.endswith(suffix)), "")


def _g(value: float) -> str:
    return f"{value:g}"


def _range_hint(info: FieldInfo, unit: str) -> str:
    low = high = ""
    for m in info.metadata:
        if getattr(m, "ge", None) is not None:
            low = _g(m.ge)
        elif getattr(m, "gt", None) is not None:
            low = f"> {_g(m.gt)}"
        if getattr(m, "le", None) is not None:
            high = _g(m.le)
        elif getattr(m, "lt", None) is not None:
            high = f"< {_g(m.lt)}"
    if low and high and not low.startswith(">"):
        text = f"{low} to {high}" if low.startswith("-") else f"{low}–{high}"
    elif low and high:
        text = f"{low}, ≤ {high}"
    elif low:
        text = low if low.startswith(">") else f"≥ {low}"
    elif high:
        text = f"≤ {high}"
    else:
        return ""
    return f"{text} {unit}".rstrip()


def form_text(value: Any) -> str:
    """A document value as the form writes it."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "none"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, int | float):
        return _g(value)
    if isinstance(value, list | tuple):  # the fan curve
        points = [p if isinstance(p, dict) else p.model_dump() for p in value]
        return ", ".join(f"{_g(p['temp_c'])}:{p['pwm']}" for p in points)
    return str(value)


def display(name: str, value: Any) -> str:
    """A document value for reading, with its unit."""
    if name == "quiet_hours" and value is None:
        return "none (always armed)"
    if name == "curve" and isinstance(value, list | tuple):
        points = [p if isinstance(p, dict) else p.model_dump() for p in value]
        return ", ".join(f"{_g(p['temp_c'])} °C → {p['pwm']}" for p in points)
    text = form_text(value)
    unit = _unit(name) if isinstance(value, int | float) and not isinstance(value, bool) else ""
    return f"{text} {unit}".rstrip()


@cache
def policy_fields(kind: str) -> tuple[PolicyField, ...]:
    model = policies.KINDS[kind]
    defaults = policies.defaults(kind)
    out = []
    for name, info in model.model_fields.items():
        ann, unit = info.annotation, _unit(name)
        choices: tuple[str, ...] = ()
        if name == "curve":
            widget = "curve"
        elif isinstance(ann, type) and issubclass(ann, Enum):
            widget, choices = "choice", tuple(str(m.value) for m in ann)
        elif ann is bool:
            widget = "flag"
        elif ann is int:
            widget = "integer"
        elif ann is float:
            widget = "number"
        else:
            widget = "text"
        hint = HINTS.get(name) or _range_hint(info, unit)
        if info.description and name not in HINTS:
            hint = f"{hint}; {info.description}" if hint else info.description
        label = LABELS.get(name, name.replace("_", " ").capitalize())
        out.append(PolicyField(name, label, unit, widget, choices, form_text(defaults[name]), hint))
    return tuple(out)


def _parse_curve(text: str) -> list[dict[str, Any]]:
    points = []
    for part in filter(None, (p.strip() for p in text.replace(";", ",").split(","))):
        temp, sep, pwm = part.partition(":")
        try:
            if not sep:
                raise ValueError
            temp_c = float(temp)
            if not math.isfinite(temp_c):
                raise ValueError
            points.append({"temp_c": temp_c, "pwm": int(pwm)})
        except ValueError:
            raise ValueError(
                f"write each point as °C:PWM, e.g. 50:75, 60:125 (not {part!r})"
            ) from None
    if not points:
        raise ValueError("give at least one °C:PWM point")
    temps = [p["temp_c"] for p in points]
    if any(b <= a for a, b in itertools.pairwise(temps)):
        raise ValueError("the temperatures must rise from one point to the next")
    return points


def _parse_value(f: PolicyField, text: str) -> Any:
    if f.widget == "number":
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"a number, e.g. {f.default}") from None
        if not math.isfinite(value):
            raise ValueError(f"a number, e.g. {f.default}")
        return value
    if f.widget == "integer":
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"a whole number, e.g. {f.default}") from None
    if f.widget == "choice":
        if text not in f.choices:
            raise ValueError(f"one of {', '.join(f.choices)}")
        return text
    if f.widget == "flag":
        if text not in ("yes", "no"):
            raise ValueError("yes or no")
        return text == "yes"
    if f.widget == "curve":
        return _parse_curve(text)
    if text.lower() == "none":
        return None
    return text


def parse_document(
    kind: str, form: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    """The policy document a form sets (an empty field inherits), the error of each field
    that is wrong (every one, not only the first) and the texts as typed."""
    values: dict[str, str] = {}
    errors: dict[str, str] = {}
    document: dict[str, Any] = {}
    for f in policy_fields(kind):
        raw = form.get(f.name)
        text = raw.strip()[:500] if isinstance(raw, str) else ""
        values[f.name] = text
        if not text:
            continue
        try:
            value = _parse_value(f, text)
            document.update(policies.check_document(kind, {f.name: value}))
        except ValueError as exc:
            errors[f.name] = str(exc)
        except InvalidRequestError as exc:
            errors[f.name] = _plain(exc.message.removeprefix(f"document.{f.name}: "), f.unit)
    return document, errors, values


LIMITS = (
    ("Input should be greater than or equal to ", "at least "),
    ("Input should be less than or equal to ", "at most "),
    ("Input should be greater than ", "more than "),
    ("Input should be less than ", "less than "),
)


def _plain(message: str, unit: str) -> str:
    """pydantic's range messages in the form's words, with the unit."""
    for prefix, words in LIMITS:
        if message.startswith(prefix):
            return f"{words}{message.removeprefix(prefix)} {unit}".rstrip()
    return message


def document_values(kind: str, document: Mapping[str, Any]) -> dict[str, str]:
    return {
        f.name: form_text(document[f.name]) if f.name in document else ""
        for f in policy_fields(kind)
    }


def cross_field_problems(kind: str, document: Mapping[str, Any]) -> list[str]:
    """What the document breaks on top of the defaults (warning < critical…)."""
    return policies.check_merged(kind, policies.merge(kind, [({}, dict(document))]))
