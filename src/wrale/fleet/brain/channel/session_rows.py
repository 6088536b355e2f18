"""The ``device_sessions`` rows of the device channel: opening one (authenticate the Hello,
replace the device's other sessions, bring the device online), finding the open one a
message belongs to, and closing one. Runs in the caller's transaction; sends nothing and
keeps no session state (``DeviceSession`` does).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.channel import alerts, events
from wrale.fleet.brain.channel.alerts import BusOut, Effect
from wrale.fleet.brain.channel.checks import (
    check_sessions,
    decommissioned_with,
    goodbye,
    held_goodbye,
)
from wrale.fleet.brain.channel.context import ChannelContext
from wrale.fleet.brain.channel.events import clean_text
from wrale.fleet.brain.models import Device, DeviceCredential
from wrale.fleet.brain.models.base import new_id
from wrale.fleet.brain.models.channel import ChannelSession
from wrale.fleet.brain.services import enrollment, registry, twin
from wrale.fleet.sync.protocol import STREAMS, Goodbye, Hello
from wrale.shared.errors import AuthError

log = logging.getLogger("wrale.central.channel")

SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{8,32}$")
# Goodbye codes after which the device is not connected any more (offline at once);
# "replaced" has a newer session and "shutdown" reconnects to another replica.
_KEEPS_STATUS = frozenset({"replaced", "shutdown"})


@dataclass(frozen=True, slots=True)
class Opened:
    """A session row written for an authenticated Hello."""

    device: Device
    session_id: str
    acked: dict[str, int]  # the streams' marks the Welcome tells the device
    wanted: dict[str, int]  # the marks the device said it had acknowledged
    moved: dict[str, int]  # streams raised to ``wanted``, with their old mark
    replaced: int  # the device's other open sessions closed as ``replaced``


async def open_row(
    s: AsyncSession,
    ctx: ChannelContext,
    transport: str,
    hello: Hello,
    secret: str | None,
    remote: str | None,
    now: float,
    out: BusOut,
) -> Opened | Goodbye:
    """Authenticate ``hello`` (``secret`` None: the broker authenticated the device) and
    open its session row, or the ``Goodbye`` refusing it."""
    cred_id: str | None = None
    try:
        if secret is None:
            device, cred_id = await enrollment.authenticate_broker_device(s, hello.device_id)
        else:
            device = await enrollment.authenticate_device(s, hello.device_id, secret)
    except AuthError as exc:
        if secret is not None and await decommissioned_with(s, hello.device_id, secret, now):
            return goodbye("held", "the device is decommissioned")
        log.info("device channel: refused %r: %s", hello.device_id[:64], exc.message)
        return goodbye("unauthorized", exc.message, retry=False)
    # lock first, then judge the status as it is under the lock: a quarantine committed
    # while this open waited must refuse it, not be overwritten by "online"
    await registry.fresh_under_lock(s, device)
    refusal = await held_goodbye(s, device)
    if refusal is not None:
        log.info("device channel: %s refused: %s", device.id, refusal.message)
        return refusal
    if secret is not None:
        cred_id = await s.scalar(
            select(DeviceCredential.id).where(
                DeviceCredential.secret_hash == enrollment.sha256(secret)
            )
        )
    replaced = await s.execute(
        update(ChannelSession)
        .where(ChannelSession.device_id == device.id, ChannelSession.closed_at.is_(None))
        .values(closed_at=now, close_reason="replaced")
        .execution_options(synchronize_session=False)
    )
    sid = hello.session if SESSION_ID.match(hello.session or "") else new_id()
    if await s.get(ChannelSession, sid) is not None:
        sid = new_id()
    s.add(
        ChannelSession(
            id=sid,
            tenant_id=device.tenant_id,
            device_id=device.id,
            credential_id=cred_id,
            transport=transport,
            replica=ctx.replica if transport == "ws" else None,
            remote=(remote or "")[:64] or None,
            agent_version=clean_text(hello.agent_version, 32) or None,
            mode=clean_text(hello.mode, 16),
            desired_sent=hello.desired_version,
            opened_at=now,
            last_seen_at=now,
            created_at=now,
        )
    )
    device.agent_version = clean_text(hello.agent_version, 32) or device.agent_version
    device.last_seen_at = now
    await registry.set_status(s, device, "online", f"connected ({transport})", ctx.bus, locked=True)
    await twin.agent_connected(s, device, hello.reported_version)
    wanted = {k: v for k, v in hello.acked.items() if k in STREAMS}
    moved = await events.raise_marks(s, device, wanted, now)
    acked = await events.marks(s, device)
    await alerts.apply(s, device, Effect("clear", alerts.OFFLINE, message="back online"), now, out)
    return Opened(
        device=device,
        session_id=sid,
        acked=acked,
        wanted=wanted,
        moved=moved,
        replaced=int(getattr(replaced, "rowcount", 0) or 0),
    )


async def open_row_of(
    s: AsyncSession, device_id: str, session_id: str | None, now: float
) -> tuple[ChannelSession, Device] | None:
    """The device's open session row (``session_id``, or its newest open one) and the
    device; None when there is none that may continue."""
    stmt = select(ChannelSession).where(
        ChannelSession.device_id == device_id, ChannelSession.closed_at.is_(None)
    )
    if session_id:
        stmt = stmt.where(ChannelSession.id == session_id)
    row = await s.scalar(stmt.order_by(ChannelSession.opened_at.desc()).limit(1))
    if row is None or (await check_sessions(s, [row.id], now)):
        return None
    device = await s.get(Device, device_id)
    if device is None:
        return None
    return row, device


async def close_row(
    s: AsyncSession, ctx: ChannelContext, session_id: str, device_id: str, reason: str, now: float
) -> None:
    """Close the session's row; the device goes offline unless a newer session replaced
    this one or the server is shutting down (``_KEEPS_STATUS``).

    The device's row is locked before its session's (as every status change and a
    deletion, whose cascade reaches the sessions after the device, take them): the other
    order deadlocked with an admin deleting the device on PostgreSQL."""
    device = None if reason in _KEEPS_STATUS else await s.get(Device, device_id)
    if device is not None and not await registry.fresh_under_lock(s, device):
        device = None  # deleted meanwhile: its sessions went with it
    await s.execute(
        update(ChannelSession)
        .where(ChannelSession.id == session_id, ChannelSession.closed_at.is_(None))
        .values(closed_at=now, close_reason=reason[:32], last_seen_at=now)
    )
    if device is None:
        return
    newer = await s.scalar(
        select(ChannelSession.id)
        .where(
            ChannelSession.device_id == device_id,
            ChannelSession.closed_at.is_(None),
            ChannelSession.id != session_id,
        )
        .limit(1)
    )
    if newer is None:
        device.last_seen_at = now
        await registry.set_status(
            s, device, "offline", f"disconnected ({reason})", ctx.bus, locked=True
        )
