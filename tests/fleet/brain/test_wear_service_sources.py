"""Wear from what the boards report of themselves, read from the hourly rollups on both
databases: the battery's state of health (``battery_health_pct``) and the eMMC's life used
and pre-EOL level (``emmc_life_used_pct``, ``emmc_pre_eol``); worn parts reach the queue
by rack, healthy ones are followed without a flag."""

from __future__ import annotations

import time

import pytest

from tests.fleet.brain.jobs_kit import World, make_world
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.telemetry import TelemetryRollup1h
from wrale.fleet.brain.services.maintenance import wear
from wrale.fleet.brain.services.telemetry_store import metric_ids

DAY = 86_400
DAYS = 20
ONSET = 8
BOARDS = ("a1", "a2", "b1", "b2")
METRICS = ["battery_health_pct", "emmc_life_used_pct", "emmc_pre_eol"]


def _now() -> float:
    return float(int(time.time()) // DAY * DAY + DAY // 2)


@pytest.fixture
async def world(database: Database) -> World:
    return await make_world(database)


def _day(board: str, day: int) -> dict[str, float]:
    """a1's battery fades 1 % a day from ONSET; b1's eMMC reaches the 80-90 % band by the
    last days (pre-EOL warning at the very end); a2 and b2 stay healthy."""
    health = 97.0 - (max(0, day - ONSET) if board == "a1" else 0) + 0.2 * (day % 3)
    used = 10.0 * min(9, 6 + day // 6) if board == "b1" else 20.0
    pre_eol = 2.0 if board == "b1" and day >= DAYS - 2 else 1.0
    return {"battery_health_pct": health, "emmc_life_used_pct": used, "emmc_pre_eol": pre_eol}


async def _fill(w: World, now: float) -> None:
    today = int(now) // DAY * DAY
    async with w.db.session() as s:
        ids = await metric_ids(s, METRICS)
        for board in BOARDS:
            device = await s.get(Device, w.ids[board])
            assert device is not None
            for day in range(DAYS):
                start = today - (DAYS - 1 - day) * DAY
                for hour in range(4):
                    bucket = start + 3600 * (hour + 1) - DAY
                    for metric, value in _day(board, day).items():
                        if metric.startswith("emmc") and board in ("a1", "a2"):
                            continue  # rack A boots from SD cards: no eMMC
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


async def test_reported_battery_health_and_emmc_wear(world: World) -> None:
    w, now = world, _now()
    await _fill(w, now)
    tenant = w.operator.tenant_id
    async with w.db.session() as s:
        got = {b: await wear.device_wear(s, tenant, w.ids[b], now) for b in BOARDS}
    assert [t.kind for t in got["a1"].worn] == ["battery_fade"]
    assert [t.kind for t in got["b1"].worn] == ["emmc"]
    assert got["a2"].worn == ()
    assert got["b2"].worn == ()
    assert {t.kind for t in got["a2"].trends} == {"battery_fade"}  # followed, healthy
    assert {t.kind for t in got["b2"].trends} == {"battery_fade", "emmc"}
    battery = got["a1"].worn[0]
    assert battery.wear_pct > 5.0
    assert battery.replace_before is not None
    assert battery.replace_before > now - DAY
    emmc = got["b1"].worn[0]
    assert emmc.wear_pct == 90.0
    assert emmc.points[0][1] == 60.0
    assert emmc.slope_pct_per_day > 0
    assert emmc.replace_before is not None


async def test_the_queue_carries_the_emmc_and_the_battery(world: World) -> None:
    w, now = world, _now()
    await _fill(w, now)
    async with w.db.session() as s:
        q = await wear.queue(s, w.operator.tenant_id, now)
    parts = {b.device_id: [t.kind for t in b.worn] for v in q.visits for b in v.boards}
    assert parts == {w.ids["a1"]: ["battery_fade"], w.ids["b1"]: ["emmc"]}
    assert {v.rack for v in q.visits} == {w.ids["rack_a"], w.ids["rack_b"]}
