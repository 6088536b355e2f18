"""Alert rules (CRUD, validated through ``alert_rules``) and alerts (acknowledge, assign,
clear, history). Evaluation itself is in ``alert_eval`` (pure) and ``alert_runner`` (I/O).
Every mutation records an audit entry in the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.bus import EventBus
from wrale.fleet.brain.models import Device, Rack, User, Zone
from wrale.fleet.brain.models.alerts import (
    Alert,
    AlertEvent,
    AlertRule,
    AlertRuleState,
    NotificationChannel,
)
from wrale.fleet.brain.models.base import now as wall_now
from wrale.fleet.brain.models.groups import Group
from wrale.fleet.brain.services import audit
from wrale.fleet.brain.services.alert_rules import (
    SCOPES,
    SEVERITIES,
    Condition,
    check_condition,
    describe,
    parse_expression,
)
from wrale.fleet.brain.services.lookup import get_owned
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.shared.errors import ConflictError, InvalidRequestError, NotFoundError

RULE_FIELDS = (
    "name",
    "description",
    "metric",
    "op",
    "threshold",
    "aggregate",
    "for_s",
    "severity",
    "scope_type",
    "scope_id",
    "enabled",
    "channel_ids",
    "flap_window_s",
    "flap_threshold",
)
OPEN_STATES = ("active", "acknowledged")


def rule_view(r: AlertRule) -> dict[str, Any]:
    view = {f: getattr(r, f) for f in RULE_FIELDS}
    view["threshold"] = "budget" if r.threshold is None else r.threshold
    view.update(
        id=r.id,
        expression=describe(Condition(r.metric, r.op, r.threshold, r.for_s, r.aggregate)),
        created_at=r.created_at,
        updated_at=r.updated_at,
    )
    return view


async def get_rule(session: AsyncSession, tenant_id: str, rule_id: str) -> AlertRule:
    return await get_owned(session, AlertRule, tenant_id, rule_id, "alert rule")


async def _check_scope(
    session: AsyncSession, tenant_id: str, scope_type: str, scope_id: str | None
) -> None:
    if scope_type not in SCOPES:
        raise InvalidRequestError(f"scope_type: use one of {', '.join(SCOPES)}")
    if scope_type == "fleet":
        if scope_id is not None:
            raise InvalidRequestError("scope_id: the fleet scope takes no scope_id")
        return
    if not scope_id:
        raise InvalidRequestError(f"scope_id: a {scope_type} scope needs the {scope_type}'s id")
    models: dict[str, type[Device] | type[Group] | type[Rack] | type[Zone]] = {
        "device": Device,
        "group": Group,
        "rack": Rack,
        "zone": Zone,
    }
    model = models[scope_type]
    owner = await session.scalar(select(model.tenant_id).where(model.id == scope_id))
    if owner != tenant_id:
        raise NotFoundError(f"no {scope_type} {scope_id}")


async def _check_channels(session: AsyncSession, tenant_id: str, ids: list[str]) -> None:
    if not ids:
        return
    found = set(
        await session.scalars(
            select(NotificationChannel.id).where(
                NotificationChannel.tenant_id == tenant_id, NotificationChannel.id.in_(ids)
            )
        )
    )
    missing = [i for i in ids if i not in found]
    if missing:
        raise InvalidRequestError(f"channel_ids: no notification channel {missing[0]}")


def _merge_expression(fields: dict[str, Any]) -> dict[str, Any]:
    expression = fields.pop("expression", None)
    if expression is None:
        return fields
    clash = [k for k in ("metric", "op", "threshold", "aggregate") if fields.get(k) is not None]
    if clash:
        raise InvalidRequestError(
            f"expression: give either an expression or {', '.join(clash)}, not both"
        )
    cond = parse_expression(expression)
    threshold = "budget" if cond.threshold is None else cond.threshold
    fields.update(metric=cond.metric, op=cond.op, threshold=threshold, aggregate=cond.aggregate)
    if fields.get("for_s") is None:
        fields["for_s"] = cond.for_s
    return fields


async def _validate(session: AsyncSession, tenant_id: str, rule: AlertRule) -> None:
    if rule.threshold is not None and not isinstance(rule.threshold, int | float):
        raise InvalidRequestError("threshold: a number, or 'budget' for rack power rules")
    check_condition(Condition(rule.metric, rule.op, rule.threshold, rule.for_s, rule.aggregate))
    if rule.severity not in SEVERITIES:
        raise InvalidRequestError(f"severity: use one of {', '.join(SEVERITIES)}")
    await _check_scope(session, tenant_id, rule.scope_type, rule.scope_id)
    if rule.aggregate == "rack_sum" and rule.scope_type not in ("rack", "fleet"):
        raise InvalidRequestError("scope_type: a rack rule applies to one rack or the fleet")
    if rule.flap_window_s < 0 or rule.flap_threshold < 2:
        raise InvalidRequestError("flap: need flap_window_s >= 0 and flap_threshold >= 2")
    await _check_channels(session, tenant_id, list(rule.channel_ids or []))
    clash = await session.scalar(
        select(AlertRule.id).where(AlertRule.tenant_id == tenant_id, AlertRule.name == rule.name)
    )
    if clash and clash != rule.id:
        raise ConflictError(f"an alert rule named {rule.name!r} exists")


def _threshold(value: Any) -> Any:
    return None if value == "budget" else value


async def create_rule(session: AsyncSession, p: Principal, fields: dict[str, Any]) -> AlertRule:
    """Create a rule from the API's fields (``expression`` or metric/op/threshold)."""
    p.require(Role.OPERATOR, "creating alert rules")
    fields = _merge_expression(dict(fields))
    for needed in ("metric", "op", "threshold"):
        if fields.get(needed) is None:
            raise InvalidRequestError(f"{needed}: required (or give an expression)")
    fields["threshold"] = _threshold(fields.get("threshold"))
    values = {k: v for k, v in fields.items() if k in RULE_FIELDS and v is not None}
    values["threshold"] = fields["threshold"]
    values.setdefault("aggregate", "device")
    values.setdefault("severity", "WARNING")
    values.setdefault("for_s", 0.0)
    values.setdefault("scope_type", "fleet")
    values.setdefault("channel_ids", [])
    values.setdefault("flap_window_s", 600.0)
    values.setdefault("flap_threshold", 3)
    values.setdefault("enabled", True)
    rule = AlertRule(tenant_id=p.tenant_id, **values)
    await _validate(session, p.tenant_id, rule)
    session.add(rule)
    await session.flush()
    audit.record(
        session,
        p,
        "alert_rule.create",
        resource_type="alert_rule",
        resource_id=rule.id,
        after=rule_view(rule),
    )
    return rule


async def update_rule(
    session: AsyncSession, p: Principal, rule_id: str, fields: dict[str, Any], now: float
) -> AlertRule:
    """Change the given fields; a rule whose condition changes starts evaluating afresh."""
    p.require(Role.OPERATOR, "changing alert rules")
    rule = await get_rule(session, p.tenant_id, rule_id)
    before = rule_view(rule)
    fields = _merge_expression(dict(fields))
    if "threshold" in fields:
        if fields["threshold"] is None:
            raise InvalidRequestError("threshold: a number, or 'budget' for rack power rules")
        fields["threshold"] = _threshold(fields["threshold"])
    for k, v in fields.items():
        if k in RULE_FIELDS and (v is not None or k in ("threshold", "scope_id", "description")):
            setattr(rule, k, v)
    await _validate(session, p.tenant_id, rule)
    rule.updated_at = wall_now()
    changed = {k for k in RULE_FIELDS if before.get(k) != rule_view(rule).get(k)}
    if changed & {"metric", "op", "threshold", "aggregate", "for_s", "scope_type", "scope_id"}:
        await close_rule_alerts(session, rule, now, p.name, "the rule's condition changed")
    elif "enabled" in changed and not rule.enabled:
        await close_rule_alerts(session, rule, now, p.name, "the rule was disabled")
    audit.record(
        session,
        p,
        "alert_rule.update",
        resource_type="alert_rule",
        resource_id=rule.id,
        before=before,
        after=rule_view(rule),
    )
    return rule


async def delete_rule(session: AsyncSession, p: Principal, rule_id: str, now: float) -> None:
    p.require(Role.OPERATOR, "deleting alert rules")
    rule = await get_rule(session, p.tenant_id, rule_id)
    await close_rule_alerts(session, rule, now, p.name, "the rule was deleted")
    audit.record(
        session,
        p,
        "alert_rule.delete",
        resource_type="alert_rule",
        resource_id=rule.id,
        before=rule_view(rule),
    )
    await session.delete(rule)


async def close_rule_alerts(
    session: AsyncSession, rule: AlertRule, now: float, actor: str | None, note: str
) -> None:
    """Clear the rule's open alerts and forget its evaluation state."""
    rows = await session.scalars(
        select(Alert).where(Alert.rule_id == rule.id, Alert.state.in_(OPEN_STATES))
    )
    for a in rows:
        transition(session, a, "cleared", now, actor, None, note)
        a.cleared_at, a.cleared_by = now, actor
    await session.execute(delete(AlertRuleState).where(AlertRuleState.rule_id == rule.id))


# ----------------------------------------------------------------------------- alerts


def alert_view(a: Alert) -> dict[str, Any]:
    return {
        c: getattr(a, c)
        for c in (
            "id",
            "rule_id",
            "rule_name",
            "key",
            "device_id",
            "rack_id",
            "metric",
            "severity",
            "state",
            "value",
            "threshold",
            "message",
            "raised_at",
            "updated_at",
            "acknowledged_at",
            "acknowledged_by",
            "cleared_at",
            "cleared_by",
            "assignee_id",
            "flap_count",
            "flapping",
        )
    }


def event_view(e: AlertEvent) -> dict[str, Any]:
    return {
        "at": e.created_at,
        "action": e.action,
        "from_state": e.from_state,
        "to_state": e.to_state,
        "actor_name": e.actor_name,
        "actor_id": e.actor_id,
        "note": e.note,
        "value": e.value,
    }


def transition(
    session: AsyncSession,
    a: Alert,
    to_state: str | None,
    now: float,
    actor: str | None,
    actor_id: str | None,
    note: str | None,
    action: str | None = None,
    value: float | None = None,
) -> None:
    """Move an alert (when ``to_state``) and add the history line."""
    session.add(
        AlertEvent(
            tenant_id=a.tenant_id,
            alert_id=a.id,
            action=action or to_state or "updated",
            from_state=a.state,
            to_state=to_state or a.state,
            actor_name=actor,
            actor_id=actor_id,
            note=note,
            value=value,
            created_at=now,
        )
    )
    if to_state:
        a.state = to_state
    a.updated_at = now


async def get_alert(session: AsyncSession, tenant_id: str, alert_id: str) -> Alert:
    return await get_owned(session, Alert, tenant_id, alert_id, "alert")


async def history(session: AsyncSession, alert_id: str) -> list[AlertEvent]:
    rows = await session.scalars(
        select(AlertEvent).where(AlertEvent.alert_id == alert_id).order_by(AlertEvent.id)
    )
    return list(rows)


async def acknowledge(
    session: AsyncSession, p: Principal, alert_id: str, note: str | None, bus: EventBus | None
) -> Alert:
    p.require(Role.OPERATOR, "acknowledging alerts")
    a = await get_alert(session, p.tenant_id, alert_id)
    if a.state != "active":
        raise ConflictError(f"the alert is {a.state}; only an active alert can be acknowledged")
    before = alert_view(a)
    t = wall_now()
    transition(session, a, "acknowledged", t, p.name, p.actor_id, note)
    a.acknowledged_at, a.acknowledged_by = t, p.name
    _audit(session, p, "alert.acknowledge", before, a, note)
    _publish(bus, a, "alert.acknowledged")
    return a


async def assign(
    session: AsyncSession, p: Principal, alert_id: str, user_id: str | None, bus: EventBus | None
) -> Alert:
    """Assign to a user of the tenant (422 otherwise), or unassign with None."""
    p.require(Role.OPERATOR, "assigning alerts")
    a = await get_alert(session, p.tenant_id, alert_id)
    if user_id is not None:
        user = await session.get(User, user_id)
        if user is None or user.tenant_id != p.tenant_id or user.disabled:
            raise InvalidRequestError(f"user_id: no active user {user_id} in this organisation")
    before = alert_view(a)
    note = f"assigned to {user_id}" if user_id else "unassigned"
    transition(session, a, None, wall_now(), p.name, p.actor_id, note, action="assigned")
    a.assignee_id = user_id
    _audit(session, p, "alert.assign", before, a, None)
    _publish(bus, a, "alert.assigned")
    return a


async def clear(
    session: AsyncSession, p: Principal, alert_id: str, note: str | None, bus: EventBus | None
) -> Alert:
    """Clear by hand; if the condition still holds, the next evaluation raises a new alert."""
    p.require(Role.OPERATOR, "clearing alerts")
    a = await get_alert(session, p.tenant_id, alert_id)
    if a.state == "cleared":
        raise ConflictError("the alert is already cleared")
    before = alert_view(a)
    t = wall_now()
    transition(session, a, "cleared", t, p.name, p.actor_id, note)
    a.cleared_at, a.cleared_by = t, p.name
    state = await session.scalar(select(AlertRuleState).where(AlertRuleState.alert_id == a.id))
    if state is not None:
        state.active, state.alert_id, state.pending_since = False, None, None
        state.last_cleared_at, state.flapping, state.flap_count = None, False, 0
    _audit(session, p, "alert.clear", before, a, note)
    _publish(bus, a, "alert.cleared")
    return a


def _audit(
    session: AsyncSession,
    p: Principal,
    action: str,
    before: dict[str, Any],
    a: Alert,
    note: str | None,
) -> None:
    audit.record(
        session,
        p,
        action,
        resource_type="alert",
        resource_id=a.id,
        before=before,
        after=alert_view(a),
        details={"note": note} if note else None,
    )


def _publish(bus: EventBus | None, a: Alert, kind: str) -> None:
    if bus is not None:
        bus.publish(a.tenant_id, kind, alert_view(a))
