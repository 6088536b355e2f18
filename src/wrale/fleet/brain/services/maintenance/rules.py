"""Maintenance rules (``docs/maintenance.md``): validated (the alert rules' metric names,
operators and ranges; a 422 names the field, e.g. ``condition.all[1].value``), stored per
organisation and scope (fleet, group, site, rack or device), audited. Deleting a rule
closes its open tasks. Evaluation is ``rules_runner``'s; tasks are ``tasks``'."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import Device, Rack, Site
from wrale.fleet.brain.models.base import now as wall_now
from wrale.fleet.brain.models.groups import Group
from wrale.fleet.brain.models.maintenance import RULE_SCOPES, MaintenanceRule
from wrale.fleet.brain.services import audit
from wrale.fleet.brain.services.alert_rules import METRIC_RE, OPS, check_for, check_threshold
from wrale.fleet.brain.services.fleet_view_builder import METRICS as VIEW_METRICS
from wrale.fleet.brain.services.lookup import get_owned
from wrale.fleet.brain.services.maintenance import tasks
from wrale.fleet.brain.services.maintenance.conditions import METRICS as WINDOW_METRICS
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.fleet.brain.services.telemetry_bounds import METRIC_BOUNDS, bounds_of
from wrale.fleet.brain.services.telemetry_store import lookup_metric_ids
from wrale.shared.errors import InvalidRequestError

FIELDS = ("name", "title", "scope", "scope_id", "condition", "due_in_s", "enabled")
BOUND_KEYS = ("metric", "op", "value", "for_s")
MAX_RULES = 200  # per organisation
MAX_BOUNDS = 20  # per rule
MAX_DEPTH = 3  # nested all/any
MAX_FOR_S = 86_400.0  # a day of 1-minute means per board and bound at most
MIN_DUE_S, MAX_DUE_S = 60.0, 365 * 86_400.0
DEFAULT_DUE_S = 7 * 86_400.0
# metrics known without any board having reported them yet
KNOWN_METRICS = frozenset({*METRIC_BOUNDS, *VIEW_METRICS, *WINDOW_METRICS})
_SCOPE_MODELS: dict[str, type[Group] | type[Site] | type[Rack] | type[Device]] = {
    "group": Group,
    "site": Site,
    "rack": Rack,
    "device": Device,
}


def rule_view(r: MaintenanceRule) -> dict[str, Any]:
    return {
        "id": r.id,
        "name": r.name,
        "title": r.title,
        "scope": r.scope,
        "scope_id": r.scope_id,
        "condition": r.condition,
        "due_in_s": r.due_in_s,
        "enabled": r.enabled,
        "created_by": r.created_by,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
    }


# ----------------------------------------------------------------------------- validation


def _bad(field: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(f"{field}: {message}", field=field)


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _bad(field, "a finite number")
    return float(value)


def _bound(raw: Mapping[str, Any], at: str, unknown: dict[str, str]) -> dict[str, Any]:
    extra = sorted(set(raw) - set(BOUND_KEYS))
    if extra:
        raise _bad(f"{at}.{extra[0]}", f"unknown key; a bound has {', '.join(BOUND_KEYS)}")
    metric = raw.get("metric")
    if not isinstance(metric, str) or not METRIC_RE.match(metric):
        raise _bad(f"{at}.metric", "a metric name (lower case, digits, _)")
    if metric not in KNOWN_METRICS:
        unknown.setdefault(metric, f"{at}.metric")  # is any board reporting it? asked after
    op = raw.get("op")
    if not isinstance(op, str) or op not in OPS:
        raise _bad(f"{at}.op", f"use one of {' '.join(OPS)}")
    value = _number(raw.get("value"), f"{at}.value")
    try:
        check_threshold(metric, value)
    except InvalidRequestError as exc:
        raise _bad(f"{at}.value", exc.message.removeprefix("threshold: ")) from None
    low, high = bounds_of(metric)
    if not low <= value <= high:
        raise _bad(f"{at}.value", f"{value:g} is outside {low:g}..{high:g}, what {metric} reads")
    for_s = _number(raw.get("for_s", 0), f"{at}.for_s")
    try:
        check_for(for_s)
    except InvalidRequestError as exc:
        raise _bad(f"{at}.for_s", exc.message.removeprefix("for_s: ")) from None
    if for_s > MAX_FOR_S:
        raise _bad(f"{at}.for_s", f"at most {MAX_FOR_S:g} s (a day)")
    return {"metric": metric, "op": op, "value": value, "for_s": for_s}


def _tree(
    raw: Any, at: str, depth: int, counted: list[int], unknown: dict[str, str]
) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise _bad(at, 'an object: {"all": [...]}, {"any": [...]} or a bound')
    modes = [m for m in ("all", "any") if m in raw]
    if not modes:
        counted[0] += 1
        if counted[0] > MAX_BOUNDS:
            raise _bad(at, f"at most {MAX_BOUNDS} bounds in a rule")
        return _bound(raw, at, unknown)
    mode = modes[0]
    if len(raw) != 1:
        raise _bad(at, f"{mode!r} stands alone in its object")
    if depth >= MAX_DEPTH:
        raise _bad(at, f"at most {MAX_DEPTH} levels of all/any")
    parts = raw[mode]
    if not isinstance(parts, list) or not parts:
        raise _bad(f"{at}.{mode}", "a non-empty list")
    if len(parts) > MAX_BOUNDS:
        raise _bad(f"{at}.{mode}", f"at most {MAX_BOUNDS} items")
    return {
        mode: [
            _tree(p, f"{at}.{mode}[{i}]", depth + 1, counted, unknown) for i, p in enumerate(parts)
        ]
    }


async def check_condition(session: AsyncSession, raw: Any) -> dict[str, Any]:
    """The normalised condition tree; ``InvalidRequestError`` names the part that is
    wrong. A metric is known when the alert rules' bounds or the fleet view name it, or a
    board has reported it."""
    unknown: dict[str, str] = {}
    tree = _tree(raw, "condition", 0, [0], unknown)
    if unknown:
        stored = await lookup_metric_ids(session, sorted(unknown))
        missing = sorted(set(unknown) - set(stored))
        if missing:
            known = ", ".join(sorted(KNOWN_METRICS))
            raise _bad(
                unknown[missing[0]],
                f"unknown metric {missing[0]!r}: no board reports it (known: {known})",
            )
    return tree


def _text(data: Mapping[str, Any], key: str, limit: int) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise _bad(key, f"1-{limit} characters")
    return value.strip()


async def _check(session: AsyncSession, tenant_id: str, data: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise _bad(unknown[0], "unknown field")
    name = _text(data, "name", 100)
    title = _text(data, "title", 200) if data.get("title") is not None else name
    scope = data.get("scope", "fleet")
    if scope not in RULE_SCOPES:
        raise _bad("scope", f"use one of {', '.join(RULE_SCOPES)}")
    scope_id = data.get("scope_id")
    if scope == "fleet":
        if scope_id is not None:
            raise _bad("scope_id", "a fleet-wide rule has no scope_id")
    else:
        if not isinstance(scope_id, str) or not scope_id:
            raise _bad("scope_id", f"the {scope}'s id is required")
        try:
            await get_owned(session, _SCOPE_MODELS[scope], tenant_id, scope_id, scope)
        except Exception as exc:  # not found (or another organisation's): name the field
            raise _bad("scope_id", f"no such {scope}") from exc
    condition = await check_condition(session, data.get("condition"))
    due = _number(data.get("due_in_s", DEFAULT_DUE_S), "due_in_s")
    if not MIN_DUE_S <= due <= MAX_DUE_S:
        raise _bad("due_in_s", f"between {MIN_DUE_S:g} and {MAX_DUE_S:g} seconds")
    enabled = data.get("enabled", True)
    if not isinstance(enabled, bool):
        raise _bad("enabled", "true or false")
    return {
        "name": name,
        "title": title,
        "scope": scope,
        "scope_id": scope_id if scope != "fleet" else None,
        "condition": condition,
        "due_in_s": due,
        "enabled": enabled,
    }


# ----------------------------------------------------------------------------- CRUD


async def list_rules(session: AsyncSession, tenant_id: str) -> list[MaintenanceRule]:
    rows = await session.scalars(
        select(MaintenanceRule)
        .where(MaintenanceRule.tenant_id == tenant_id)
        .order_by(MaintenanceRule.id)
    )
    return list(rows)


async def get_rule(session: AsyncSession, tenant_id: str, rule_id: str) -> MaintenanceRule:
    return await get_owned(session, MaintenanceRule, tenant_id, rule_id, "maintenance rule")


async def create_rule(
    session: AsyncSession, p: Principal, data: Mapping[str, Any]
) -> MaintenanceRule:
    p.require(Role.OPERATOR, "maintenance rules")
    clean = await _check(session, p.tenant_id, data)
    count = await session.scalar(
        select(func.count())
        .select_from(MaintenanceRule)
        .where(MaintenanceRule.tenant_id == p.tenant_id)
    )
    if int(count or 0) >= MAX_RULES:
        raise InvalidRequestError(f"at most {MAX_RULES} maintenance rules", field="name")
    at = wall_now()
    r = MaintenanceRule(
        tenant_id=p.tenant_id, created_by=p.name, created_at=at, updated_at=at, **clean
    )
    session.add(r)
    await session.flush()
    audit.record(
        session,
        p,
        "maintenance_rule.create",
        resource_type="maintenance_rule",
        resource_id=r.id,
        after=rule_view(r),
    )
    return r


async def update_rule(
    session: AsyncSession, p: Principal, rule_id: str, changes: Mapping[str, Any]
) -> MaintenanceRule:
    """Change the fields given; the tasks already open stay as they are."""
    p.require(Role.OPERATOR, "maintenance rules")
    r = await get_rule(session, p.tenant_id, rule_id)
    before = rule_view(r)
    merged = {k: before[k] for k in FIELDS} | dict(changes)
    clean = await _check(session, p.tenant_id, merged)
    for key, value in clean.items():
        setattr(r, key, value)
    r.updated_at = wall_now()
    await session.flush()
    audit.record(
        session,
        p,
        "maintenance_rule.update",
        resource_type="maintenance_rule",
        resource_id=r.id,
        before=before,
        after=rule_view(r),
    )
    return r


async def delete_rule(session: AsyncSession, p: Principal, rule_id: str) -> int:
    """Delete the rule and close its open tasks (kept, closed as ``rule_deleted``);
    returns how many were closed."""
    p.require(Role.OPERATOR, "maintenance rules")
    r = await get_rule(session, p.tenant_id, rule_id)
    before = rule_view(r)
    closed = await tasks.close_for_rule(session, r.id, p.name, wall_now())
    await session.delete(r)
    await session.flush()
    audit.record(
        session,
        p,
        "maintenance_rule.delete",
        resource_type="maintenance_rule",
        resource_id=rule_id,
        before=before,
        details={"tasks_closed": closed},
    )
    return closed
