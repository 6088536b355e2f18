"""Organisations (tenants): their status and quotas, and their own view of them.

A tenant's admins read and rename their organisation through the API; creating tenants,
suspending them and setting quotas is the platform operator's, done on the server with
``wrale central tenants …`` (there is no cross-tenant role in the API).
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import Device, Tenant, User
from wrale.fleet.brain.services import audit
from wrale.fleet.brain.services.identity import hash_password
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.shared.errors import ConflictError, InvalidRequestError, NotFoundError

STATUSES = ("active", "suspended")


async def usage(session: AsyncSession, tenant_id: str) -> dict[str, int]:
    devices = await session.scalar(
        select(func.count()).select_from(Device).where(Device.tenant_id == tenant_id)
    )
    users = await session.scalar(
        select(func.count()).select_from(User).where(User.tenant_id == tenant_id)
    )
    return {"devices": int(devices or 0), "users": int(users or 0)}


async def view(session: AsyncSession, tenant: Tenant) -> dict[str, Any]:
    return {
        "id": tenant.id,
        "name": tenant.name,
        "status": tenant.status,
        "created_at": tenant.created_at,
        "quotas": {"devices": tenant.max_devices, "users": tenant.max_users},
        "usage": await usage(session, tenant.id),
    }


async def own(session: AsyncSession, p: Principal) -> Tenant:
    tenant = await session.get(Tenant, p.tenant_id)
    if tenant is None:  # pragma: no cover - a principal always has its tenant
        raise NotFoundError("no such organisation")
    return tenant


async def rename(session: AsyncSession, p: Principal, name: str) -> Tenant:
    p.require(Role.ADMIN, "renaming the organisation")
    tenant = await own(session, p)
    if name != tenant.name and await session.scalar(select(Tenant.id).where(Tenant.name == name)):
        raise ConflictError(f"an organisation named {name!r} exists")
    before = {"name": tenant.name}
    tenant.name = name
    audit.record(
        session,
        p,
        "tenant.update",
        resource_type="tenant",
        resource_id=tenant.id,
        before=before,
        after={"name": name},
    )
    return tenant


# ----------------------------------------------------------------------------- platform


async def find(session: AsyncSession, name_or_id: str) -> Tenant:
    tenant = await session.scalar(
        select(Tenant).where((Tenant.name == name_or_id) | (Tenant.id == name_or_id))
    )
    if tenant is None:
        raise NotFoundError(f"no organisation {name_or_id!r}")
    return tenant


async def create(
    session: AsyncSession,
    name: str,
    admin_username: str,
    admin_password: str | None = None,
    *,
    max_devices: int = 10_000,
    max_users: int = 100,
) -> tuple[Tenant, str]:
    """A new organisation with its first admin; returns the admin's password."""
    if await session.scalar(select(Tenant.id).where(Tenant.name == name)):
        raise ConflictError(f"an organisation named {name!r} exists")
    if await session.scalar(select(User.id).where(User.username == admin_username)):
        raise ConflictError(f"username {admin_username!r} is taken")
    check_quotas(max_devices, max_users)
    password = admin_password or secrets.token_urlsafe(15)
    tenant = Tenant(name=name, max_devices=max_devices, max_users=max_users)
    session.add(tenant)
    await session.flush()
    session.add(
        User(
            tenant_id=tenant.id,
            username=admin_username,
            role=Role.ADMIN.value,
            password_hash=hash_password(password),
        )
    )
    audit.record(
        session,
        None,
        "tenant.create",
        tenant_id=tenant.id,
        actor_name="platform",
        resource_type="tenant",
        resource_id=tenant.id,
        after={"name": name, "admin": admin_username},
    )
    return tenant, password


def check_quotas(max_devices: int, max_users: int) -> None:
    if not (0 <= max_devices <= 10_000_000 and 1 <= max_users <= 100_000):
        raise InvalidRequestError("quotas: devices 0..10,000,000, users 1..100,000")


async def set_status(session: AsyncSession, tenant: Tenant, status: str) -> None:
    if status not in STATUSES:
        raise InvalidRequestError(f"status must be one of {', '.join(STATUSES)}")
    before = {"status": tenant.status}
    tenant.status = status
    audit.record(
        session,
        None,
        f"tenant.{'suspend' if status == 'suspended' else 'activate'}",
        tenant_id=tenant.id,
        actor_name="platform",
        resource_type="tenant",
        resource_id=tenant.id,
        before=before,
        after={"status": status},
    )


async def set_quotas(
    session: AsyncSession, tenant: Tenant, *, max_devices: int | None, max_users: int | None
) -> None:
    devices = tenant.max_devices if max_devices is None else max_devices
    users = tenant.max_users if max_users is None else max_users
    check_quotas(devices, users)
    before = {"devices": tenant.max_devices, "users": tenant.max_users}
    tenant.max_devices, tenant.max_users = devices, users
    audit.record(
        session,
        None,
        "tenant.quotas",
        tenant_id=tenant.id,
        actor_name="platform",
        resource_type="tenant",
        resource_id=tenant.id,
        before=before,
        after={"devices": devices, "users": users},
    )


async def list_all(session: AsyncSession) -> list[Tenant]:
    return list((await session.scalars(select(Tenant).order_by(Tenant.name))).all())
