"""Offline detection, a background job safe on every replica: a device ``online`` but
silent for ``offline_after_s`` goes ``offline`` (its open session rows are closed as
``silent``, its job placements released for other boards); a device offline longer than
``offline_alert_after_s`` gets an alert, cleared when it is back (the session clears it on
connect; the job too, should that be missed).

Also the channel's retention: device events older than ``device_events_retention_d`` and
closed session rows older than a week are deleted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import delete, select, update

from wrale.fleet.brain.bus import EventBus
from wrale.fleet.brain.channel import alerts
from wrale.fleet.brain.channel.alerts import BusOut, Effect
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.alerts import Alert
from wrale.fleet.brain.models.channel import ChannelSession, DeviceEvent
from wrale.fleet.brain.services import job_placement, registry
from wrale.fleet.brain.services.alerts import OPEN_STATES
from wrale.shared.central_settings import CentralSettings

log = logging.getLogger("wrale.central.channel")

BATCH = 500
SESSION_RETENTION_S = 7 * 86_400


@dataclass(frozen=True, slots=True)
class OfflineResult:
    went_offline: int
    alerts_raised: int
    alerts_cleared: int


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


async def mark_offline(
    db: Database, bus: EventBus | None, settings: CentralSettings, now: float
) -> OfflineResult:
    """One pass of offline detection (``now`` fixed by the caller: tests pass their own)."""
    out: BusOut = []
    silent_before = now - settings.offline_after_s
    went = raised = cleared = 0
    for _ in range(1000):  # in batches, each a short transaction (bounded, come what may)
        async with db.session() as s:
            rows = await s.scalars(
                select(Device)
                .where(Device.status == "online", Device.last_seen_at < silent_before)
                .order_by(Device.id)
                .limit(BATCH)
                .with_for_update(skip_locked=True)
            )
            devices = list(rows.all())
            for d in devices:
                # re-checked under the row lock: the device may have spoken since
                if d.status != "online" or (d.last_seen_at or 0) >= silent_before:
                    continue
                silent = now - (d.last_seen_at or now)
                why = f"silent for {_duration(silent)}"
                await registry.set_status(s, d, "offline", why, bus)
                await job_placement.release_board(s, d, f"{d.name} went offline ({why})", now, bus)
                await s.execute(
                    update(ChannelSession)
                    .where(ChannelSession.device_id == d.id, ChannelSession.closed_at.is_(None))
                    .values(closed_at=now, close_reason="silent")
                )
                went += 1
        if len(devices) < BATCH:
            break
    alert_before = now - settings.offline_alert_after_s
    async with db.session() as s:
        open_ids = set(
            await s.scalars(
                select(Alert.device_id).where(
                    Alert.rule_id.is_(None),
                    Alert.metric == alerts.OFFLINE,
                    Alert.state.in_(OPEN_STATES),
                )
            )
        )
        long_gone = await s.scalars(
            select(Device).where(
                Device.status == "offline",
                Device.last_seen_at.is_not(None),
                Device.last_seen_at < alert_before,
            )
        )
        for d in long_gone:
            if d.id in open_ids:
                continue
            gone = _duration(now - (d.last_seen_at or now))
            effect = Effect("raise", alerts.OFFLINE, "MAJOR", f"offline for {gone}")
            if await alerts.apply(s, d, effect, now, out) is not None:
                raised += 1
        if open_ids:
            back = await s.scalars(
                select(Device).where(
                    Device.id.in_([i for i in open_ids if i]), Device.status != "offline"
                )
            )
            for d in back:
                effect = Effect("clear", alerts.OFFLINE, message=f"no longer offline ({d.status})")
                if await alerts.apply(s, d, effect, now, out) is not None:
                    cleared += 1
    if bus is not None:
        for tenant_id, kind, data in out:
            bus.publish(tenant_id, kind, data)
    if went or raised or cleared:
        log.info(
            "offline check: %d went offline, %d offline alerts raised, %d cleared",
            went,
            raised,
            cleared,
        )
    return OfflineResult(went, raised, cleared)


async def apply_retention(db: Database, settings: CentralSettings, now: float) -> int:
    """Delete old device events and closed sessions; returns how many rows went."""
    async with db.serial_session() as s:  # deletes: a writer turn on SQLite
        ev = await s.execute(
            delete(DeviceEvent).where(
                DeviceEvent.created_at < now - settings.device_events_retention_d * 86_400
            )
        )
        ss = await s.execute(
            delete(ChannelSession).where(
                ChannelSession.closed_at.is_not(None),
                ChannelSession.closed_at < now - SESSION_RETENTION_S,
            )
        )
    return int(ev.rowcount or 0) + int(ss.rowcount or 0)  # type: ignore[attr-defined]
