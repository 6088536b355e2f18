"""Device credentials: each device's secrets (stored as SHA-256 hashes, shown once), their
rotation with a grace period and revocation, and authentication of a device on the device
channel — by its secret, or by the broker that already checked it (broker accounts).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import Device, DeviceCredential, Tenant
from wrale.fleet.brain.models.base import new_id, now
from wrale.fleet.brain.services import audit, registry
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.shared.errors import AuthError, ConflictError, InvalidRequestError

SECRET_PREFIX = "wds_"  # noqa: S105 - a marker ("wrale device secret"), not a secret
MAX_GRACE_S = 7 * 86_400


def _valid_at(t: float) -> ColumnElement[bool]:
    """Credentials not revoked, or revoked only after ``t`` (a rotation's grace period)."""
    return or_(DeviceCredential.revoked_at.is_(None), DeviceCredential.revoked_at > t)


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


async def issue_secret(session: AsyncSession, device: Device) -> tuple[DeviceCredential, str]:
    """A new secret for ``device`` (returned once, stored as its hash)."""
    secret = f"{SECRET_PREFIX}{secrets.token_urlsafe(32)}"
    cred = DeviceCredential(
        id=new_id(), tenant_id=device.tenant_id, device_id=device.id, secret_hash=sha256(secret)
    )
    session.add(cred)
    return cred, secret


def credential_view(c: DeviceCredential, at: float | None = None) -> dict[str, Any]:
    at = now() if at is None else at
    return {
        "id": c.id,
        "device_id": c.device_id,
        "created_at": c.created_at,
        "revoked_at": c.revoked_at,
        "last_used_at": c.last_used_at,
        "active": c.revoked_at is None or c.revoked_at > at,
    }


async def list_credentials(
    session: AsyncSession, p: Principal, device_id: str
) -> list[DeviceCredential]:
    p.require(Role.OPERATOR, "reading device credentials")
    await registry.get_device(session, p.tenant_id, device_id)
    rows = await session.scalars(
        select(DeviceCredential)
        .where(DeviceCredential.device_id == device_id)
        .order_by(DeviceCredential.id)
    )
    return list(rows.all())


async def _end_credentials(session: AsyncSession, device_id: str, at: float) -> int:
    """Make every credential of the device end at ``at`` (unless it ends sooner)."""
    result = await session.execute(
        update(DeviceCredential)
        .where(
            DeviceCredential.device_id == device_id,
            _valid_at(at),
        )
        .values(revoked_at=at)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def rotate_credential(
    session: AsyncSession, p: Principal, device_id: str, grace_s: float = 0
) -> tuple[DeviceCredential, str]:
    """A new secret for the device (returned once); the old ones end now or after a grace
    period (``grace_s``, at most 7 days) so a connected device can be told the new one."""
    p.require(Role.OPERATOR, "rotating device credentials")
    if not 0 <= grace_s <= MAX_GRACE_S:
        raise InvalidRequestError(f"grace_s: between 0 and {MAX_GRACE_S} s")
    device = await registry.get_device(session, p.tenant_id, device_id)
    if device.status == "decommissioned":
        raise ConflictError("the device is decommissioned; set it back to unknown first")
    ended = await _end_credentials(session, device.id, now() + grace_s)
    cred, secret = await issue_secret(session, device)
    await session.flush()
    audit.record(
        session,
        p,
        "device.credentials.rotate",
        resource_type="device",
        resource_id=device.id,
        after=credential_view(cred),
        details={"grace_s": grace_s, "previous_ended": ended},
    )
    return cred, secret


async def revoke_credentials(session: AsyncSession, p: Principal, device_id: str) -> int:
    """Revoke every credential of the device now; returns how many were still valid."""
    p.require(Role.OPERATOR, "revoking device credentials")
    device = await registry.get_device(session, p.tenant_id, device_id)
    ended = await _end_credentials(session, device.id, now())
    audit.record(
        session,
        p,
        "device.credentials.revoke",
        resource_type="device",
        resource_id=device.id,
        details={"revoked": ended},
    )
    return ended


REFUSED = "unknown device or invalid device credential"  # one message: no oracle


async def _usable_device(session: AsyncSession, device_id: str) -> Device:
    """The device, when it exists, is not decommissioned and its organisation is active."""
    device = await session.get(Device, device_id) if registry.is_id(device_id) else None
    if device is None or device.status == "decommissioned":
        raise AuthError(REFUSED)
    tenant = await session.get(Tenant, device.tenant_id)
    if tenant is None or tenant.status != "active":
        raise AuthError(REFUSED)
    return device


def _used(cred: DeviceCredential, t: float) -> None:
    if cred.last_used_at is None or t - cred.last_used_at > 60:  # once a minute is enough
        cred.last_used_at = t


async def authenticate_device(session: AsyncSession, device_id: str, secret: str) -> Device:
    """The device behind ``device_id`` + ``secret``, for the device channel.

    ``AuthError`` for an unknown device, a wrong, revoked or expired secret, a
    decommissioned device or a suspended organisation (one message: no oracle).
    """
    device = await _usable_device(session, device_id)
    t = now()
    wanted = sha256(secret)
    rows = await session.scalars(
        select(DeviceCredential).where(DeviceCredential.device_id == device.id, _valid_at(t))
    )
    match = next((c for c in rows.all() if hmac.compare_digest(c.secret_hash, wanted)), None)
    if match is None:
        raise AuthError(REFUSED)
    _used(match, t)
    return device


async def authenticate_broker_device(session: AsyncSession, device_id: str) -> tuple[Device, str]:
    """The device whose MQTT topics carried a hello, when the broker authenticated it (its
    account is the device's, its ACL confines it to its own topics): the device must still
    exist, not be decommissioned, hold a valid credential and belong to an active
    organisation. Returns the device and its newest valid credential's id."""
    device = await _usable_device(session, device_id)
    t = now()
    cred = await session.scalar(
        select(DeviceCredential)
        .where(DeviceCredential.device_id == device.id, _valid_at(t))
        .order_by(DeviceCredential.created_at.desc(), DeviceCredential.id.desc())
        .limit(1)
    )
    if cred is None:
        raise AuthError(REFUSED)
    _used(cred, t)
    return device, cred.id
