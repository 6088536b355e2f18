"""Alert rule language, pure: parsing ``cpu_temp_c > 70 for 5m`` / ``rack power_w > budget``,
durations, and the per-metric sanity ranges of thresholds. No I/O, no database."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from wrale.shared.errors import InvalidRequestError

OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
SEVERITIES = ("CRITICAL", "MAJOR", "MINOR", "WARNING", "INFO")
SCOPES = ("device", "group", "rack", "zone", "fleet")
AGGREGATES = ("device", "rack_sum")
METRIC_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MIN_FOR_S = 5.0  # 0 fires on the first sample; shorter windows let one noisy sample decide
MAX_FOR_S = 7 * 86_400.0
GENERIC_LIMIT = 1e12

# (name suffix, low, high, what) — the physical sanity range of a threshold by unit.
UNIT_RANGES: tuple[tuple[str, float, float, str], ...] = (
    ("_c", -40.0, 150.0, "a temperature in °C"),
    ("_pct", 0.0, 100.0, "a percentage"),
    ("_v", 0.0, 60.0, "a voltage in V"),
    ("_a", 0.0, 100.0, "a current in A"),
    ("_w", 0.0, 1_000_000.0, "a power in W"),
    ("_wh", 0.0, 10_000_000.0, "an energy in Wh"),
    ("_rpm", 0.0, 50_000.0, "a fan speed in rpm"),
    ("_pwm", 0.0, 255.0, "a PWM duty (0-255)"),
    ("_hz", 0.0, 1e10, "a frequency in Hz"),
    ("_s", 0.0, 1e9, "a duration in s"),
)

_NUM = r"(\d+(?:\.\d+)?)"
_DURATION_RE = re.compile(rf"^(?:{_NUM}d)?(?:{_NUM}h)?(?:{_NUM}m)?(?:{_NUM}s)?$")
_EXPR_RE = re.compile(
    r"^\s*(?:(?P<rack>rack)\s+)?(?P<metric>[A-Za-z_][A-Za-z0-9_]*)\s*"
    r"(?P<op>>=|<=|==|!=|>|<)\s*(?P<threshold>budget|[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)"
    r"(?:\s+for\s+(?P<duration>\S+))?\s*$"
)


@dataclass(frozen=True, slots=True)
class Condition:
    """The parsed core of a rule; ``threshold`` None means "the rack's power budget"."""

    metric: str
    op: str
    threshold: float | None
    for_s: float = 0.0
    aggregate: str = "device"


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``5m``, ``1h30m``, ``1d`` → seconds."""
    t = text.strip().lower()
    try:
        return float(t)
    except ValueError:
        pass
    m = _DURATION_RE.match(t)
    if not t or not m or not any(m.groups()):
        raise InvalidRequestError(
            f"for: {text!r} is not a duration (use e.g. 30s, 5m, 1h30m or seconds)"
        )
    d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return d * 86_400 + h * 3600 + mi * 60 + s


def parse_expression(expression: str) -> Condition:
    """Parse ``[rack] METRIC OP (NUMBER|budget) [for DURATION]``; raises 422 on bad syntax."""
    m = _EXPR_RE.match(expression)
    if not m:
        raise InvalidRequestError(
            f"expression: cannot parse {expression!r}; expected "
            "'<metric> <op> <number> [for <duration>]' such as 'cpu_temp_c > 70 for 5m', "
            "or 'rack power_w > budget', with op one of > >= < <= == !=",
            field="expression",
        )
    budget = m["threshold"] == "budget"
    aggregate = "rack_sum" if m["rack"] else "device"
    cond = Condition(
        metric=m["metric"],
        op=m["op"],
        threshold=None if budget else float(m["threshold"]),
        for_s=parse_duration(m["duration"]) if m["duration"] else 0.0,
        aggregate=aggregate,
    )
    check_condition(cond)
    return cond


def check_condition(cond: Condition) -> None:
    """Refuse what cannot be a sensible rule, with a message naming the field."""
    if not METRIC_RE.match(cond.metric):
        raise InvalidRequestError(
            f"metric: {cond.metric!r} is not a metric name (lower case, digits, _)",
            field="metric",
        )
    if cond.op not in OPS:
        raise InvalidRequestError(f"op: use one of {' '.join(OPS)}", field="op")
    if cond.aggregate not in AGGREGATES:
        raise InvalidRequestError(f"aggregate: use one of {', '.join(AGGREGATES)}")
    if cond.threshold is None:
        if cond.aggregate != "rack_sum" or cond.metric != "power_w":
            raise InvalidRequestError(
                "threshold: 'budget' only compares a rack's summed power_w with its budget "
                "('rack power_w > budget')",
                field="threshold",
            )
    else:
        check_threshold(cond.metric, cond.threshold, summed=cond.aggregate == "rack_sum")
    check_for(cond.for_s)


def check_threshold(metric: str, threshold: float, *, summed: bool = False) -> None:
    if not math.isfinite(threshold) or abs(threshold) > GENERIC_LIMIT:
        raise InvalidRequestError("threshold: must be a finite number", field="threshold")
    if summed:
        return  # a sum of many devices has no per-device physical range
    for suffix, low, high, what in UNIT_RANGES:
        if metric.endswith(suffix):
            if not low <= threshold <= high:
                raise InvalidRequestError(
                    f"threshold: {threshold:g} is outside {low:g}..{high:g}, the range of "
                    f"{what} ({metric})",
                    field="threshold",
                )
            return


def check_for(for_s: float) -> None:
    if not math.isfinite(for_s) or for_s < 0:
        raise InvalidRequestError("for_s: a duration cannot be negative", field="for_s")
    if 0 < for_s < MIN_FOR_S:
        raise InvalidRequestError(
            f"for_s: {for_s:g} s is too short; use 0 (fire on the first sample) or at least "
            f"{MIN_FOR_S:g} s",
            field="for_s",
        )
    if for_s > MAX_FOR_S:
        raise InvalidRequestError("for_s: at most 7 days", field="for_s")


def describe(cond: Condition) -> str:
    """The compact expression of a condition (the inverse of ``parse_expression``)."""
    head = f"rack {cond.metric}" if cond.aggregate == "rack_sum" else cond.metric
    rhs = "budget" if cond.threshold is None else f"{cond.threshold:g}"
    tail = f" for {cond.for_s:g}s" if cond.for_s else ""
    return f"{head} {cond.op} {rhs}{tail}"
