"""Stored telemetry of a worn fan, for the wear API and CLI tests."""

from __future__ import annotations

import time

from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.telemetry import TelemetryRollup1h
from wrale.fleet.brain.services.telemetry_store import metric_ids

DAY = 86_400
DAYS = 20


async def worn_fan(db: Database, device_id: str) -> None:
    """Hourly rollups of 20 days, 8 hours a day: duty 50 %, RPM down 3 % a day from day 8."""
    now_hour = int(time.time()) // 3600 * 3600
    async with db.session() as s:
        device = await s.get(Device, device_id)
        assert device is not None
        ids = await metric_ids(s, ["fan_pct", "fan_rpm"])
        for day in range(DAYS):
            rpm = 4000.0 * (1 - 0.03 * max(0, day - 8))
            for hour in range(1, 9):
                bucket = now_hour - (DAYS - day) * DAY + hour * 3600
                for metric, value in (("fan_pct", 50.0), ("fan_rpm", rpm + hour)):
                    s.add(
                        TelemetryRollup1h(
                            device_num=device.num,
                            metric_id=ids[metric],
                            bucket_ts=bucket,
                            min=value,
                            max=value,
                            sum=value * 6,
                            count=6,
                            last=value,
                            last_ts=float(bucket + 3000),
                        )
                    )


def _rollup(num: int, metric_id: int, bucket: int, values: list[float]) -> TelemetryRollup1h:
    return TelemetryRollup1h(
        device_num=num,
        metric_id=metric_id,
        bucket_ts=bucket,
        min=min(values),
        max=max(values),
        sum=sum(values),
        count=len(values),
        last=values[-1],
        last_ts=float(bucket + 3000),
    )


SAMPLE_S = 600
TEST_START_S = 3 * 3600 + 1200  # the daily battery test: 03:20-04:20 on battery
TEST_SAMPLES = 6
DESIGN_WH = 20.0


def battery_day(day: int, fade_from: int | None) -> dict[int, dict[str, list[float]]]:
    """Hour of the day -> metric -> 10-minute samples of a board at 6 W whose UPS runs a
    60-minute test on battery every day from full (a gauge of whole percents), its capacity
    falling 1 % of design a day from day ``fade_from`` (``None``: never), recharged at 2 % per
    sample after; on mains on the other samples (hours 2-6 only: the rest of the day does not
    matter to the estimate)."""
    capacity = DESIGN_WH * (1 - 0.01 * max(0, day - fade_from) if fade_from is not None else 1)
    charge = capacity
    out: dict[int, dict[str, list[float]]] = {}
    for t in range(2 * 3600, 7 * 3600, SAMPLE_S):
        on = TEST_START_S <= t < TEST_START_S + TEST_SAMPLES * SAMPLE_S
        watts = 6.0 + 0.1 * ((t // SAMPLE_S) % 3)  # the load moves a little
        pct = float(round(100 * charge / capacity))
        hour = out.setdefault(t // 3600, {"on_battery": [], "power_w": [], "battery_pct": []})
        hour["on_battery"].append(1.0 if on else 0.0)
        hour["power_w"].append(watts)
        hour["battery_pct"].append(pct)
        if on:
            charge -= watts * SAMPLE_S / 3600
        else:
            charge = min(capacity, charge + 0.02 * capacity)
    return out


async def store_samples(
    db: Database, device_id: str, days: dict[int, dict[int, dict[str, list[float]]]]
) -> None:
    """``days``: day (0 = ``DAYS`` days ago) -> hour -> metric -> samples, as hourly rollups."""
    today = int(time.time()) // DAY * DAY
    async with db.session() as s:
        device = await s.get(Device, device_id)
        assert device is not None
        names = sorted({m for hours in days.values() for ms in hours.values() for m in ms})
        ids = await metric_ids(s, names)
        for day, hours in days.items():
            start = today - (DAYS - day) * DAY
            for hour, metrics in hours.items():
                for metric, values in metrics.items():
                    s.add(_rollup(device.num, ids[metric], start + hour * 3600, values))


async def faded_battery(db: Database, device_id: str, fade_from: int | None = 8) -> None:
    """``DAYS`` days of a board with a UPS that reports no state of health, whose battery
    loses 1 % of its design capacity a day from day ``fade_from``, tested daily."""
    await store_samples(db, device_id, {d: battery_day(d, fade_from) for d in range(DAYS)})
