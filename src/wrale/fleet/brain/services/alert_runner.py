"""The alert cycle's I/O: read recent samples for each enabled rule, run the pure
``alert_eval.evaluate``, apply its decisions (alerts, history, per-key state, bus events,
queued notifications). Sending them is the ``notifications.deliver`` job's (``delivery``).

Safe on every replica at once: each rule row is locked FOR UPDATE SKIP LOCKED (PostgreSQL)
while it is evaluated, so one replica evaluates it and the others skip it; decisions are
idempotent against the stored state, so a repeated evaluation changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.bus import EventBus
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Device, Rack
from wrale.fleet.brain.models.alerts import Alert, AlertRule, AlertRuleState
from wrale.fleet.brain.services import notify, notify_route
from wrale.fleet.brain.services.alert_eval import FRESH_S, Decision, KeyState, RuleSpec, evaluate
from wrale.fleet.brain.services.alerts import alert_view, transition

log = logging.getLogger(__name__)

Samples = dict[str, list[tuple[float, float]]]
SampleReader = Callable[[AsyncSession, str, str, Sequence[str], float, float], Awaitable[Samples]]
_STATE_FIELDS = tuple(KeyState.__dataclass_fields__)


async def telemetry_samples(
    session: AsyncSession,
    tenant_id: str,
    metric: str,
    device_ids: Sequence[str],
    since: float,
    until: float,
) -> Samples:
    """Raw samples of ``metric`` in [since, until] per device, oldest first."""
    from wrale.fleet.brain.services import telemetry  # the telemetry area's service

    raw = await telemetry.recent_points(session, tenant_id, metric, list(device_ids), since, until)
    return {k: [(float(t), float(v)) for t, v in pts] for k, pts in raw.items()}


async def scope_devices(session: AsyncSession, rule: AlertRule) -> list[Device]:
    """The devices a rule watches (decommissioned ones never)."""
    stmt = select(Device).where(Device.tenant_id == rule.tenant_id)
    if rule.scope_type == "group" and rule.scope_id:
        from wrale.fleet.brain.services.groups import devices_in_group

        try:
            devices = await devices_in_group(session, rule.tenant_id, rule.scope_id, True)
        except Exception:  # the group is gone: the rule watches nothing
            log.warning("alert rule %s: group %s is gone", rule.id, rule.scope_id)
            return []
        return [d for d in devices if d.status != "decommissioned"]
    if rule.scope_type == "device":
        stmt = stmt.where(Device.id == rule.scope_id)
    elif rule.scope_type == "rack":
        stmt = stmt.where(Device.rack_id == rule.scope_id)
    elif rule.scope_type == "zone":
        stmt = stmt.where(Device.zone_id == rule.scope_id)
    stmt = stmt.where(Device.status != "decommissioned").order_by(Device.id)
    return list((await session.scalars(stmt)).all())


async def _rack_series(
    session: AsyncSession, rule: AlertRule, now: float, read_samples: SampleReader
) -> tuple[Samples, dict[str, float]]:
    """One (newest ts, sum of fresh latest values) sample per rack, and each rack's budget."""
    stmt = select(Rack).where(Rack.tenant_id == rule.tenant_id)
    if rule.scope_type == "rack":
        stmt = stmt.where(Rack.id == rule.scope_id)
    racks = list((await session.scalars(stmt)).all())
    devices = await scope_devices(session, rule)
    ids = [d.id for d in devices]
    recent = await read_samples(session, rule.tenant_id, rule.metric, ids, now - FRESH_S, now)
    latest = {k: max(pts) for k, pts in recent.items() if pts}
    samples: Samples = {}
    for rack in racks:
        fresh = [
            latest[d.id]
            for d in devices
            if d.rack_id == rack.id and d.id in latest and latest[d.id][0] >= now - FRESH_S
        ]
        if fresh:
            samples[rack.id] = [(max(t for t, _ in fresh), sum(v for _, v in fresh))]
    budgets = {r.id: r.power_budget_w for r in racks if r.power_budget_w is not None}
    return samples, budgets


async def evaluate_rules(
    session: AsyncSession,
    tenant_id: str | None,
    now: float,
    bus: EventBus | None,
    *,
    read_samples: SampleReader = telemetry_samples,
) -> list[Decision]:
    """Evaluate every enabled rule (of one tenant, or all with None); returns what changed."""
    stmt = select(AlertRule.id).where(AlertRule.enabled.is_(True)).order_by(AlertRule.id)
    if tenant_id is not None:
        stmt = stmt.where(AlertRule.tenant_id == tenant_id)
    out: list[Decision] = []
    for rule_id in list(await session.scalars(stmt)):
        locked = select(AlertRule).where(AlertRule.id == rule_id)
        rule = await session.scalar(locked.with_for_update(skip_locked=True))
        if rule is None or not rule.enabled:
            continue  # another replica holds it, or it went away
        out += await _evaluate_rule(session, rule, now, bus, read_samples)
    return out


async def _evaluate_rule(
    session: AsyncSession,
    rule: AlertRule,
    now: float,
    bus: EventBus | None,
    read_samples: SampleReader,
) -> list[Decision]:
    thresholds: dict[str, float] | None = None
    if rule.aggregate == "rack_sum":
        samples, thresholds = await _rack_series(session, rule, now, read_samples)
    else:
        ids = [d.id for d in await scope_devices(session, rule)]
        since = now - rule.for_s - FRESH_S
        samples = (
            await read_samples(session, rule.tenant_id, rule.metric, ids, since, now) if ids else {}
        )
    rows = {
        s.key: s
        for s in await session.scalars(
            select(AlertRuleState).where(AlertRuleState.rule_id == rule.id)
        )
    }
    previous = {k: KeyState(**{f: getattr(s, f) for f in _STATE_FIELDS}) for k, s in rows.items()}
    spec = RuleSpec(rule.op, rule.threshold, rule.for_s, rule.flap_window_s, rule.flap_threshold)
    decisions = evaluate(spec, samples, now, previous, thresholds)
    for d in decisions:
        row = rows.get(d.key)
        if row is None:
            row = AlertRuleState(tenant_id=rule.tenant_id, rule_id=rule.id, key=d.key)
            session.add(row)
        alert_id = await _apply(session, rule, d, row.alert_id, now, bus)
        for f in _STATE_FIELDS:
            setattr(row, f, getattr(d.state, f))
        row.alert_id = alert_id
    await session.flush()
    return decisions


def _message(rule: AlertRule, d: Decision) -> str:
    value = "?" if d.value is None else f"{d.value:g}"
    limit = "?" if d.threshold is None else f"{d.threshold:g}"
    what = f"rack {d.key} {rule.metric}" if rule.aggregate == "rack_sum" else rule.metric
    return f"{rule.name}: {what} {value} {rule.op} {limit}"[:255]


async def _apply(
    session: AsyncSession,
    rule: AlertRule,
    d: Decision,
    alert_id: str | None,
    now: float,
    bus: EventBus | None,
) -> str | None:
    """Make the alert rows follow a decision; returns the key's alert id."""
    alert = await session.get(Alert, alert_id) if alert_id else None
    action = d.action
    if action == "reopen" and alert is None:
        action = "raise"
    if action == "raise":
        alert = await _raise(session, rule, d, now)
    elif alert is None or action is None:
        return alert_id
    elif action == "reopen":
        transition(session, alert, "active", now, None, None, "fired again", "reopened", d.value)
        alert.cleared_at = alert.cleared_by = alert.acknowledged_at = alert.acknowledged_by = None
        alert.value, alert.threshold = d.value, d.threshold
        alert.message = _message(rule, d)
        if d.state.flapping and not alert.flapping:
            transition(
                session, alert, None, now, None, None, "flapping: notifications held", "flapping"
            )
    elif action == "clear":
        if alert.state == "cleared":
            return alert.id
        transition(
            session, alert, "cleared", now, None, None, "condition no longer holds", value=d.value
        )
        alert.cleared_at, alert.value = now, d.value
    elif action == "stable":
        transition(session, alert, None, now, None, None, "stable again", "stable")
    alert.flap_count, alert.flapping = d.state.flap_count, d.state.flapping
    kind = {"raise": "alert.raised", "reopen": "alert.raised", "clear": "alert.cleared"}.get(
        action or "", "alert.updated"
    )
    data = {**alert_view(alert), "event": action}
    if bus is not None:
        bus.publish(rule.tenant_id, kind, data)
    if d.notify and rule.channel_ids:
        device = await session.get(Device, alert.device_id) if alert.device_id else None
        await notify.queue(
            session,
            rule.tenant_id,
            list(rule.channel_ids),
            kind,
            notify_route.payload(kind, action, alert, device),
            now,
            alert.id,
        )
    return alert.id


async def _raise(session: AsyncSession, rule: AlertRule, d: Decision, now: float) -> Alert:
    device_id = rack_id = None
    if rule.aggregate == "rack_sum":
        rack_id = d.key
    else:
        device_id = d.key
        device = await session.get(Device, d.key)
        rack_id = device.rack_id if device else None
    alert = Alert(
        tenant_id=rule.tenant_id,
        rule_id=rule.id,
        rule_name=rule.name,
        key=d.key,
        device_id=device_id,
        rack_id=rack_id,
        metric=rule.metric,
        severity=rule.severity,
        state="active",
        value=d.value,
        threshold=d.threshold,
        message=_message(rule, d),
        raised_at=now,
        updated_at=now,
    )
    session.add(alert)
    await session.flush()
    transition(session, alert, "active", now, None, None, alert.message, "raised", d.value)
    return alert


async def run_alert_cycle(
    db: Database,
    bus: EventBus | None,
    now: float,
    *,
    read_samples: SampleReader = telemetry_samples,
) -> dict[str, int]:
    """One background pass: evaluate every tenant's rules (committed). Notifications are
    only queued here; the separate ``notifications.deliver`` job sends them, so a slow
    receiver never holds up evaluation."""
    async with db.session() as session:
        decisions = await evaluate_rules(session, None, now, bus, read_samples=read_samples)
    return {"decisions": len(decisions)}
