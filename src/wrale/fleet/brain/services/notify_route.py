"""Which channels hear of an alert the device channel raised from a board event (tamper,
fan failure, power failover, offline…): every enabled channel whose ``events`` route admits
the alert's severity and whose selector matches the device — the dynamic groups' selector
language. Queued in the transaction that raises or clears the alert, so one incident (the
event and the alert it raises) is one notification per channel, and again one when it
clears. Also the channel test: one notification sent now, outside the queue."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.alerts import Alert, NotificationChannel
from wrale.fleet.brain.services import audit
from wrale.fleet.brain.services.alerts import alert_view
from wrale.fleet.brain.services.groups import place_of
from wrale.fleet.brain.services.notify import (
    CHANNEL_TYPES,
    EVENTS_KEY,
    SEVERITY_RANK,
    get_channel,
    queue,
)
from wrale.fleet.brain.services.notify_types import DeliveryError, SendContext
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.fleet.brain.services.selectors import Place, matches


def admits(route: Any, severity: str, device: Device, place: Place | None) -> bool:
    """Pure: does a channel's ``events`` route take this alert of this device?"""
    if not isinstance(route, dict):
        return False
    floor = SEVERITY_RANK.get(str(route.get("min_severity", "WARNING")), 1)
    if SEVERITY_RANK.get(severity, 1) < floor:
        return False
    return matches(route.get("selector") or {}, device, place)


def payload(kind: str, action: str | None, alert: Alert, device: Device | None) -> dict[str, Any]:
    """What a queued alert notification carries (rule alerts and board-event alerts alike)."""
    out: dict[str, Any] = {"event": kind, "action": action, "alert": alert_view(alert)}
    if device is not None:
        out["device"] = {"id": device.id, "name": device.name}
    return out


async def queue_device_alert(
    session: AsyncSession, device: Device, alert: Alert, kind: str, action: str, now: float
) -> int:
    """Queue ``alert``'s raise or clear to the channels whose route admits it."""
    stmt = select(NotificationChannel).where(
        NotificationChannel.tenant_id == device.tenant_id,
        NotificationChannel.enabled.is_(True),
    )
    channels = [c for c in (await session.scalars(stmt)).all() if c.config.get(EVENTS_KEY)]
    if not channels:
        return 0
    place = await place_of(session, device)
    ids = [c.id for c in channels if admits(c.config[EVENTS_KEY], alert.severity, device, place)]
    if not ids:
        return 0
    return await queue(
        session,
        device.tenant_id,
        ids,
        kind,
        payload(kind, action, alert, device),
        now,
        alert.id,
    )


async def send_test(
    session: AsyncSession, p: Principal, channel_id: str, ctx: SendContext
) -> str | None:
    """Send one test notification through the channel now; None when it was delivered,
    else why not. Audited either way (the channel, never its secrets)."""
    p.require(Role.ADMIN, "testing notification channels")
    c = await get_channel(session, p.tenant_id, channel_id)
    kind = CHANNEL_TYPES.get(c.type)
    error: str | None = None
    if kind is None:
        error = f"unknown channel type {c.type!r}"
    else:
        try:
            await kind.send(dict(c.config), {"event": "test", "channel": c.name}, ctx)
        except DeliveryError as exc:
            error = str(exc)[:500]
    audit.record(
        session,
        p,
        "notification_channel.test",
        resource_type="notification_channel",
        resource_id=c.id,
        after={"delivered": error is None, "error": error},
    )
    return error
