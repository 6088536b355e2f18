"""The new-rollout form of ``/rollouts/new`` (pure): its fields as typed, the body
``services.rollouts.create_rollout`` takes, and which field an error names.

The waves are typed as steps separated by commas: ``2`` (two more boards), ``50%``
(half of all boards reached, cumulative), and first ``1/rack`` (one board of each rack);
or as the API's JSON (``[{"count": 2}, {"percent": 100}]`` or ``{"steps": …}``)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from starlette.datastructures import FormData

from wrale.shared.errors import InvalidRequestError, NotFoundError

CHANGE_KINDS = ("command", "policy")
ON_FAILURE = ("abort", "pause")
GATE_FIELDS = ("max_temp_rise_c", "max_failure_pct", "observe_s")
FIELDS = (
    "name",
    "change_kind",
    "op",
    "args",
    "policy_kind",
    "values",
    "tags",
    "site_id",
    "rack_id",
    "group_id",
    "selector",
    "waves",
    "max_per_rack",
    "max_per_feed",
    *GATE_FIELDS,
    "on_gate_failure",
    "require_approval",
    "disruptive",
)
BLANK = {
    "change_kind": "command",
    "op": "sim_load",
    "args": '{"percent": 30}',
    "policy_kind": "thermal",
    "values": "{}",
    "waves": "1/rack, 50%, 100%",
    "max_temp_rise_c": "5",
    "max_failure_pct": "0",
    "observe_s": "60",
    "on_gate_failure": "abort",
}
MAX_FIELD = 4000
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
STEP = re.compile(r"^(\d{1,6})$|^(\d{1,3}(?:\.\d+)?)\s*%$")


def form_values(form: FormData) -> dict[str, str]:
    """The fields as typed (shown again when the form is refused); a tick box is "on"."""
    out: dict[str, str] = {}
    for key in FIELDS:
        value = form.get(key)
        out[key] = value.strip()[:MAX_FIELD] if isinstance(value, str) else ""
    return out


def _bad(field: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(f"{field}: {message}", field=field)


def _json(text: str, field: str, what: str) -> Any:
    if CONTROL.search(text):
        raise _bad(field, "no control characters")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise _bad(field, f"{what} in JSON") from None


def _object(text: str, field: str) -> dict[str, Any]:
    if not text:
        return {}
    value = _json(text, field, "an object")
    if not isinstance(value, dict):
        raise _bad(field, 'an object in JSON, e.g. {"percent": 30}')
    return value


def parse_waves(text: str) -> Any:
    """The API's ``waves`` from the form's text (JSON is passed on as it is)."""
    text = text.strip()
    if not text:
        return None
    if text[0] in "[{":
        return _json(text, "waves", "a list of steps or an object")
    steps: list[dict[str, Any]] = []
    first = False
    for i, raw in enumerate(t.strip() for t in text.split(",")):
        if i == 0 and raw.replace(" ", "").lower() == "1/rack":
            first = True
            steps.append({"percent": 100})
            continue
        m = STEP.match(raw)
        if not m:
            raise _bad("waves", f"step {i + 1} ({raw[:20]!r}): a number of boards, a % or 1/rack")
        if m.group(1) is not None:
            steps.append({"count": int(m.group(1))})
        else:
            steps.append({"percent": float(m.group(2))})
    if not first:
        return steps
    return {"steps": steps, "one_per_rack_first": True}


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


def selector_of(v: Mapping[str, str], group_selector: Mapping[str, Any] | None) -> dict[str, Any]:
    """The selector: the JSON typed, the chosen group's clauses, tags, site and rack."""
    sel = _object(v.get("selector") or "", "selector")
    for key, value in (group_selector or {}).items():
        if key in sel and sel[key] != value:
            raise _bad("group_id", f"the group's {key} clause conflicts with the selector's")
        sel[key] = value
    tags = [t.strip() for t in (v.get("tags") or "").split(",") if t.strip()]
    if tags:
        sel["tags_all"] = sorted(set(sel.get("tags_all") or []) | set(tags))
    for key in ("site_id", "rack_id"):
        if v.get(key):
            if key in sel and sel[key] != v[key]:
                raise _bad(key, f"conflicts with the selector's {key}")
            sel[key] = v[key]
    if not sel:
        raise _bad("selector", "choose boards: tags, a site, a rack, a group or a selector")
    return sel


def rollout_body(
    v: Mapping[str, str], group_selector: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The body of ``POST /api/v1/rollouts`` from the form's fields; ``InvalidRequestError``
    names the form field that is wrong (the service checks the rest and names its own)."""
    if CONTROL.search(v.get("name") or ""):
        raise _bad("name", "no control characters")
    kind = v.get("change_kind") or ""
    if kind not in CHANGE_KINDS:
        raise _bad("change_kind", "command or policy")
    change: dict[str, Any] = {"kind": kind}
    if kind == "command":
        change |= {"op": v.get("op") or "", "args": _object(v.get("args") or "", "args")}
    else:
        values = _object(v.get("values") or "", "values")
        change |= {"policy_kind": v.get("policy_kind") or "", "values": values}
    if v.get("disruptive"):
        change["disruptive"] = True  # each board's step waits for its maintenance window
    waves = parse_waves(v.get("waves") or "")
    for key in ("max_per_rack", "max_per_feed"):
        cap = v.get(key) or ""
        if cap:
            if not cap.isdigit() or not 0 < int(cap) <= 10_000:
                raise _bad(key, "a whole number from 1")
            if waves is None:
                waves = [{"percent": 100}]
            waves = (waves if isinstance(waves, dict) else {"steps": waves}) | {key: int(cap)}
    gates: dict[str, Any] = {}
    for key in GATE_FIELDS:
        n = _number(v.get(key) or "", key)
        if n is not None:
            gates[key] = n
    on_failure = v.get("on_gate_failure") or ""
    if on_failure not in ON_FAILURE:
        raise _bad("on_gate_failure", "abort or pause")
    body: dict[str, Any] = {
        "name": v.get("name") or "",
        "change": change,
        "selector": selector_of(v, group_selector),
        "gates": gates,
        "on_gate_failure": on_failure,
        "require_approval": bool(v.get("require_approval")),
    }
    if waves is not None:
        body["waves"] = waves
    return body


CHANGE_FIELDS = {
    "change.kind": "change_kind",
    "change.op": "op",
    "change.args": "args",
    "change.policy_kind": "policy_kind",
    "change.values": "values",
}


def field_of(exc: InvalidRequestError | NotFoundError) -> str:
    """The form field an error is about ("form" when none)."""
    if isinstance(exc, NotFoundError):
        for key in ("rack_id", "site_id", "group_id"):
            if key in exc.details:
                return key
        return "selector" if {"room_id", "zone_id"} & set(exc.details) else "form"
    where = str(exc.details.get("field") or "")
    if where in CHANGE_FIELDS:
        return CHANGE_FIELDS[where]
    if where.startswith("change"):
        return "op" if "op" in where else "change_kind"
    if where.startswith("selector"):
        tail = where.removeprefix("selector.")
        return {"tags_all": "tags", "site_id": "site_id", "rack_id": "rack_id"}.get(
            tail, "selector"
        )
    if where.startswith("waves"):
        tail = where.removeprefix("waves.")
        return tail if tail in ("max_per_rack", "max_per_feed") else "waves"
    if where.startswith("gates."):
        tail = where.removeprefix("gates.")
        return tail if tail in GATE_FIELDS else "form"
    return where if where in FIELDS else "form"
