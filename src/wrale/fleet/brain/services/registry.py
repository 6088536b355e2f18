"""The device registry: listing, reading, pre-registering, editing, status changes and
deletion of devices, the tenant's device quota and ``num`` allocation. Raises domain
errors only; placement in racks belongs to the topology service, credentials to enrollment.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, exists, func, literal, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.bus import EventBus, publish_after_commit
from wrale.fleet.brain.models import Device, Tenant
from wrale.fleet.brain.models.registry import Counter
from wrale.fleet.brain.services import audit
from wrale.fleet.brain.services.lookup import get_owned
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.shared.errors import ConflictError, InvalidRequestError, NotFoundError

STATUSES = (
    "unknown",
    "online",
    "offline",
    "error",
    "maintenance",
    "decommissioned",
    "quarantined",
)
CHANNEL_STATUSES = frozenset({"online", "offline", "error"})  # set by the device channel
OPERATOR_STATUSES = frozenset({"unknown", "maintenance", "decommissioned"})
# the channel does not override these; "quarantined" is set and ended only by an admin
HELD_STATUSES = frozenset({"maintenance", "decommissioned", "quarantined"})
DEVICE_NUM = "device_num"


def device_view(d: Device) -> dict[str, Any]:
    """The device as the API shows it (and as the audit log records it)."""
    return {
        "id": d.id,
        "name": d.name,
        "model": d.model,
        "hardware_profile": d.hardware_profile,
        "tags": list(d.tags or []),
        "proposed_tags": list(d.proposed_tags or []),
        "status": d.status,
        "last_seen_at": d.last_seen_at,
        "agent_version": d.agent_version,
        "capabilities": list(d.capabilities or []),
        "location": {"rack_id": d.rack_id, "slot_u": d.slot_u, "zone_id": d.zone_id},
        "created_at": d.created_at,
    }


def is_id(value: str) -> bool:
    """Shaped like our ids (32 hex digits); anything else cannot exist (and PostgreSQL
    must never see a NUL)."""
    return len(value) == 32 and all(c in "0123456789abcdef" for c in value)


async def get_device(session: AsyncSession, tenant_id: str, device_id: str) -> Device:
    return await get_owned(session, Device, tenant_id, device_id, "device")


# ----------------------------------------------------------------------------- listing


@dataclass(frozen=True, slots=True)
class DeviceFilter:
    status: Sequence[str] = ()  # any of
    tags: Sequence[str] = ()  # all of
    model: str | None = None
    rack_id: str | None = None
    zone_id: str | None = None
    q: str | None = None  # name contains, case-insensitive
    capability: Sequence[str] = ()  # all of


def _json_list_has(session: AsyncSession, column: Any, value: str) -> ColumnElement[bool]:
    """``value`` is an element of the JSON list in ``column`` (PostgreSQL or SQLite)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.cast(column, JSONB).contains(func.jsonb_build_array(literal(value)))
    each = func.json_each(column).table_valued("value")
    return exists(select(literal(1)).select_from(each).where(each.c.value == value))


async def list_devices(
    session: AsyncSession,
    tenant_id: str,
    flt: DeviceFilter,
    *,
    after_id: str | None = None,
    limit: int = 50,
) -> list[Device]:
    """Devices of the tenant ordered by id, ``limit`` rows after ``after_id``."""
    stmt = select(Device).where(Device.tenant_id == tenant_id)
    if after_id:
        stmt = stmt.where(Device.id > after_id)
    if flt.status:
        stmt = stmt.where(Device.status.in_(list(flt.status)))
    for tag in flt.tags:
        stmt = stmt.where(_json_list_has(session, Device.tags, tag))
    for cap in flt.capability:
        stmt = stmt.where(_json_list_has(session, Device.capabilities, cap))
    if flt.model is not None:
        stmt = stmt.where(Device.model == flt.model)
    if flt.rack_id is not None:
        stmt = stmt.where(Device.rack_id == flt.rack_id)
    if flt.zone_id is not None:
        stmt = stmt.where(Device.zone_id == flt.zone_id)
    if flt.q:
        stmt = stmt.where(func.lower(Device.name).contains(flt.q.lower(), autoescape=True))
    return list((await session.scalars(stmt.order_by(Device.id).limit(limit))).all())


# ----------------------------------------------------------------------------- creation


async def allocate_nums(session: AsyncSession, count: int) -> list[int]:
    """``count`` fresh ``Device.num`` values, held under the counter's lock until commit.

    The UPDATE locks the counter row (PostgreSQL) or takes the write lock (SQLite), so
    concurrent creations queue here and the quota count that follows is exact.
    """
    bump = update(Counter).where(Counter.name == DEVICE_NUM).values(value=Counter.value + count)
    result = await session.execute(bump)
    if not result.rowcount:  # type: ignore[attr-defined]
        is_pg = session.get_bind().dialect.name == "postgresql"
        ins = (pg_insert if is_pg else sqlite_insert)(Counter).values(name=DEVICE_NUM, value=0)
        await session.execute(ins.on_conflict_do_nothing(index_elements=["name"]))
        await session.execute(bump)
    top = int(await session.scalar(select(Counter.value).where(Counter.name == DEVICE_NUM)) or 0)
    # Devices written without the counter (imports, fixtures) must not collide: skip past them.
    highest = int(await session.scalar(select(func.coalesce(func.max(Device.num), 0))) or 0)
    if highest > top - count:
        top = highest + count
        await session.execute(update(Counter).where(Counter.name == DEVICE_NUM).values(value=top))
    return list(range(top - count + 1, top + 1))


async def check_quota(session: AsyncSession, tenant_id: str, adding: int) -> None:
    """409 when ``adding`` devices would exceed the tenant's ``max_devices``."""
    tenant = await session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFoundError(f"no tenant {tenant_id}")
    count = int(
        await session.scalar(
            select(func.count()).select_from(Device).where(Device.tenant_id == tenant_id)
        )
        or 0
    )
    if count + adding > tenant.max_devices:
        raise ConflictError(
            f"the organisation's quota of {tenant.max_devices} devices would be exceeded "
            f"({count} exist, {adding} more requested)",
            max_devices=tenant.max_devices,
            devices=count,
            requested=adding,
        )


async def names_taken(session: AsyncSession, tenant_id: str, names: Sequence[str]) -> list[str]:
    rows = await session.scalars(
        select(Device.name).where(Device.tenant_id == tenant_id, Device.name.in_(list(names)))
    )
    return sorted(rows.all())


async def new_devices(
    session: AsyncSession, tenant_id: str, specs: Sequence[dict[str, Any]]
) -> list[Device]:
    """Create devices from field dicts (quota, unique names, ``num``), flushed.

    A spec without a ``name`` is named ``device-<num>``.
    """
    nums = await allocate_nums(session, len(specs))  # first: the lock the quota needs
    await check_quota(session, tenant_id, len(specs))
    given = [s["name"] for s in specs if s.get("name")]
    if len(set(given)) != len(given):
        dupes = sorted({n for n in given if given.count(n) > 1})
        raise ConflictError(f"names repeated in the request: {', '.join(dupes)}", names=dupes)
    taken = await names_taken(session, tenant_id, given)
    if taken:
        raise ConflictError(f"device names already in use: {', '.join(taken[:20])}", names=taken)
    defaults = {
        num: f"device-{num}" for num, s in zip(nums, specs, strict=True) if not s.get("name")
    }
    clash = set(await names_taken(session, tenant_id, list(defaults.values())))
    devices = []
    for num, spec in zip(nums, specs, strict=True):
        fields = {k: v for k, v in spec.items() if v is not None}
        if not fields.get("name"):
            name = defaults[num]
            fields["name"] = f"{name}-{secrets.token_hex(3)}" if name in clash else name
        devices.append(Device(tenant_id=tenant_id, num=num, **fields))
    session.add_all(devices)
    await session.flush()
    return devices


async def create_device(session: AsyncSession, p: Principal, **fields: Any) -> Device:
    """Pre-register a device (no credential yet; rotate one in to let it connect)."""
    p.require(Role.OPERATOR, "registering devices")
    (device,) = await new_devices(session, p.tenant_id, [fields])
    audit.record(
        session,
        p,
        "device.create",
        resource_type="device",
        resource_id=device.id,
        after=device_view(device),
    )
    return device


UPDATABLE = ("name", "model", "hardware_profile", "tags", "capabilities")


async def update_device(
    session: AsyncSession, p: Principal, device_id: str, changes: dict[str, Any]
) -> Device:
    p.require(Role.OPERATOR, "changing devices")
    device = await get_device(session, p.tenant_id, device_id)
    before = device_view(device)
    name = changes.get("name")
    if name is not None and name != device.name and await names_taken(session, p.tenant_id, [name]):
        raise ConflictError(f"device name {name!r} is already in use")
    for key, value in changes.items():
        if key not in UPDATABLE:
            raise InvalidRequestError(f"{key}: cannot be changed here")
        if key == "name" and value is None:
            raise InvalidRequestError("name: cannot be empty")
        setattr(device, key, value)
    await session.flush()
    audit.record(
        session,
        p,
        "device.update",
        resource_type="device",
        resource_id=device.id,
        before=before,
        after=device_view(device),
    )
    return device


async def delete_device(session: AsyncSession, p: Principal, device_id: str) -> None:
    """Delete a device and its credentials (admin); decommissioning keeps the record."""
    p.require(Role.ADMIN, "deleting devices")
    device = await get_device(session, p.tenant_id, device_id)
    audit.record(
        session,
        p,
        "device.delete",
        resource_type="device",
        resource_id=device.id,
        before=device_view(device),
    )
    await session.delete(device)


# ----------------------------------------------------------------------------- status


async def fresh_under_lock(session: AsyncSession, device: Device) -> bool:
    """Reload ``device`` from its row, locked to the end of the transaction (PostgreSQL;
    SQLite has one writer). The device channel judges a status change on what is committed
    now: an admin's quarantine committed since the device was read is never overwritten by
    "online" or "offline". Whoever changes a status takes this lock before anything else
    of the device, so two such transactions never wait on each other. False when the row
    is gone (deleted while this waited for its lock)."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    found = await session.scalar(
        select(Device)
        .where(Device.id == device.id)
        .with_for_update(key_share=True)  # FOR NO KEY UPDATE: rows that refer to it
        .execution_options(populate_existing=True)
    )
    return found is not None


async def set_status(
    session: AsyncSession,
    device: Device,
    status: str,
    reason: str | None,
    bus: EventBus | None,
    principal: Principal | None = None,
    *,
    locked: bool = False,
) -> bool:
    """Move ``device`` to ``status``; audits it and publishes ``device.status``.

    The device channel calls it with online / offline / error; those never override a held
    status (maintenance, decommissioned), which only an operator ends. Returns whether the
    status changed.
    """
    if status not in STATUSES:
        raise InvalidRequestError(f"status: one of {', '.join(STATUSES)}")
    if status in CHANNEL_STATUSES and not locked:  # locked: the caller re-read it under lock
        await fresh_under_lock(session, device)
    previous = device.status
    if status == previous or (status in CHANNEL_STATUSES and previous in HELD_STATUSES):
        return False
    before = device_view(device)
    device.status = status
    audit.record(
        session,
        principal,
        "device.status",
        resource_type="device",
        resource_id=device.id,
        before=before,
        after=device_view(device),
        details={"reason": reason, "previous": previous, "status": status},
        tenant_id=device.tenant_id,
        actor_name=None if principal else "device-channel",
    )
    # after the commit: the hub ends sessions of held devices and must read the new status
    publish_after_commit(
        session,
        bus,
        device.tenant_id,
        "device.status",
        {
            "device_id": device.id,
            "name": device.name,
            "status": status,
            "previous": previous,
            "reason": reason,
        },
    )
    return True


async def change_status(
    session: AsyncSession,
    p: Principal,
    device_id: str,
    status: str,
    reason: str | None,
    bus: EventBus | None,
) -> Device:
    """An operator's status change: maintenance, decommissioned, or back to unknown."""
    p.require(Role.OPERATOR, "changing a device's status")
    if status not in OPERATOR_STATUSES:
        raise InvalidRequestError(
            f"status: operators set {', '.join(sorted(OPERATOR_STATUSES))}; "
            "online, offline and error come from the device itself"
        )
    device = await get_device(session, p.tenant_id, device_id)
    if device.status == "quarantined" and status != "quarantined":
        raise ConflictError(
            "the device is quarantined; an admin releases it (POST /devices/{id}/release)"
        )
    await set_status(session, device, status, reason, bus, p)
    return device
