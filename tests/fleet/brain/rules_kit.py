"""Stored 1-minute rollups for the maintenance rules' service, API and CLI tests."""

from __future__ import annotations

from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.telemetry import TelemetryRollup1m
from wrale.fleet.brain.services.telemetry_store import metric_ids


async def minutes(
    db: Database, device_id: str, metric: str, values: list[float], now: float
) -> None:
    """One 1-minute rollup per value (replacing what is there), the last one the minute
    before ``now``."""
    newest = int(now) // 60 * 60 - 60
    async with db.session() as s:
        device = await s.get(Device, device_id)
        assert device is not None
        mid = (await metric_ids(s, [metric]))[metric]
        for i, v in enumerate(reversed(values)):
            bucket = newest - 60 * i
            old = await s.get(TelemetryRollup1m, (device.num, mid, bucket))
            if old is not None:
                await s.delete(old)
                await s.flush()
            s.add(
                TelemetryRollup1m(
                    device_num=device.num,
                    metric_id=mid,
                    bucket_ts=bucket,
                    min=v,
                    max=v,
                    sum=v * 4,
                    count=4,
                    last=v,
                    last_ts=bucket + 50.0,
                )
            )
