"""What the recommendations' analysis reads beside the fleet view (``decisions.analysis.
Trends``), from the telemetry rollups only, never from raw readings over long windows:

- each board's mean temperature and power over the last ten minutes (1-minute rollups:
  ten rows per board and metric, summed by the database);
- the battery drain of the boards on battery (1-minute rollups of the last 15 minutes, and
  their newest reading), only for those boards;
- each board's fan, day by day over seven days (hourly rollups of duty and RPM, paired by
  hour and summed per day by the database: seven rows per board), read at most hourly by
  the caller;
- the names of boards, racks and rooms for the titles.

Reads only; decides nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from wrale.fleet.brain.decisions.analysis import DAY_S, BoardMeans, FanDay, Trends
from wrale.fleet.brain.decisions.view import FleetView, slope_per_min
from wrale.fleet.brain.models import Rack, Room
from wrale.fleet.brain.models.telemetry import (
    TelemetryLatest,
    TelemetryRollup1h,
    TelemetryRollup1m,
)
from wrale.fleet.brain.services.fleet_view_builder import (
    BATTERY,
    FAN,
    FAN_DRIVEN_PCT,
    POWER,
    RPM,
    TEMP,
)
from wrale.fleet.brain.services.job_boards import Board
from wrale.fleet.brain.services.telemetry_store import lookup_metric_ids

MEANS_WINDOW_S = 600
DRAIN_WINDOW_S = 900
FAN_DAYS = 7
CHUNK = 500


def _chunks(nums: Sequence[int]) -> Iterator[list[int]]:
    for i in range(0, len(nums), CHUNK):
        yield list(nums[i : i + CHUNK])


async def board_means(
    session: AsyncSession, devices: Mapping[int, str], now: float
) -> dict[str, BoardMeans]:
    """Device id -> its mean temperature and power over the last ten minutes."""
    ids = await lookup_metric_ids(session, [TEMP, POWER])
    if not devices or not ids:
        return {}
    names = {mid: name for name, mid in ids.items()}
    r = TelemetryRollup1m
    got: dict[str, dict[str, float]] = defaultdict(dict)
    for chunk in _chunks(sorted(devices)):
        rows = await session.execute(
            select(r.device_num, r.metric_id, func.sum(r.sum), func.sum(r.count))
            .where(
                r.device_num.in_(chunk),
                r.metric_id.in_(sorted(names)),
                r.bucket_ts >= int(now - MEANS_WINDOW_S),
                r.bucket_ts <= int(now),
            )
            .group_by(r.device_num, r.metric_id)
        )
        for num, mid, total, count in rows:
            if count:
                got[devices[num]][names[mid]] = float(total) / float(count)
    return {
        dev: BoardMeans(temp_c=values.get(TEMP), power_w=values.get(POWER))
        for dev, values in got.items()
    }


async def battery_drain(
    session: AsyncSession, devices: Mapping[int, str], now: float
) -> dict[str, float]:
    """Device id -> the slope of its battery percentage per minute over the last 15
    minutes (the last value of each minute, then its newest reading); for the boards given
    (those on battery) only."""
    mid = (await lookup_metric_ids(session, [BATTERY])).get(BATTERY)
    if not devices or mid is None:
        return {}
    points: dict[int, dict[float, float]] = defaultdict(dict)
    r = TelemetryRollup1m
    for chunk in _chunks(sorted(devices)):
        rows = await session.execute(
            select(r.device_num, r.last_ts, r.last).where(
                r.device_num.in_(chunk),
                r.metric_id == mid,
                r.bucket_ts >= int(now - DRAIN_WINDOW_S),
            )
        )
        for num, ts, value in rows:
            points[num][float(ts)] = float(value)
        latest = await session.execute(
            select(TelemetryLatest.device_num, TelemetryLatest.ts, TelemetryLatest.value).where(
                TelemetryLatest.device_num.in_(chunk),
                TelemetryLatest.metric_id == mid,
                TelemetryLatest.ts >= now - DRAIN_WINDOW_S,
            )
        )
        for num, ts, value in latest:
            points[num][float(ts)] = float(value)
    out = {}
    for num, pts in points.items():
        slope = slope_per_min(sorted(pts.items()))
        if slope is not None:
            out[devices[num]] = slope
    return out


async def fan_days(
    session: AsyncSession, devices: Mapping[int, str], now: float, days: int = FAN_DAYS
) -> dict[str, list[FanDay]]:
    """Device id -> its fan's days over the last week (``days``), oldest first: hours driven
    (duty at or above ``FAN_DRIVEN_PCT``) and their mean duty and RPM, from the hourly
    rollups (the wear trends read a month)."""
    ids = await lookup_metric_ids(session, [FAN, RPM])
    if not devices or FAN not in ids or RPM not in ids:
        return {}
    duty, rpm = aliased(TelemetryRollup1h), aliased(TelemetryRollup1h)
    start = int(now - days * DAY_S)
    day = ((duty.bucket_ts - start) // int(DAY_S)).label("day")
    out: dict[str, list[FanDay]] = defaultdict(list)
    for chunk in _chunks(sorted(devices)):
        rows = await session.execute(
            select(
                duty.device_num,
                day,
                func.count(),
                func.sum(duty.sum / duty.count),
                func.sum(rpm.sum / rpm.count),
            )
            .join(
                rpm,
                and_(
                    rpm.device_num == duty.device_num,
                    rpm.bucket_ts == duty.bucket_ts,
                    rpm.metric_id == ids[RPM],
                ),
            )
            .where(
                duty.device_num.in_(chunk),
                duty.metric_id == ids[FAN],
                duty.bucket_ts >= start,
                duty.count > 0,
                rpm.count > 0,
                duty.sum >= FAN_DRIVEN_PCT * duty.count,
            )
            .group_by(duty.device_num, day)
        )
        for num, d, hours, duty_sum, rpm_sum in rows:
            n = int(hours)
            if n <= 0:
                continue
            out[devices[num]].append(
                FanDay(start + int(d) * DAY_S, n, float(duty_sum) / n, float(rpm_sum) / n)
            )
    return {dev: sorted(days, key=lambda x: x.day_start) for dev, days in out.items()}


async def place_names(session: AsyncSession, boards: Sequence[Board]) -> dict[str, str]:
    """Display names of the boards and of their racks and rooms, by id."""
    names = {b.device.id: b.device.name for b in boards}
    rack_ids = sorted({b.device.rack_id for b in boards if b.device.rack_id})
    for i in range(0, len(rack_ids), CHUNK):
        rows = await session.execute(
            select(Rack.id, Rack.name, Room.id, Room.name)
            .join(Room, Room.id == Rack.room_id)
            .where(Rack.id.in_(rack_ids[i : i + CHUNK]))
        )
        for rack_id, rack_name, room_id, room_name in rows:
            names[rack_id], names[room_id] = rack_name, room_name
    return names


async def gather_trends(
    session: AsyncSession, view: FleetView, boards: Sequence[Board], now: float, *, fans: bool
) -> Trends:
    """The analysis' inputs for the boards of ``view``; ``fans``: read the fans' week too."""
    kept = {b.device_id for b in view.boards}
    devices = {b.device.num: b.device.id for b in boards if b.device.id in kept}
    on_battery = {b.device_id for b in view.boards if b.on_battery}
    draining = {num: dev for num, dev in devices.items() if dev in on_battery}
    return Trends(
        means=await board_means(session, devices, now),
        fans=await fan_days(session, devices, now) if fans else None,
        battery_drain=await battery_drain(session, draining, now),
        names=await place_names(session, [b for b in boards if b.device.id in kept]),
    )
