"""Wear trends read from the hourly rollups on real databases (SQLite and PostgreSQL): a
worn fan and a dusty heat sink found on their boards only, the queue grouped by site and
rack, throttling counted per day, hours with no power or no readings ignored, another
tenant's board not found."""

from __future__ import annotations

import time

import pytest

from tests.fleet.brain.jobs_kit import World, make_world
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.telemetry import TelemetryRollup1h
from wrale.fleet.brain.services.maintenance import wear
from wrale.fleet.brain.services.telemetry_store import metric_ids
from wrale.shared.errors import NotFoundError

DAY = 86_400
DAYS = 20
ONSET = 8
METRICS = ["fan_pct", "fan_rpm", "cpu_temp_c", "ambient_temp_c", "power_w", "throttled"]


def _now() -> float:
    """Noon today: the service's days (from now back) then hold whole synthetic days."""
    return float(int(time.time()) // DAY * DAY + DAY // 2)


@pytest.fixture
async def world(database: Database) -> World:
    return await make_world(database)


def _hour(board: str, day: int, hour: int) -> dict[str, float]:
    """One hour's means: a1's fan loses 3 % a day and b1's sink gains 3 % from ONSET."""
    worn = max(0, day - ONSET) * 0.03
    rpm = 4000.0 * (1 - worn if board == "a1" else 1.0) + 7 * hour
    c_per_w = 6.0 * (1 + worn if board == "b1" else 1.0) * (1 + 0.002 * (hour % 3))
    air = 24.0 + hour % 4
    throttled = 1.0 if board == "b1" and day >= DAYS - 3 else 0.0
    return {
        "fan_pct": 50.0,
        "fan_rpm": rpm,
        "cpu_temp_c": air + 4.0 * c_per_w,
        "ambient_temp_c": air,
        "power_w": 4.0,
        "throttled": throttled,
    }


async def _fill(w: World, now: float) -> None:
    today = int(now) // DAY * DAY
    async with w.db.session() as s:
        ids = await metric_ids(s, METRICS)
        for board in ("a1", "a2", "b1", "b2"):
            device = await s.get(Device, w.ids[board])
            assert device is not None
            for day in range(DAYS):
                start = today - (DAYS - 1 - day) * DAY
                for hour in range(8):
                    bucket = start + 3600 * (hour + 1) - DAY  # within the last DAYS days
                    for metric, value in _hour(board, day, hour).items():
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
            # an hour with no power and an hour with no readings change nothing
            s.add_all(
                TelemetryRollup1h(
                    device_num=device.num,
                    metric_id=ids[metric],
                    bucket_ts=today - 3 * 3600,
                    min=0.0,
                    max=0.0,
                    sum=0.0,
                    count=count,
                    last=0.0,
                    last_ts=float(today - 3 * 3600),
                )
                for metric, count in (
                    ("power_w", 1),
                    ("cpu_temp_c", 0),
                    ("ambient_temp_c", 1),
                    ("fan_rpm", 1),
                )
            )


async def test_worn_parts_are_found_on_their_boards_only(world: World) -> None:
    w, now = world, _now()
    await _fill(w, now)
    tenant = w.operator.tenant_id
    async with w.db.session() as s:
        got = {b: await wear.device_wear(s, tenant, w.ids[b], now) for b in ("a1", "a2", "b1")}
    assert [t.kind for t in got["a1"].worn] == ["fan_wear"]
    assert [t.kind for t in got["b1"].worn] == ["dust"]
    assert got["a2"].worn == ()
    assert {t.kind for t in got["a2"].trends} == {"fan_wear", "dust"}  # followed, healthy
    assert got["b1"].throttled_days == 3
    assert got["b1"].site == w.ids["site"]
    assert got["b1"].rack == w.ids["rack_b"]
    fan = got["a1"].worn[0]
    assert fan.replace_before is not None
    assert fan.replace_before > now


async def test_the_queue_groups_by_rack(world: World) -> None:
    w, now = world, _now()
    await _fill(w, now)
    async with w.db.session() as s:
        q = await wear.queue(s, w.operator.tenant_id, now)
    assert q.boards_read == 4
    assert not q.truncated
    racks = {v.rack: [b.device_id for b in v.boards] for v in q.visits}
    assert racks == {w.ids["rack_a"]: [w.ids["a1"]], w.ids["rack_b"]: [w.ids["b1"]]}
    assert {v.site for v in q.visits} == {w.ids["site"]}


async def test_a_board_without_telemetry_has_no_trend(world: World) -> None:
    w, now = world, _now()
    async with w.db.session() as s:
        got = await wear.device_wear(s, w.operator.tenant_id, w.ids["a1"], now)
        q = await wear.queue(s, w.operator.tenant_id, now)
    assert got.trends == ()
    assert q.visits == []


async def test_another_tenants_board_is_not_found(world: World) -> None:
    w, now = world, _now()
    async with w.db.session() as s:
        with pytest.raises(NotFoundError):
            await wear.device_wear(s, "0" * 32, w.ids["a1"], now)
        with pytest.raises(NotFoundError):
            await wear.device_wear(s, w.operator.tenant_id, "no-such-board", now)
