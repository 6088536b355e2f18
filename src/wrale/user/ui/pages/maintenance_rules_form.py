"""The maintenance rule form of ``/maintenance`` (pure): its fields as typed, the body
``services.maintenance.rules.create_rule`` checks, which field an error names, and a
rule's condition and due time in words. The condition is a fixed number of rows (metric,
operator, value, held for) combined with all or any; an empty row is ignored."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from starlette.datastructures import FormData

from wrale.fleet.brain.services.alert_rules import OPS, parse_duration
from wrale.shared.errors import InvalidRequestError, NotFoundError

ROWS = 4
SCOPES = ("fleet", "group", "site", "rack", "device")
MODES = ("all", "any")
OP_CHOICES = tuple(OPS)
ROW_KEYS = ("metric", "op", "value", "for")
ROW_FIELDS = tuple(f"c{i}_{k}" for i in range(ROWS) for k in ROW_KEYS)
TEXTS = ("name", "title", "scope", "group_id", "site_id", "rack_id", "device_id", "mode")
FIELDS = (*TEXTS, "due_days", *ROW_FIELDS)
MAX_FIELD = 400
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
BLANK = {"scope": "fleet", "mode": "all", "due_days": "7"} | {f"c{i}_op": ">" for i in range(ROWS)}
_AT = re.compile(r"^condition\.(?:all|any)\[(\d+)\]\.(metric|op|value|for_s)$")


def rule_form_values(form: FormData) -> dict[str, str]:
    """The fields as typed (shown again when the form is refused)."""
    out: dict[str, str] = {}
    for key in FIELDS:
        value = form.get(key)
        out[key] = value.strip()[:MAX_FIELD] if isinstance(value, str) else ""
    return out


def _bad(field: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(f"{field}: {message}", field=field)


def _number(text: str, field: str) -> float:
    try:
        n = float(text)
    except ValueError:
        raise _bad(field, "a number") from None
    if not math.isfinite(n):
        raise _bad(field, "a finite number")
    return n


def _row_bad(i: int, key: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(f"condition {i + 1}, {key}: {message}", field=f"c{i}_{key}")


def _bound(v: Mapping[str, str], i: int) -> dict[str, Any]:
    key = f"c{i}_"
    metric = v.get(key + "metric") or ""
    if not metric:
        raise _row_bad(i, "metric", "the metric, e.g. cpu_temp_c")
    text = v.get(key + "value") or ""
    try:
        value = float(text)
    except ValueError:
        raise _row_bad(i, "value", "a number") from None
    if not math.isfinite(value):
        raise _row_bad(i, "value", "a finite number")
    held = v.get(key + "for") or ""
    try:
        for_s = parse_duration(held) if held else 0.0
    except InvalidRequestError:
        raise _row_bad(i, "for", f"{held!r} is not a duration (e.g. 30m, 2h, 1h30m)") from None
    if not math.isfinite(for_s):
        raise _row_bad(i, "for", "a finite duration")
    return {"metric": metric, "op": v.get(key + "op") or "", "value": value, "for_s": for_s}


def rule_body(v: Mapping[str, str]) -> tuple[dict[str, Any], list[int]]:
    """The body of a new rule and the form rows its bounds came from (in order);
    ``InvalidRequestError`` names the form field that is wrong (the service checks the
    rest and names its own field, which ``rule_field_of`` maps back to the form)."""
    for key in TEXTS:
        if CONTROL.search(v.get(key, "")):
            raise _bad(key, "no control characters")
    scope = v.get("scope") or ""
    if scope not in SCOPES:
        raise _bad("scope", ", ".join(SCOPES))
    body: dict[str, Any] = {"name": v.get("name") or "", "scope": scope}
    if v.get("title"):
        body["title"] = v["title"]
    if scope != "fleet":
        picked = v.get(f"{scope}_id") or ""
        if not picked:
            raise _bad(f"{scope}_id", f"choose the {scope}")
        body["scope_id"] = picked
    mode = v.get("mode") or "all"
    if mode not in MODES:
        raise _bad("mode", "all or any")
    rows = [i for i in range(ROWS) if any(v.get(f"c{i}_{k}") for k in ("metric", "value", "for"))]
    if not rows:
        raise _bad("c0_metric", "at least one condition")
    body["condition"] = {mode: [_bound(v, i) for i in rows]}
    days = _number(v.get("due_days") or "", "due_days") if v.get("due_days") else None
    if days is None:
        raise _bad("due_days", "a number of days")
    body["due_in_s"] = days * 86_400.0
    return body, rows


def rule_field_of(exc: InvalidRequestError | NotFoundError, scope: str, rows: list[int]) -> str:
    """The form field a refusal is about ("form" when none)."""
    where = str(exc.details.get("field") or "")
    m = _AT.match(where)
    if m and int(m[1]) < len(rows):
        return f"c{rows[int(m[1])]}_{'for' if m[2] == 'for_s' else m[2]}"
    if where.startswith("condition"):
        return "c0_metric"
    if where == "due_in_s":
        return "due_days"
    if where == "scope_id":
        return f"{scope}_id" if scope in SCOPES[1:] else "scope"
    return where if where in FIELDS else "form"


def span_text(seconds: float) -> str:
    """7200 → ``2h``, 1800 → ``30m``, 5400 → ``1h30m``."""
    s = round(seconds)
    if s <= 0:
        return "0s"
    out = ""
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)):
        n, s = divmod(s, size)
        if n:
            out += f"{n}{unit}"
    return out


def condition_text(tree: Any, top: bool = True) -> str:
    """A condition tree in one line: ``cpu_temp_c > 75 for 2h AND fan_rpm < 1500``."""
    if not isinstance(tree, Mapping):
        return "?"
    for mode, word in (("all", " AND "), ("any", " OR ")):
        parts = tree.get(mode)
        if isinstance(parts, list):
            inner = word.join(condition_text(p, False) for p in parts)
            return inner if top or len(parts) == 1 else f"({inner})"
    value = tree.get("value")
    shown = f"{value:g}" if isinstance(value, int | float) else str(value)
    for_s = tree.get("for_s") or 0
    tail = f" for {span_text(float(for_s))}" if for_s else ""
    return f"{tree.get('metric')} {tree.get('op')} {shown}{tail}"


def due_text(seconds: float) -> str:
    days = seconds / 86_400
    if days >= 1:
        return f"{days:g} day" + ("" if days == 1 else "s")
    return f"{seconds / 3600:g} h"
