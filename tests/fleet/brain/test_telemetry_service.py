"""Telemetry storage on both databases: ingest and read back, idempotent redelivery by
sequence number, validation, rollups (min / max / mean / last), retention, newest values."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import delete, func, select

from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Device, Tenant
from wrale.fleet.brain.models.telemetry import (
    TelemetryLatest,
    TelemetryRaw,
    TelemetryRollup1h,
    TelemetryRollup1m,
)
from wrale.fleet.brain.services import telemetry, telemetry_query
from wrale.shared.central_settings import CentralSettings
from wrale.shared.errors import InvalidRequestError

T0 = 1_789_999_200.0  # a whole hour (and minute) in 2026
NOW = T0 + 7200


async def _device(db: Database, num: int = 1, tenant: str = "acme") -> Device:
    async with db.session() as s:
        t = (await s.scalars(select(Tenant).where(Tenant.name == tenant))).first()
        if t is None:
            t = Tenant(name=tenant)
            s.add(t)
            await s.flush()
        d = Device(tenant_id=t.id, num=num, name=f"d{num}")
        s.add(d)
    return d


async def _ingest(db: Database, d: Device, seq: int, points: list[tuple[str, float, float]]):
    async with db.session() as s:
        return await telemetry.ingest_batch(s, d, seq, points, now=NOW)


async def _count(db: Database, model: type) -> int:
    async with db.session() as s:
        return int((await s.execute(select(func.count()).select_from(model))).scalar_one())


async def test_ingest_and_read_raw(database: Database) -> None:
    d = await _device(database)
    pts = [("cpu_temp_c", T0 + i, 40.0 + i) for i in range(5)] + [("power_w", T0, 3.5)]
    r = await _ingest(database, d, 1, pts)
    assert (r.stored, r.duplicate, r.acked_seq, r.last_seq, r.points) == (True, False, 1, 1, 6)
    async with database.session() as s:
        series = await telemetry_query.device_series(s, d, "cpu_temp_c", T0, T0 + 3, None)
        assert series.points == [[T0 + i, 40.0 + i] for i in range(4)]
        empty = await telemetry_query.device_series(s, d, "unknown_metric_c", T0, NOW, None)
        assert empty.points == []


async def test_redelivery_is_idempotent(database: Database) -> None:
    d = await _device(database)
    pts = [("cpu_temp_c", T0 + i, 50.0) for i in range(10)]
    assert (await _ingest(database, d, 7, pts)).stored
    again = await _ingest(database, d, 7, pts)
    assert (again.stored, again.duplicate, again.acked_seq, again.last_seq) == (False, True, 7, 7)
    assert await _count(database, TelemetryRaw) == 10
    async with database.session() as s:
        series = await telemetry_query.device_series(s, d, "cpu_temp_c", T0, T0 + 60, "1m")
    assert series.points == [[T0, 50.0, 50.0, 50.0, 50.0]]  # counted once in the rollup


async def test_older_seq_after_newer_is_a_duplicate(database: Database) -> None:
    d = await _device(database)
    other = await _device(database, 2)
    assert (await _ingest(database, d, 5, [("cpu_temp_c", T0, 1.0)])).stored
    old = await _ingest(database, d, 3, [("cpu_temp_c", T0 + 1, 2.0)])
    assert (old.duplicate, old.acked_seq, old.last_seq) == (True, 3, 5)
    assert (await _ingest(database, d, 6, [("cpu_temp_c", T0 + 2, 3.0)])).stored
    # sequences are per device
    assert (await _ingest(database, other, 1, [("cpu_temp_c", T0, 9.0)])).stored
    assert await _count(database, TelemetryRaw) == 3


async def test_empty_batch_advances_the_sequence(database: Database) -> None:
    d = await _device(database)
    assert (await _ingest(database, d, 1, [])).stored
    assert (await _ingest(database, d, 1, [])).duplicate


@pytest.mark.parametrize(
    ("point", "message"),
    [
        (("CPU", T0, 1.0), "metric"),
        (("1cpu_c", T0, 1.0), "metric"),
        (("a" * 65, T0, 1.0), "metric"),
        (("cpu_temp_c", T0, math.nan), "finite"),
        (("cpu_temp_c", T0, math.inf), "finite"),
        (("cpu_temp_c", NOW + 86_401, 1.0), "timestamp"),
        (("cpu_temp_c", 100.0, 1.0), "timestamp"),
    ],
)
async def test_invalid_points_are_refused(
    database: Database, point: tuple[str, float, float], message: str
) -> None:
    d = await _device(database)
    with pytest.raises(InvalidRequestError, match=message):
        await _ingest(database, d, 1, [("cpu_temp_c", T0, 1.0), point])
    assert await _count(database, TelemetryRaw) == 0
    assert (await _ingest(database, d, 1, [("cpu_temp_c", T0, 1.0)])).stored  # seq not used


async def test_invalid_seq_and_oversized_batch(database: Database) -> None:
    d = await _device(database)
    with pytest.raises(InvalidRequestError, match="seq"):
        await _ingest(database, d, -1, [])
    with pytest.raises(InvalidRequestError, match="at most"):
        await _ingest(database, d, 1, [("x_c", T0 + i * 0.001, 1.0) for i in range(10_001)])


async def test_rollups_min_max_mean_last(database: Database) -> None:
    d = await _device(database)
    # minute 0: 10, 30, 20 (last at +50 s); minute 1: 5; sent out of order, in two batches
    await _ingest(database, d, 1, [("t_c", T0 + 50, 20.0), ("t_c", T0 + 10, 10.0)])
    await _ingest(database, d, 2, [("t_c", T0 + 30, 30.0), ("t_c", T0 + 65, 5.0)])
    async with database.session() as s:
        one = await telemetry_query.device_series(s, d, "t_c", T0, T0 + 119, "1m")
        five = await telemetry_query.device_series(s, d, "t_c", T0, T0 + 119, "5m")
        hour = await telemetry_query.device_series(s, d, "t_c", T0, T0 + 119, "1h")
        rows = (await s.scalars(select(TelemetryRollup1m).order_by("bucket_ts"))).all()
    assert one.points == [[T0, 20.0, 10.0, 30.0, 20.0], [T0 + 60, 5.0, 5.0, 5.0, 5.0]]
    assert one.columns == ("ts", "mean", "min", "max", "last")
    assert five.points == [[T0, 16.25, 5.0, 30.0, 5.0]]
    assert hour.points == [[T0, 16.25, 5.0, 30.0, 5.0]]
    assert [(r.count, r.sum, r.last_ts) for r in rows] == [(3, 60.0, T0 + 50), (1, 5.0, T0 + 65)]


async def test_step_and_range_limits(database: Database) -> None:
    d = await _device(database)
    await _ingest(database, d, 1, [("t_c", T0 + i * 0.5, float(i)) for i in range(10_000)])
    async with database.session() as s:
        with pytest.raises(InvalidRequestError, match="coarser step"):
            await telemetry_query.device_series(s, d, "t_c", T0, T0 + 60 * 10_000, "1m")
        with pytest.raises(InvalidRequestError, match="step"):
            await telemetry_query.device_series(s, d, "t_c", T0, T0 + 5000, "2m")
        ok = await telemetry_query.device_series(s, d, "t_c", T0, T0 + 4999.5, None)
        assert len(ok.points) == 10_000
    await _ingest(database, d, 2, [("t_c", T0 + 5000, 1.0)])
    async with database.session() as s:
        with pytest.raises(InvalidRequestError, match="ask for a step"):
            await telemetry_query.device_series(s, d, "t_c", T0, T0 + 5000, None)


async def test_latest_values_and_device_latest(database: Database) -> None:
    a, b, c = await _device(database, 1), await _device(database, 2), await _device(database, 3)
    far = await _device(database, 4, tenant="other")
    await _ingest(database, a, 1, [("power_w", T0, 3.0), ("power_w", T0 + 5, 4.0)])
    await _ingest(database, a, 2, [("power_w", T0 + 2, 9.0)])  # late: not newer
    await _ingest(database, b, 1, [("power_w", T0 + 1, 6.5), ("cpu_temp_c", T0, 50.0)])
    await _ingest(database, far, 1, [("power_w", T0, 100.0)])
    async with database.session() as s:
        tenant_id = a.tenant_id
        got = await telemetry.latest_values(s, tenant_id, "power_w", [a.id, b.id, c.id, far.id])
        assert got == {a.id: (T0 + 5, 4.0), b.id: (T0 + 1, 6.5)}
        assert await telemetry.latest_values(s, tenant_id, "nothing_w", [a.id]) == {}
        assert await telemetry.device_latest(s, b) == {
            "cpu_temp_c": (T0, 50.0),
            "power_w": (T0 + 1, 6.5),
        }
        recent = await telemetry.recent_points(
            s, tenant_id, "power_w", [a.id, b.id, c.id, far.id], T0, T0 + 3
        )
        assert recent == {a.id: [(T0, 3.0), (T0 + 2, 9.0)], b.id: [(T0 + 1, 6.5)]}


async def test_fleet_series_aggregates_across_devices(database: Database) -> None:
    a, b = await _device(database, 1), await _device(database, 2)
    await _ingest(database, a, 1, [("t_c", T0 + 1, 10.0), ("t_c", T0 + 2, 20.0)])
    await _ingest(database, b, 1, [("t_c", T0 + 3, 60.0), ("t_c", T0 + 61, 1.0)])
    async with database.session() as s:
        series = await telemetry_query.fleet_series(s, [1, 2], "t_c", T0, T0 + 120, "1m")
        five = await telemetry_query.fleet_series(s, [1, 2], "t_c", T0, T0 + 120, "5m")
    assert series.points == [[T0, 30.0, 10.0, 60.0, 2], [T0 + 60, 1.0, 1.0, 1.0, 1]]
    assert five.points == [[T0, 22.75, 1.0, 60.0, 2]]


async def test_retention(database: Database) -> None:
    d = await _device(database)
    gone = await _device(database, 2)
    day = 86400.0
    old = NOW - 40 * day  # beyond raw (48 h) and 1 m (30 d) retention, within 1 h (730 d)
    await _ingest(database, d, 1, [("t_c", old, 1.0), ("t_c", NOW - 3 * day, 2.0)])
    await _ingest(database, d, 2, [("t_c", NOW - 60, 3.0)])
    await _ingest(database, gone, 1, [("t_c", NOW - 60, 3.0)])
    async with database.session() as s:
        await s.execute(delete(Device).where(Device.id == gone.id))
    settings = CentralSettings(dev=True, secret_key="x" * 32)
    async with database.session() as s:
        await telemetry.apply_retention(s, settings, NOW)
    async with database.session() as s:
        raw = (await s.scalars(select(TelemetryRaw.ts))).all()
        m1 = (await s.scalars(select(TelemetryRollup1m.bucket_ts))).all()
        h1 = (await s.scalars(select(TelemetryRollup1h.device_num))).all()
        latest = (await s.scalars(select(TelemetryLatest.device_num))).all()
    assert raw == [NOW - 60]
    assert len(m1) == 2  # the 3-day-old minute and the newest
    assert sorted(h1) == [1, 1, 1]  # the deleted device's rows are gone everywhere
    assert latest == [1]
