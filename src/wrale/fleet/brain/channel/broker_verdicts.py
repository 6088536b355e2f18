"""Which devices' MQTT broker accounts may connect, as the database says: the device
exists, is neither quarantined nor decommissioned, its organisation is active and the
credential its account was made from is still valid. Reads only; changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from sqlalchemy import or_, select

from wrale.fleet.brain.models import Device, DeviceCredential, Tenant
from wrale.fleet.brain.models.base import now
from wrale.fleet.brain.services import registry

if TYPE_CHECKING:
    from wrale.fleet.brain.db import Database

BARRED: Final = frozenset({"quarantined", "decommissioned"})  # maintenance still connects


async def allowed_clients(
    db: Database, clients: Sequence[tuple[str, str | None]]
) -> dict[str, bool]:
    """device id → may its broker client connect (absent: the device no longer exists)."""
    out: dict[str, bool] = {}
    ids = [d for d, _ in clients if registry.is_id(d)]
    async with db.session() as s:
        devices = {
            d.id: d for d in (await s.scalars(select(Device).where(Device.id.in_(ids)))).all()
        }
        tenants = {
            t.id: t.status
            for t in (
                await s.scalars(
                    select(Tenant).where(Tenant.id.in_({d.tenant_id for d in devices.values()}))
                )
            ).all()
        }
        t = now()
        active = set(
            (
                await s.scalars(
                    select(DeviceCredential.id).where(
                        DeviceCredential.device_id.in_(list(devices)),
                        or_(DeviceCredential.revoked_at.is_(None), DeviceCredential.revoked_at > t),
                    )
                )
            ).all()
        )
    for device_id, cred in clients:
        device = devices.get(device_id)
        if device is None:
            continue
        out[device_id] = (
            device.status not in BARRED
            and tenants.get(device.tenant_id) == "active"
            and cred is not None
            and cred in active
        )
    return out
