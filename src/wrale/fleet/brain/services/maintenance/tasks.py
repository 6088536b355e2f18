"""Maintenance tasks (``docs/maintenance.md``): work a maintenance rule asks for on one
board, with a due date. Opened by ``rules_runner`` (once per board and rule while the
condition holds), closed by an operator (``done`` with a note, audited) or when the rule is
deleted; listed, and placed by site and rack for the maintenance queue."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import Device, Rack, Room, Site
from wrale.fleet.brain.models.base import now as wall_now
from wrale.fleet.brain.models.maintenance import TASK_STATES, MaintenanceRule, MaintenanceTask
from wrale.fleet.brain.services import audit
from wrale.fleet.brain.services.lookup import get_owned
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.shared.errors import ConflictError, InvalidRequestError

MAX_LIST = 1000
MAX_NOTE = 1000
CHUNK = 500


def task_view(t: MaintenanceTask, device_name: str | None = None) -> dict[str, Any]:
    return {
        "id": t.id,
        "kind": "task",
        "rule_id": t.rule_id,
        "rule_name": t.rule_name,
        "device_id": t.device_id,
        "device_name": device_name,
        "title": t.title,
        "state": t.state,
        "opened_at": t.opened_at,
        "due_at": t.due_at,
        "readings": dict(t.readings or {}),
        "condition_cleared_at": t.condition_cleared_at,
        "closed_at": t.closed_at,
        "closed_by": t.closed_by,
        "close_reason": t.close_reason,
        "note": t.note,
    }


def open_key(rule_id: str, device_id: str) -> str:
    return f"{rule_id}:{device_id}"


def open_task(
    session: AsyncSession,
    rule: MaintenanceRule,
    device_id: str,
    readings: Mapping[str, float],
    now: float,
) -> MaintenanceTask:
    """A new open task of ``rule`` on the board (the caller knows none is open)."""
    t = MaintenanceTask(
        tenant_id=rule.tenant_id,
        rule_id=rule.id,
        rule_name=rule.name,
        device_id=device_id,
        title=rule.title,
        state="open",
        open_key=open_key(rule.id, device_id),
        opened_at=now,
        due_at=now + rule.due_in_s,
        readings=dict(readings),
        created_at=now,
    )
    session.add(t)
    return t


def _close(t: MaintenanceTask, by: str | None, reason: str, note: str | None, now: float) -> None:
    t.state, t.open_key = "done", None
    t.closed_at, t.closed_by, t.close_reason, t.note = now, by, reason, note


async def latched(session: AsyncSession, rule_id: str) -> dict[str, list[MaintenanceTask]]:
    """Device id -> the rule's tasks that still count: open, or whose condition has not
    stopped holding since (a new task waits for both to end)."""
    rows = await session.scalars(
        select(MaintenanceTask).where(
            MaintenanceTask.rule_id == rule_id,
            or_(MaintenanceTask.state == "open", MaintenanceTask.condition_cleared_at.is_(None)),
        )
    )
    out: dict[str, list[MaintenanceTask]] = {}
    for t in rows:
        out.setdefault(t.device_id, []).append(t)
    return out


async def close_for_rule(session: AsyncSession, rule_id: str, by: str | None, now: float) -> int:
    """Close the rule's open tasks (its rule is being deleted); how many."""
    rows = list(
        await session.scalars(
            select(MaintenanceTask).where(
                MaintenanceTask.rule_id == rule_id, MaintenanceTask.state == "open"
            )
        )
    )
    for t in rows:
        _close(t, by, "rule_deleted", "the rule was deleted", now)
    await session.flush()
    return len(rows)


async def get_task(session: AsyncSession, tenant_id: str, task_id: str) -> MaintenanceTask:
    return await get_owned(session, MaintenanceTask, tenant_id, task_id, "maintenance task")


async def mark_done(
    session: AsyncSession, p: Principal, task_id: str, note: str | None
) -> MaintenanceTask:
    """An operator did the work: the task is closed with the note (audited); a task that
    is closed already is a conflict."""
    p.require(Role.OPERATOR, "maintenance tasks")
    if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE):
        raise InvalidRequestError(f"note: at most {MAX_NOTE} characters", field="note")
    t = await get_task(session, p.tenant_id, task_id)
    if t.state != "open":
        raise ConflictError(f"maintenance task {task_id} is {t.state} already", state=t.state)
    before = task_view(t)
    _close(t, p.name, "done", (note or "").strip() or None, wall_now())
    await session.flush()
    audit.record(
        session,
        p,
        "maintenance_task.done",
        resource_type="maintenance_task",
        resource_id=t.id,
        before=before,
        after=task_view(t),
    )
    return t


async def device_names(
    session: AsyncSession, tenant_id: str, device_ids: Sequence[str]
) -> dict[str, str]:
    ids = sorted(set(device_ids))
    out: dict[str, str] = {}
    for i in range(0, len(ids), CHUNK):
        rows = await session.execute(
            select(Device.id, Device.name).where(
                Device.tenant_id == tenant_id, Device.id.in_(ids[i : i + CHUNK])
            )
        )
        out.update((k, v) for k, v in rows)
    return out


async def list_tasks(
    session: AsyncSession,
    tenant_id: str,
    state: str | None = None,
    device_id: str | None = None,
) -> list[MaintenanceTask]:
    """The organisation's tasks (at most ``MAX_LIST``), earliest due first."""
    if state is not None and state not in TASK_STATES:
        raise InvalidRequestError(f"state: use one of {', '.join(TASK_STATES)}", field="state")
    stmt = select(MaintenanceTask).where(MaintenanceTask.tenant_id == tenant_id)
    if state is not None:
        stmt = stmt.where(MaintenanceTask.state == state)
    if device_id is not None:
        stmt = stmt.where(MaintenanceTask.device_id == device_id)
    stmt = stmt.order_by(MaintenanceTask.due_at, MaintenanceTask.id).limit(MAX_LIST)
    return list(await session.scalars(stmt))


@dataclass(frozen=True, slots=True)
class PlacedTask:
    """An open task with where its board is, for the maintenance queue."""

    task: dict[str, Any]
    device_id: str
    device_name: str | None
    site_id: str | None
    site_name: str | None
    rack_id: str | None
    rack_name: str | None


async def queue_tasks(session: AsyncSession, tenant_id: str) -> list[PlacedTask]:
    """The open tasks with their boards' site and rack (ids and names)."""
    rows = await session.execute(
        select(MaintenanceTask, Device.name, Rack.id, Rack.name, Site.id, Site.name)
        .join(Device, Device.id == MaintenanceTask.device_id)
        .outerjoin(Rack, Rack.id == Device.rack_id)
        .outerjoin(Room, Room.id == Rack.room_id)
        .outerjoin(Site, Site.id == Room.site_id)
        .where(MaintenanceTask.tenant_id == tenant_id, MaintenanceTask.state == "open")
        .order_by(MaintenanceTask.due_at, MaintenanceTask.id)
        .limit(MAX_LIST)
    )
    return [
        PlacedTask(task_view(t, dev), t.device_id, dev, site, site_name, rack, rack_name)
        for t, dev, rack, rack_name, site, site_name in rows
    ]
