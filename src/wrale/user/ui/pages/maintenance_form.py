"""The maintenance window form of ``/maintenance`` (pure): its fields as typed, the body
``services.maintenance.windows.create_window`` checks, and which field an error names.
Durations are typed in minutes; conditions are three tick boxes and two optional numbers."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from starlette.datastructures import FormData

from wrale.shared.errors import InvalidRequestError, NotFoundError

SCOPES = ("fleet", "site", "group")
FLAGS = ("not_on_battery", "case_closed", "rack_under_budget")
NUMBERS = ("battery_min_pct", "ambient_max_c")
TEXTS = ("name", "scope", "site_id", "group_id", "cron", "duration_min", "timezone")
FIELDS = (*TEXTS, *NUMBERS, *FLAGS, "enabled")
MAX_FIELD = 400
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
BLANK = {"scope": "fleet", "cron": "0 2 * * 6", "duration_min": "240", "timezone": "UTC"}
CONDITION_TEXT = {
    "not_on_battery": "not on battery",
    "battery_min_pct": "battery ≥ {:g} %",
    "ambient_max_c": "ambient ≤ {:g} °C",
    "case_closed": "case closed",
    "rack_under_budget": "rack under its power budget",
}


def form_values(form: FormData) -> dict[str, str]:
    """The fields as typed (shown again when the form is refused); a tick box is "on"."""
    out: dict[str, str] = {}
    for key in FIELDS:
        value = form.get(key)
        out[key] = value.strip()[:MAX_FIELD] if isinstance(value, str) else ""
    return out


def _bad(field: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(f"{field}: {message}", field=field)


def _number(text: str, field: str) -> float | None:
    if not text:
        return None
    try:
        n = float(text)
    except ValueError:
        raise _bad(field, "a number") from None
    if not math.isfinite(n):
        raise _bad(field, "a finite number")
    return n


def window_body(v: Mapping[str, str]) -> dict[str, Any]:
    """The body of a new window from the form's fields; ``InvalidRequestError`` names the
    form field that is wrong (the service checks the rest and names its own field)."""
    for key in ("name", "cron", "timezone"):
        if CONTROL.search(v.get(key, "")):
            raise _bad(key, "no control characters")
    scope = v.get("scope") or ""
    if scope not in SCOPES:
        raise _bad("scope", "fleet, site or group")
    body: dict[str, Any] = {"name": v.get("name") or "", "scope": scope}
    if scope != "fleet":
        picked = v.get(f"{scope}_id") or ""
        if not picked:
            raise _bad(f"{scope}_id", f"choose the {scope}")
        body["scope_id"] = picked
    body["cron"] = v.get("cron") or ""
    body["timezone"] = v.get("timezone") or "UTC"
    minutes = _number(v.get("duration_min") or "", "duration_min")
    if minutes is None:
        raise _bad("duration_min", "a number of minutes")
    body["duration_s"] = minutes * 60.0
    conditions: dict[str, Any] = {k: True for k in FLAGS if v.get(k)}
    for key in NUMBERS:
        n = _number(v.get(key) or "", key)
        if n is not None:
            conditions[key] = n
    body["conditions"] = conditions
    body["enabled"] = bool(v.get("enabled"))
    return body


def field_of(exc: InvalidRequestError | NotFoundError, scope: str) -> str:
    """The form field a refusal is about ("form" when none)."""
    where = str(exc.details.get("field") or "")
    if where.startswith("conditions."):
        where = where.split(".", 1)[1]
    if where == "duration_s":
        return "duration_min"
    if where == "scope_id":
        return f"{scope}_id" if scope in ("site", "group") else "scope"
    return where if where in FIELDS else "form"


def conditions_text(conditions: Mapping[str, Any]) -> list[str]:
    """Each condition of a window in words, in the order of the form."""
    out = []
    for key, words in CONDITION_TEXT.items():
        value = conditions.get(key)
        if value is None or value is False:
            continue
        n = value if isinstance(value, int | float) and not isinstance(value, bool) else None
        out.append(words.format(n) if n is not None else words)
    return out


def duration_text(seconds: float) -> str:
    minutes = round(seconds / 60)
    hours, rest = divmod(minutes, 60)
    if not hours:
        return f"{rest} min"
    return f"{hours} h {rest} min" if rest else f"{hours} h"
