"""Wear trends read from the stored telemetry into the pure detection
(``decisions.wear``), for one board or for the fleet's maintenance queue.

Only the hourly rollups are read, summed per day by the database (``wear_inputs``; the
fan's days are ``recommendation_inputs.fan_days``, the recommendations' own query over a
month). The battery's state of health is the one its gauge reports
(``battery_health_pct``); a board whose reported days cannot make a trend has its capacity
measured across its discharges instead (``decisions.wear_battery``), never the two mixed.
The queue reads at most ``MAX_QUEUE_DEVICES`` boards (and says when it left some out).
Reads only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.decisions.wear import (
    DEFAULT_POLICY,
    BoardHistory,
    BoardWear,
    RackVisit,
    board_wear,
    maintenance_queue,
)
from wrale.fleet.brain.models import Device, Rack, Room, Site
from wrale.fleet.brain.services.maintenance.wear_inputs import (
    CHUNK,
    HISTORY_DAYS,
    battery_health_days,
    battery_measured_days,
    emmc_days,
    event_days,
    thermal_days,
)
from wrale.fleet.brain.services.recommendation_inputs import fan_days
from wrale.fleet.brain.services.registry import get_device

MAX_QUEUE_DEVICES = 2000
# reported days fewer than this make no trend: the capacity measured across discharges is read
TREND_DAYS = DEFAULT_POLICY.baseline_days + DEFAULT_POLICY.recent_days

Place = tuple[str | None, str | None]  # (site id, rack id)


@dataclass(frozen=True, slots=True)
class Queue:
    visits: list[RackVisit]
    boards_read: int
    truncated: bool


async def _places(session: AsyncSession, devices: Sequence[Device]) -> dict[str, Place]:
    rack_ids = sorted({d.rack_id for d in devices if d.rack_id})
    sites: dict[str, str] = {}
    for i in range(0, len(rack_ids), CHUNK):
        rows = await session.execute(
            select(Rack.id, Room.site_id)
            .join(Room, Room.id == Rack.room_id)
            .where(Rack.id.in_(rack_ids[i : i + CHUNK]))
        )
        sites.update((rack, site) for rack, site in rows)
    return {d.id: (sites.get(d.rack_id) if d.rack_id else None, d.rack_id) for d in devices}


async def histories(
    session: AsyncSession, devices: Sequence[Device], now: float
) -> list[BoardHistory]:
    """The boards' daily aggregates over the last ``HISTORY_DAYS``."""
    nums = {d.num: d.id for d in devices}
    fans = await fan_days(session, nums, now, days=HISTORY_DAYS)
    heat = await thermal_days(session, nums, now)
    events = await event_days(session, nums, now)
    health = await battery_health_days(session, nums, now)
    unreported = {n: d for n, d in nums.items() if len(health.get(d, ())) < TREND_DAYS}
    measured = await battery_measured_days(session, unreported, now)
    emmc = await emmc_days(session, nums, now)
    places = await _places(session, devices)
    return [
        BoardHistory(
            d.id,
            places[d.id][0],
            places[d.id][1],
            fans=fans.get(d.id, ()),
            thermal=heat.get(d.id, ()),
            events=events.get(d.id, ()),
            battery=measured.get(d.id, ()),
            battery_health=health.get(d.id, ()),
            emmc=emmc.get(d.id, ()),
        )
        for d in devices
    ]


async def device_wear(
    session: AsyncSession, tenant_id: str, device_id: str, now: float
) -> BoardWear:
    """One board's trends (a board of another tenant, or none, is not found)."""
    device = await get_device(session, tenant_id, device_id)
    (history,) = await histories(session, [device], now)
    return board_wear(history)


async def queue(session: AsyncSession, tenant_id: str, now: float) -> Queue:
    """The tenant's maintenance queue, from at most ``MAX_QUEUE_DEVICES`` boards."""
    rows = await session.execute(
        select(Device)
        .where(Device.tenant_id == tenant_id)
        .order_by(Device.num)
        .limit(MAX_QUEUE_DEVICES + 1)
    )
    devices = list(rows.scalars())
    truncated = len(devices) > MAX_QUEUE_DEVICES
    devices = devices[:MAX_QUEUE_DEVICES]
    visits = maintenance_queue(await histories(session, devices, now))
    return Queue(visits, len(devices), truncated)


async def names(
    session: AsyncSession, tenant_id: str, boards: Sequence[BoardWear]
) -> dict[str, str]:
    """Display names of the boards and of their racks and sites, by id (for the API)."""
    out: dict[str, str] = {}
    for model, ids in (
        (Device, sorted({b.device_id for b in boards})),
        (Rack, sorted({b.rack for b in boards if b.rack})),
        (Site, sorted({b.site for b in boards if b.site})),
    ):
        for i in range(0, len(ids), CHUNK):
            rows = await session.execute(
                select(model.id, model.name).where(
                    model.tenant_id == tenant_id, model.id.in_(ids[i : i + CHUNK])
                )
            )
            out.update((k, v) for k, v in rows)
    return out
