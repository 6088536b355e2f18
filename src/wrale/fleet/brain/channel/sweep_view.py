"""What a sweep of open device sessions needs from the database, read in one session: the
work waiting for each device (a desired version newer than the one sent, queued commands)
for the WebSocket hub and the MQTT bridge alike, and for the bridge also which cached
sessions may not continue and when each was last seen."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.channel.checks import check_sessions
from wrale.fleet.brain.models.channel import ChannelSession
from wrale.fleet.brain.models.commands import Command as QueuedCommand
from wrale.fleet.brain.models.twin import DeviceTwin
from wrale.fleet.sync.protocol import Goodbye

CHUNK = 500  # devices per IN (...) list


@dataclass(slots=True)
class SweepView:
    verdicts: dict[str, Goodbye] = field(default_factory=dict)  # session id → why it ends
    seen: dict[str, float] = field(default_factory=dict)  # session id → last seen at
    versions: dict[str, int] = field(default_factory=dict)  # device id → desired version
    queued: set[str] = field(default_factory=set)  # devices with commands to send


async def pending_work(
    db: AsyncSession, device_ids: Sequence[str], now: float, view: SweepView | None = None
) -> SweepView:
    """Desired versions and devices with queued, unexpired commands, into ``view``."""
    view = view if view is not None else SweepView()
    for i in range(0, len(device_ids), CHUNK):
        chunk = device_ids[i : i + CHUNK]
        rows = await db.execute(
            select(DeviceTwin.device_id, DeviceTwin.desired_version).where(
                DeviceTwin.device_id.in_(chunk)
            )
        )
        view.versions.update({str(d): int(v) for d, v in rows})
        found = await db.scalars(
            select(QueuedCommand.device_id)
            .where(
                QueuedCommand.device_id.in_(chunk),
                QueuedCommand.status == "queued",
                QueuedCommand.deadline > now,
            )
            .distinct()
        )
        view.queued.update(found)
    return view


async def read_sweep(
    db: AsyncSession, session_ids: Sequence[str], device_ids: Sequence[str], now: float
) -> SweepView:
    """Verdicts, last-seen times and pending work of the cached sessions ``session_ids``."""
    view = SweepView(verdicts=dict(await check_sessions(db, list(session_ids), now)))
    rows = await db.execute(
        select(ChannelSession.id, ChannelSession.last_seen_at).where(
            ChannelSession.id.in_(session_ids)
        )
    )
    view.seen = {str(sid): float(at) for sid, at in rows}
    return await pending_work(db, device_ids, now, view)
