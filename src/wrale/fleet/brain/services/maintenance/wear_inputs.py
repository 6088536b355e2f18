"""The daily aggregates the wear trends read, from the hourly rollups (summed per day by
the database over ``HISTORY_DAYS``, a few rows per board and day): the thermal resistance
per day and RPM band (die, air, power and RPM rollups of the same hour), the hours with
throttling and with under-voltage per day, the day's mean ``battery_health_pct``, the day's
highest ``emmc_life_used_pct`` and ``emmc_pre_eol``, and the hours on battery (share of the
hour on battery, mean draw, highest and lowest battery %) for the capacity measured across
discharges. The RPM band is the hour's mean RPM as an integer (the database's own cast, the
same for every day of a board) over ``RPM_BAND``. Reads only.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from sqlalchemy import Integer, and_, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from wrale.fleet.brain.decisions.analysis import DAY_S
from wrale.fleet.brain.decisions.wear import (
    DEFAULT_POLICY,
    BatteryDay,
    EmmcDay,
    EventDay,
    ThermalDay,
)
from wrale.fleet.brain.decisions.wear_battery import DischargeHour, measured_soh
from wrale.fleet.brain.models.telemetry import TelemetryRollup1h
from wrale.fleet.brain.services.fleet_view_builder import (
    AMBIENT,
    BATTERY,
    ON_BATTERY,
    POWER,
    RPM,
    TEMP,
    THROTTLED,
)
from wrale.fleet.brain.services.telemetry_store import lookup_metric_ids

HISTORY_DAYS = 30
BATTERY_HEALTH, EMMC_USED, EMMC_PRE_EOL = "battery_health_pct", "emmc_life_used_pct", "emmc_pre_eol"
UNDER_VOLTAGE = "under_voltage"
RPM_BAND = int(DEFAULT_POLICY.rpm_band)
CHUNK = 500


def _chunks(nums: Sequence[int]) -> list[list[int]]:
    return [list(nums[i : i + CHUNK]) for i in range(0, len(nums), CHUNK)]


async def thermal_days(
    session: AsyncSession, devices: Mapping[int, str], now: float
) -> dict[str, list[ThermalDay]]:
    """Device id -> its days per RPM band: hours and mean (die - air) / watts."""
    ids = await lookup_metric_ids(session, [TEMP, AMBIENT, POWER, RPM])
    if not devices or len(ids) < 4:
        return {}
    t, a, p, r = (aliased(TelemetryRollup1h) for _ in range(4))
    start = int(now - HISTORY_DAYS * DAY_S)
    day = ((t.bucket_ts - start) // int(DAY_S)).label("day")
    band = (cast(r.sum / r.count, Integer) // RPM_BAND).label("band")
    ratio = (t.sum / t.count - a.sum / a.count) / (p.sum / p.count)
    out: dict[str, list[ThermalDay]] = defaultdict(list)

    def same_hour(x: type[TelemetryRollup1h], metric: str) -> object:
        return and_(
            x.device_num == t.device_num,
            x.bucket_ts == t.bucket_ts,
            x.metric_id == ids[metric],
            x.count > 0,
        )

    for chunk in _chunks(sorted(devices)):
        rows = await session.execute(
            select(t.device_num, day, band, func.count(), func.avg(ratio))
            .join(a, same_hour(a, AMBIENT))  # type: ignore[arg-type]
            .join(p, same_hour(p, POWER))  # type: ignore[arg-type]
            .join(r, same_hour(r, RPM))  # type: ignore[arg-type]
            .where(
                t.device_num.in_(chunk),
                t.metric_id == ids[TEMP],
                t.bucket_ts >= start,
                t.count > 0,
                p.sum > 0,
                r.sum >= 0,
            )
            .group_by(t.device_num, day, band)
        )
        for num, d, b, hours, mean in rows:
            if mean is None:
                continue
            out[devices[num]].append(
                ThermalDay(start + int(d) * DAY_S, int(b), int(hours), float(mean))
            )
    return out


async def _hours_flagged(
    session: AsyncSession, devices: Mapping[int, str], now: float, metric: str
) -> dict[str, dict[float, int]]:
    """Device id -> day start -> hours of the day in which the 0/1 ``metric`` was ever 1."""
    mid = (await lookup_metric_ids(session, [metric])).get(metric)
    if not devices or mid is None:
        return {}
    r = TelemetryRollup1h
    start = int(now - HISTORY_DAYS * DAY_S)
    day = ((r.bucket_ts - start) // int(DAY_S)).label("day")
    out: dict[str, dict[float, int]] = defaultdict(dict)
    for chunk in _chunks(sorted(devices)):
        rows = await session.execute(
            select(r.device_num, day, func.count())
            .where(
                r.device_num.in_(chunk),
                r.metric_id == mid,
                r.bucket_ts >= start,
                r.max > 0,
            )
            .group_by(r.device_num, day)
        )
        for num, d, hours in rows:
            out[devices[num]][start + int(d) * DAY_S] = int(hours)
    return out


async def event_days(
    session: AsyncSession, devices: Mapping[int, str], now: float
) -> dict[str, list[EventDay]]:
    """Device id -> hours with throttling and with under-voltage, per day with either, over
    the policy's last ``event_days`` days (the detection counts the days it is given)."""
    throttled = await _hours_flagged(session, devices, now, THROTTLED)
    under = await _hours_flagged(session, devices, now, UNDER_VOLTAGE)
    since = now - DEFAULT_POLICY.event_days * DAY_S
    out: dict[str, list[EventDay]] = {}
    for device in throttled.keys() | under.keys():
        thr, uv = throttled.get(device, {}), under.get(device, {})
        days = sorted(t for t in thr.keys() | uv.keys() if t >= since)
        out[device] = [EventDay(t, thr.get(t, 0), uv.get(t, 0)) for t in days]
    return out


async def _daily(
    session: AsyncSession, devices: Mapping[int, str], now: float, metric: str, highest: bool
) -> dict[str, dict[float, float]]:
    """Device id -> day start -> the metric's mean over the day (``highest``: its highest)."""
    mid = (await lookup_metric_ids(session, [metric])).get(metric)
    if not devices or mid is None:
        return {}
    r = TelemetryRollup1h
    start = int(now - HISTORY_DAYS * DAY_S)
    day = ((r.bucket_ts - start) // int(DAY_S)).label("day")
    value = func.max(r.max) if highest else func.sum(r.sum) / func.sum(r.count)
    out: dict[str, dict[float, float]] = defaultdict(dict)
    for chunk in _chunks(sorted(devices)):
        rows = await session.execute(
            select(r.device_num, day, value)
            .where(
                r.device_num.in_(chunk),
                r.metric_id == mid,
                r.bucket_ts >= start,
                r.count > 0,
            )
            .group_by(r.device_num, day)
        )
        for num, d, v in rows:
            if v is not None:
                out[devices[num]][start + int(d) * DAY_S] = float(v)
    return out


async def battery_health_days(
    session: AsyncSession, devices: Mapping[int, str], now: float
) -> dict[str, list[BatteryDay]]:
    """Device id -> the state of health its gauge reported, per day (a fraction)."""
    days = await _daily(session, devices, now, BATTERY_HEALTH, highest=False)
    return {
        device: [BatteryDay(t, pct / 100.0) for t, pct in sorted(by_day.items())]
        for device, by_day in days.items()
    }


async def emmc_days(
    session: AsyncSession, devices: Mapping[int, str], now: float
) -> dict[str, list[EmmcDay]]:
    """Device id -> its eMMC's highest life used and pre-EOL level, per day."""
    used = await _daily(session, devices, now, EMMC_USED, highest=True)
    eol = await _daily(session, devices, now, EMMC_PRE_EOL, highest=True)
    return {
        device: [
            EmmcDay(t, pct, None if t not in eol.get(device, {}) else int(eol[device][t]))
            for t, pct in sorted(by_day.items())
        ]
        for device, by_day in used.items()
    }


async def battery_measured_days(
    session: AsyncSession, devices: Mapping[int, str], now: float
) -> dict[str, list[BatteryDay]]:
    """Device id -> the capacity measured across its discharges, per day with one, as a
    share of its first measured days (``wear_battery``)."""
    ids = await lookup_metric_ids(session, [ON_BATTERY, POWER, BATTERY])
    if not devices or len(ids) < 3:
        return {}
    o, p, b = (aliased(TelemetryRollup1h) for _ in range(3))
    start = int(now - HISTORY_DAYS * DAY_S)
    day = ((o.bucket_ts - start) // int(DAY_S)).label("day")

    def same_hour(x: type[TelemetryRollup1h], metric: str) -> object:
        return and_(
            x.device_num == o.device_num,
            x.bucket_ts == o.bucket_ts,
            x.metric_id == ids[metric],
            x.count > 0,
        )

    hours: dict[str, list[DischargeHour]] = defaultdict(list)
    for chunk in _chunks(sorted(devices)):
        rows = await session.execute(
            select(o.device_num, o.bucket_ts, day, o.sum / o.count, p.sum / p.count, b.max, b.min)
            .join(p, same_hour(p, POWER))  # type: ignore[arg-type]
            .join(b, same_hour(b, BATTERY))  # type: ignore[arg-type]
            .where(
                o.device_num.in_(chunk),
                o.metric_id == ids[ON_BATTERY],
                o.bucket_ts >= start,
                o.count > 0,
                o.max > 0,
            )
        )
        for num, bucket, d, share, watts, high, low in rows:
            if None in (share, watts, high, low):
                continue
            hours[devices[num]].append(
                DischargeHour(
                    float(bucket),
                    start + int(d) * DAY_S,
                    float(share),
                    float(watts),
                    float(high),
                    float(low),
                )
            )
    out: dict[str, list[BatteryDay]] = {}
    for device, found in hours.items():
        soh = measured_soh(found, DEFAULT_POLICY.baseline_days)
        if soh:
            out[device] = [BatteryDay(t, v) for t, v in soh]
    return out
