"""The ``maintenance_rules`` background loop: each enabled maintenance rule is judged on
every board of its scope from the stored 1-minute rollups (the minute's mean), by the pure
``rules_eval``; where it holds and the rule has no task counting on the board, a task opens
(audited as the system's). Where it no longer holds, the board's task is marked so a later
episode may open a new one once it is done. Missing data changes nothing. One session per
rule: a rule that fails is logged and the others go on."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Device, Rack, Room
from wrale.fleet.brain.models.maintenance import MaintenanceRule
from wrale.fleet.brain.models.telemetry import TelemetryRollup1m
from wrale.fleet.brain.services import audit, groups
from wrale.fleet.brain.services.maintenance import tasks
from wrale.fleet.brain.services.maintenance.rules_eval import (
    Series,
    Truth,
    bounds,
    build,
    judge,
    latest_values,
    lookback_s,
)
from wrale.fleet.brain.services.telemetry_store import lookup_metric_ids

log = logging.getLogger(__name__)
RULES_INTERVAL_S = 60.0
CHUNK = 500


async def scope_devices(session: AsyncSession, rule: MaintenanceRule) -> list[Device]:
    """The boards a rule watches (decommissioned ones never; a scope gone: none)."""
    if rule.scope == "group" and rule.scope_id:
        try:
            found = await groups.devices_in_group(session, rule.tenant_id, rule.scope_id, True)
        except Exception:  # the group is gone: the rule watches nothing
            log.warning("maintenance rule %s: group %s is gone", rule.id, rule.scope_id)
            return []
        return [d for d in found if d.status != "decommissioned"]
    stmt = select(Device).where(
        Device.tenant_id == rule.tenant_id, Device.status != "decommissioned"
    )
    if rule.scope == "device":
        stmt = stmt.where(Device.id == rule.scope_id)
    elif rule.scope == "rack":
        stmt = stmt.where(Device.rack_id == rule.scope_id)
    elif rule.scope == "site":
        stmt = (
            stmt.join(Rack, Rack.id == Device.rack_id)
            .join(Room, Room.id == Rack.room_id)
            .where(Room.site_id == rule.scope_id)
        )
    return list(await session.scalars(stmt.order_by(Device.id)))


async def minute_means(
    session: AsyncSession,
    devices: Mapping[int, str],
    metrics: Sequence[str],
    since: float,
    until: float,
) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """Device id -> metric -> its (minute start, mean) in [since, until], oldest first."""
    ids = await lookup_metric_ids(session, metrics)
    names = {mid: name for name, mid in ids.items()}
    out: dict[str, dict[str, list[tuple[float, float]]]] = defaultdict(dict)
    if not names or not devices:
        return out
    r = TelemetryRollup1m
    nums = sorted(devices)
    for i in range(0, len(nums), CHUNK):
        rows = await session.execute(
            select(r.device_num, r.metric_id, r.bucket_ts, r.sum, r.count)
            .where(
                r.device_num.in_(nums[i : i + CHUNK]),
                r.metric_id.in_(sorted(names)),
                r.bucket_ts >= int(since),
                r.bucket_ts <= int(until),
                r.count > 0,
            )
            .order_by(r.device_num, r.metric_id, r.bucket_ts)
        )
        for num, mid, bucket, total, count in rows:
            series = out[devices[num]].setdefault(names[mid], [])
            series.append((float(bucket), float(total) / float(count)))
    return out


async def evaluate_rule(session: AsyncSession, rule: MaintenanceRule, now: float) -> int:
    """Judge ``rule`` on its boards and open the tasks it asks for; how many opened."""
    expr = build(rule.condition)
    devices = await scope_devices(session, rule)
    if not devices:
        return 0
    metrics = sorted({b.metric for b in bounds(expr)})
    series = await minute_means(
        session, {d.num: d.id for d in devices}, metrics, now - lookback_s(expr), now
    )
    counting = await tasks.latched(session, rule.id)
    opened = 0
    for d in devices:
        mine: Mapping[str, Series] = series.get(d.id, {})
        truth = judge(expr, mine, now)
        if truth is Truth.HOLDS and d.id not in counting:
            t = tasks.open_task(session, rule, d.id, latest_values(expr, mine), now)
            await session.flush()
            audit.record(
                session,
                None,
                "maintenance_task.open",
                resource_type="maintenance_task",
                resource_id=t.id,
                after=tasks.task_view(t),
                tenant_id=rule.tenant_id,
                actor_name="maintenance_rules",
            )
            opened += 1
        elif truth in (Truth.FALSE, Truth.PENDING):
            for t in counting.get(d.id, []):
                if t.condition_cleared_at is None:
                    t.condition_cleared_at = now
    await session.flush()
    return opened


async def evaluate_all(db: Database, now: float) -> dict[str, int]:
    """One pass over every organisation's enabled rules (each in its own transaction)."""
    async with db.session() as s:
        rule_ids = list(
            await s.scalars(
                select(MaintenanceRule.id)
                .where(MaintenanceRule.enabled.is_(True))
                .order_by(MaintenanceRule.id)
            )
        )
    opened = failed = 0
    for rule_id in rule_ids:
        try:
            async with db.session() as s:
                rule = await s.get(MaintenanceRule, rule_id)
                if rule is None or not rule.enabled:
                    continue  # deleted or disabled meanwhile
                opened += await evaluate_rule(s, rule, now)
        except Exception:  # one broken rule must not hold up the others
            log.exception("maintenance rule %s: evaluation failed", rule_id)
            failed += 1
    if opened:
        log.info("maintenance rules: %d task(s) opened", opened)
    return {"rules": len(rule_ids), "opened": opened, "failed": failed}
