"""What may end or refuse a device session, checked in the database: quarantine, held
statuses, a decommissioned device, and (for live sessions, in bulk) closed or replaced
rows, revoked credentials, deleted devices and suspended organisations. Also the
``Goodbye`` helper and the exception that carries one out of a session.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import Device, DeviceCredential, Tenant
from wrale.fleet.brain.models.channel import ChannelSession, DeviceQuarantine
from wrale.fleet.brain.services import enrollment, registry
from wrale.fleet.sync.protocol import Goodbye


class SessionEndedError(Exception):
    """The server ends the session: send ``goodbye``, then close."""

    def __init__(self, goodbye: Goodbye) -> None:
        super().__init__(goodbye.message)
        self.goodbye = goodbye


def goodbye(code: str, message: str, *, retry: bool = True, session: str = "") -> Goodbye:
    return Goodbye(code=code, message=message[:2000], retry=retry, session=session)


async def quarantine_reason(session: AsyncSession, device_id: str) -> str:
    reason = await session.scalar(
        select(DeviceQuarantine.reason).where(DeviceQuarantine.device_id == device_id)
    )
    return reason or "quarantined by an administrator"


async def held_goodbye(session: AsyncSession, device: Device, sid: str = "") -> Goodbye | None:
    """The refusal for a device that may not be connected now (None: it may)."""
    if device.status == "quarantined":
        why = await quarantine_reason(session, device.id)
        return goodbye("quarantined", f"the device is quarantined: {why}", session=sid)
    if device.status in registry.HELD_STATUSES:
        return goodbye("held", f"the device is {device.status}", session=sid)
    return None


async def decommissioned_with(
    session: AsyncSession, device_id: str, secret: str, now: float
) -> bool:
    """A decommissioned device presenting one of its valid secrets (authentication refuses
    decommissioned devices; the device itself may learn why)."""
    if not registry.is_id(device_id):
        return False
    rows = await session.execute(
        select(DeviceCredential.revoked_at)
        .join(Device, Device.id == DeviceCredential.device_id)
        .where(
            Device.id == device_id,
            Device.status == "decommissioned",
            DeviceCredential.secret_hash == enrollment.sha256(secret),
        )
    )
    return any(revoked is None or revoked > now for (revoked,) in rows)


async def check_sessions(
    session: AsyncSession, ids: Sequence[str], now: float
) -> dict[str, Goodbye]:
    """For open sessions ``ids``: the Goodbye of each that must end (closed or replaced
    elsewhere, credential revoked, device deleted, quarantined or held). One query per
    500 sessions: the hub runs it for every live session of the replica."""
    out: dict[str, Goodbye] = {}
    found: set[str] = set()
    for i in range(0, len(ids), 500):
        chunk = list(ids[i : i + 500])
        rows = await session.execute(
            select(
                ChannelSession.id,
                ChannelSession.device_id,
                ChannelSession.closed_at,
                ChannelSession.close_reason,
                ChannelSession.credential_id,
                Device.status,
                DeviceCredential.revoked_at,
                DeviceCredential.id,
                Tenant.status,
            )
            .join(Device, Device.id == ChannelSession.device_id)
            .join(Tenant, Tenant.id == Device.tenant_id)
            .outerjoin(DeviceCredential, DeviceCredential.id == ChannelSession.credential_id)
            .where(ChannelSession.id.in_(chunk))
        )
        for sid, device_id, closed_at, reason, cred_id, status, revoked_at, found_cred, org in list(
            rows
        ):
            found.add(sid)
            if closed_at is not None:
                code = reason if reason in ("replaced", "quarantined", "held") else "shutdown"
                out[sid] = goodbye(code, f"the session was closed ({reason})", session=sid)
            elif status == "quarantined":
                why = await quarantine_reason(session, device_id)
                out[sid] = goodbye("quarantined", f"the device is quarantined: {why}", session=sid)
            elif status in registry.HELD_STATUSES:
                out[sid] = goodbye("held", f"the device is {status}", session=sid)
            elif org != "active":
                out[sid] = goodbye("held", "the organisation is suspended", session=sid)
            elif cred_id is not None and (
                found_cred is None or (revoked_at is not None and revoked_at <= now)
            ):
                out[sid] = goodbye(
                    "revoked", "the device credential was revoked", retry=False, session=sid
                )
    for sid in ids:
        if sid not in found:
            out[sid] = goodbye("revoked", "the device was deleted", retry=False, session=sid)
    return out
