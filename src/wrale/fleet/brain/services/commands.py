"""Commands to devices: validation on the server (operation and arguments, role, device
state, tamper lockdown, simulator-only operations), storage and the lifecycle
queued → sent → succeeded | failed | refused | expired. The device checks physical safety
again; delivery belongs to the device channel, which calls ``due_for``, ``mark_sent`` and
``record_result``. Every transition is a conditional UPDATE, safe across replicas.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.bus import EventBus, publish_after_commit
from wrale.fleet.brain.models import Device, Rack, Room
from wrale.fleet.brain.models.base import new_id
from wrale.fleet.brain.models.base import now as wall_now
from wrale.fleet.brain.models.commands import Command
from wrale.fleet.brain.models.twin import DeviceTwin
from wrale.fleet.brain.services import audit, groups
from wrale.fleet.brain.services.command_rules import ADMIN_OPS as ADMIN_OPS
from wrale.fleet.brain.services.command_rules import SIM_FAULTS as SIM_FAULTS
from wrale.fleet.brain.services.command_rules import check_args as check_args
from wrale.fleet.brain.services.command_rules import refusal
from wrale.fleet.brain.services.command_rules import resolve_deadline as resolve_deadline
from wrale.fleet.brain.services.lookup import get_owned
from wrale.fleet.brain.services.maintenance import gate
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.fleet.brain.services.twin import check_json
from wrale.shared.errors import ConflictError, InvalidRequestError, LockdownError

log = logging.getLogger("wrale.central.commands")

STATUSES = ("queued", "sent", "succeeded", "failed", "refused", "expired")
OPEN = ("queued", "sent")
DEVICE_FINAL = ("succeeded", "failed", "refused", "expired")
SENT_GRACE_S = 60.0  # a sent command without a result is expired this long after its deadline
MAX_REASON = 2000


# ----------------------------------------------------------------------------- views


def command_view(c: Command) -> dict[str, Any]:
    return {
        "id": c.id,
        "device_id": c.device_id,
        "batch_id": c.batch_id,
        "op": c.op,
        "args": c.args,
        "status": c.status,
        "reason": c.reason,
        "result": c.result,
        "deadline": c.deadline,
        "created_by": c.created_by,
        "created_at": c.created_at,
        "sent_at": c.sent_at,
        "finished_at": c.finished_at,
    }


async def get_command(session: AsyncSession, tenant_id: str, command_id: str) -> Command:
    return await get_owned(session, Command, tenant_id, command_id, "command")


# ----------------------------------------------------------------------------- creation


def _authorise(p: Principal, op: str) -> None:
    p.require(Role.OPERATOR, "sending commands")
    if op in ADMIN_OPS:
        p.require(Role.ADMIN, f"the {op} command")


async def _reported(session: AsyncSession, device_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    if not device_ids:
        return {}
    rows = await session.execute(
        select(DeviceTwin.device_id, DeviceTwin.reported).where(
            DeviceTwin.device_id.in_(list(device_ids))
        )
    )
    return {r.device_id: dict(r.reported or {}) for r in rows}


def _new(
    p: Principal, device: Device, op: str, args: dict[str, Any], deadline: float, batch: str | None
) -> Command:
    return Command(
        id=new_id(),
        tenant_id=device.tenant_id,
        device_id=device.id,
        batch_id=batch,
        op=op,
        args=args,
        status="queued",
        deadline=deadline,
        created_by=p.name,
        created_at=wall_now(),
    )


def _queued(session: AsyncSession, bus: EventBus | None, c: Command) -> None:
    publish_after_commit(
        session,
        bus,
        c.tenant_id,
        "command.queued",
        {"device_id": c.device_id, "command_id": c.id, "batch_id": c.batch_id, "op": c.op},
    )


async def create_command(
    session: AsyncSession,
    p: Principal,
    device_id: str,
    op: str,
    args: Any,
    *,
    deadline: float | None = None,
    timeout_s: float | None = None,
    bus: EventBus | None = None,
    override_reason: str | None = None,
) -> Command:
    """Queue ``op`` for one device; 422 for bad arguments, 403 for the role, 409 when the
    device cannot take it (held, lockdown, not simulated). A disruptive op waits for a
    maintenance window unless ``override_reason`` lets it through (``maintenance.gate``)."""
    _authorise(p, op)
    clean = check_args(op, args)
    at = wall_now()
    until = resolve_deadline(deadline, timeout_s, at)
    device = await get_owned(session, Device, p.tenant_id, device_id, "device")
    reported = (await _reported(session, [device.id])).get(device.id, {})
    refused = refusal(op, device, reported)
    if refused is not None:
        kind, reason = refused
        error = LockdownError if kind == "lockdown" else ConflictError
        raise error(reason, device_id=device.id, refused=kind)
    cmd = _new(p, device, op, clean, until, None)
    await gate.on_create(session, p, device, cmd, override_reason, at)
    session.add(cmd)
    await session.flush()
    audit.record(
        session,
        p,
        "command.create",
        resource_type="command",
        resource_id=cmd.id,
        after=command_view(cmd),
    )
    _queued(session, bus, cmd)
    return cmd


async def create_batch(
    session: AsyncSession,
    p: Principal,
    devices: Sequence[Device],
    op: str,
    args: Any,
    *,
    deadline: float | None = None,
    timeout_s: float | None = None,
    bus: EventBus | None = None,
    target: dict[str, Any] | None = None,
) -> tuple[str, list[Command], list[dict[str, Any]]]:
    """Queue ``op`` for each of ``devices`` under one batch id; a device that cannot take
    it is listed as refused with the reason instead of failing the batch."""
    _authorise(p, op)
    clean = check_args(op, args)
    at = wall_now()
    until = resolve_deadline(deadline, timeout_s, at)
    batch = new_id()
    reported = await _reported(session, [d.id for d in devices])
    made: list[Command] = []
    refused: list[dict[str, Any]] = []
    for device in devices:
        why = refusal(op, device, reported.get(device.id, {}))
        if why is not None:
            refused.append({"device_id": device.id, "name": device.name, "reason": why[1]})
            continue
        made.append(_new(p, device, op, clean, until, batch))
    session.add_all(made)
    await session.flush()
    audit.record(
        session,
        p,
        "command.batch",
        resource_type="command_batch",
        resource_id=batch,
        after={
            "op": op,
            "args": clean,
            "deadline": until,
            "count": len(made),
            "refused": len(refused),
            "target": target or {},
        },
    )
    for cmd in made:
        _queued(session, bus, cmd)
    return batch, made, refused


async def select_devices(
    session: AsyncSession, tenant_id: str, selector: dict[str, Any]
) -> list[Device]:
    """The tenant's devices matching a group selector (at least one clause), by id."""
    clean = await groups.validate_selector(session, tenant_id, selector)
    if not clean:
        raise InvalidRequestError(
            "selector: give at least one clause (tags, status, site_id, room_id, rack_id…)",
            field="selector",
        )
    rows = await session.execute(
        select(Rack.id, Rack.room_id, Room.site_id)
        .join(Room, Room.id == Rack.room_id)
        .where(Rack.tenant_id == tenant_id)
    )
    places = {r.id: groups.Place(r.room_id, r.site_id) for r in rows}
    devices = await session.scalars(
        select(Device).where(Device.tenant_id == tenant_id).order_by(Device.id)
    )
    return [
        d for d in devices if groups.matches(clean, d, places.get(d.rack_id) if d.rack_id else None)
    ]


# ----------------------------------------------------------------------------- lifecycle


def _updated(
    session: AsyncSession, bus: EventBus | None, tenant_id: str, data: dict[str, Any]
) -> None:
    publish_after_commit(session, bus, tenant_id, "command.updated", data)


async def due_for(
    session: AsyncSession, device: Device, now: float, limit: int = 100
) -> list[Command]:
    """The device's queued commands whose deadline has not passed, oldest first, less the
    disruptive ones waiting for a maintenance window."""
    rows = await session.scalars(
        select(Command)
        .where(
            Command.device_id == device.id,
            Command.status == "queued",
            Command.deadline > now,
        )
        .order_by(Command.id)
        .limit(limit)
    )
    return await gate.deliverable(session, device, list(rows), now)


async def mark_sent(
    session: AsyncSession, ids: Sequence[str], now: float, bus: EventBus | None = None
) -> None:
    """queued → sent for ``ids`` (those no longer queued are left alone)."""
    if not ids:
        return
    result = await session.execute(
        update(Command)
        .where(Command.id.in_(list(ids)), Command.status == "queued")
        .values(status="sent", sent_at=now)
        .returning(Command.id, Command.tenant_id, Command.device_id)
        .execution_options(synchronize_session=False)
    )
    for row in result.all():
        _updated(
            session,
            bus,
            row.tenant_id,
            {"device_id": row.device_id, "command_id": row.id, "status": "sent"},
        )


async def record_result(
    session: AsyncSession,
    device: Device,
    command_id: str,
    status: str,
    reason: str | None,
    result: dict[str, Any] | None,
    now: float,
    bus: EventBus | None = None,
) -> None:
    """The device's answer: succeeded, failed, refused (or expired). An unknown id, another
    device's command or a finished one is ignored with a log line."""
    if status not in DEVICE_FINAL:
        log.warning("device %s: result %r of command %s ignored", device.id, status, command_id)
        return
    text = (reason or "").strip()[:MAX_REASON] or None
    if text is None and status != "succeeded":
        text = f"{status} (the device gave no reason)"
    try:
        check_json(result or {}, "result")
    except InvalidRequestError:
        result = {"invalid": "the device's result was not storable JSON"}
    done = await session.execute(
        update(Command)
        .where(
            Command.id == command_id,
            Command.device_id == device.id,
            Command.status.in_(OPEN),
        )
        .values(
            status=status,
            reason=text,
            result=dict(result or {}),
            finished_at=now,
        )
        .returning(Command.id, Command.sent_at)
        .execution_options(synchronize_session=False)
    )
    row = done.first()
    if row is None:
        log.info(
            "device %s: result for command %s ignored (unknown, not its own, or finished)",
            device.id,
            command_id,
        )
        return
    if row.sent_at is None:  # answered before we saw it sent (another replica sent it)
        await session.execute(
            update(Command)
            .where(Command.id == command_id)
            .values(sent_at=now)
            .execution_options(synchronize_session=False)
        )
    _updated(
        session,
        bus,
        device.tenant_id,
        {"device_id": device.id, "command_id": command_id, "status": status, "reason": text},
    )


async def expire_due(session: AsyncSession, now: float, bus: EventBus | None = None) -> int:
    """Expire queued commands past their deadline and sent ones with no result by
    ``SENT_GRACE_S`` after it; returns how many (a background job runs it)."""
    count = 0
    for status, before, reason in (
        ("queued", now, "not delivered before its deadline (the device was not connected)"),
        ("sent", now - SENT_GRACE_S, "no result from the device by its deadline"),
    ):
        result = await session.execute(
            update(Command)
            .where(Command.status == status, Command.deadline <= before)
            .values(status="expired", reason=reason, finished_at=now)
            .returning(Command.id, Command.tenant_id, Command.device_id)
            .execution_options(synchronize_session=False)
        )
        for row in result.all():
            count += 1
            _updated(
                session,
                bus,
                row.tenant_id,
                {
                    "device_id": row.device_id,
                    "command_id": row.id,
                    "status": "expired",
                    "reason": reason,
                },
            )
    if count:
        log.info("expired %d command(s)", count)
    return count


async def cancel(
    session: AsyncSession, p: Principal, command_id: str, bus: EventBus | None = None
) -> Command:
    """A queued command ends as failed, "cancelled by <user>"; anything else is 409."""
    p.require(Role.OPERATOR, "cancelling commands")
    cmd = await get_command(session, p.tenant_id, command_id)
    reason = f"cancelled by {p.name}"
    at = wall_now()
    done = await session.execute(
        update(Command)
        .where(Command.id == cmd.id, Command.status == "queued")
        .values(status="failed", reason=reason, finished_at=at)
        .execution_options(synchronize_session=False)
    )
    await session.refresh(cmd)
    if not done.rowcount:  # type: ignore[attr-defined]
        raise ConflictError(
            f"command {cmd.id} is {cmd.status}: only a queued command can be cancelled",
            status=cmd.status,
        )
    audit.record(
        session,
        p,
        "command.cancel",
        resource_type="command",
        resource_id=cmd.id,
        after=command_view(cmd),
    )
    _updated(
        session,
        bus,
        cmd.tenant_id,
        {"device_id": cmd.device_id, "command_id": cmd.id, "status": "failed", "reason": reason},
    )
    return cmd
