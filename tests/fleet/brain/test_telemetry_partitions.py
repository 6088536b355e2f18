"""Telemetry partitioned by time on PostgreSQL (plain tables on SQLite), on both databases:
partitions made ahead by the duty, retention dropping a whole partition and keeping newer
data, points outside every partition kept (and moved once their partition is made), the
same answers for duplicate and boundary points, and the migration of a populated
PostgreSQL table keeping its rows."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, text

from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Device, Tenant
from wrale.fleet.brain.models.telemetry import TelemetryRaw, TelemetryRollup1h, TelemetryRollup1m
from wrale.fleet.brain.services import telemetry, telemetry_query
from wrale.fleet.brain.services import telemetry_partitions as tp
from wrale.shared.central_settings import CentralSettings

DAY = 86_400
NOW = 1_790_006_400.0 + 5 * 3600  # 05:00 UTC
SETTINGS = CentralSettings(dev=True, secret_key="x" * 32)  # raw 48 h, 1 m 30 d, 1 h 730 d


async def _device(db: Database, num: int = 1) -> Device:
    async with db.session() as s:
        t = (await s.scalars(select(Tenant).where(Tenant.name == "acme"))).first()
        if t is None:
            t = Tenant(name="acme")
            s.add(t)
            await s.flush()
        d = Device(tenant_id=t.id, num=num, name=f"d{num}")
        s.add(d)
    return d


async def _ingest(db: Database, d: Device, seq: int, pts: list[tuple[str, float, float]]):
    async with db.session() as s:
        return await telemetry.ingest_batch(s, d, seq, pts, now=NOW)


async def _ensure(db: Database, now: float, ahead_s: float = tp.AHEAD_S) -> list[str]:
    async with db.session() as s:
        return await tp.ensure_partitions(s, now, ahead_s)


async def _names(db: Database, table: str) -> list[str]:
    if db.is_sqlite:
        return []
    async with db.engine.connect() as conn:
        return [r.name for r in await tp.ranges(conn, tp.BY_TABLE[table])]


async def _raw_ts(db: Database) -> list[float]:
    async with db.session() as s:
        return sorted((await s.scalars(select(TelemetryRaw.ts))).all())


def _pg(db: Database) -> bool:
    return not db.is_sqlite


async def test_partitions_are_made_ahead(database: Database) -> None:
    made = await _ensure(database, NOW)
    if not _pg(database):
        assert made == []  # SQLite: plain tables
        return
    day0 = int(NOW // DAY) * DAY
    raw = [tp.partition_name(tp.BY_TABLE["telemetry_raw"], day0 + i * DAY) for i in range(4)]
    assert await _names(database, "telemetry_raw") == raw  # today and 3 days ahead
    assert len(await _names(database, "telemetry_1m")) == 4
    assert len(await _names(database, "telemetry_1h")) in (1, 2)  # 30-day periods
    assert sorted(made) == sorted(
        raw + await _names(database, "telemetry_1m") + await _names(database, "telemetry_1h")
    )
    assert await _ensure(database, NOW) == []  # idempotent
    assert len(await _ensure(database, NOW + DAY)) >= 2  # a day later: the next raw and 1 m
    async with database.engine.connect() as conn:
        kind = (
            await conn.exec_driver_sql(
                "SELECT relkind FROM pg_class WHERE relname = 'telemetry_raw'"
            )
        ).scalar_one()
    assert kind in ("p", b"p")  # partitioned (asyncpg reads the "char" type as bytes)


@dataclass
class _Ctx:
    db: Database


async def test_the_background_duty_makes_them(database: Database) -> None:
    await tp.partition_duty(_Ctx(database), NOW)
    if _pg(database):
        assert len(await _names(database, "telemetry_raw")) == 4
    d = await _device(database)
    assert (await _ingest(database, d, 1, [("t_c", NOW, 1.0)])).stored
    assert await _raw_ts(database) == [NOW]


async def test_retention_drops_a_whole_partition_and_keeps_newer_data(database: Database) -> None:
    await _ensure(database, NOW - 4 * DAY, ahead_s=5 * DAY)
    d = await _device(database)
    old, mid, new = NOW - 4 * DAY + 60, NOW - 36 * 3600, NOW - 60
    await _ingest(database, d, 1, [("t_c", old, 1.0), ("t_c", mid, 2.0), ("t_c", new, 3.0)])
    before = await _names(database, "telemetry_raw")
    async with database.session() as s:
        await telemetry.apply_retention(s, SETTINGS, NOW)
    assert await _raw_ts(database) == [mid, new]  # 48 h: the 4-day-old point is gone
    if _pg(database):
        after = await _names(database, "telemetry_raw")
        gone = sorted(set(before) - set(after))
        day_of_old = tp.partition_name(tp.BY_TABLE["telemetry_raw"], int(old // DAY) * DAY)
        assert day_of_old in gone  # dropped whole, not emptied
        assert all(n in after for n in before if n not in gone)
        assert len(after) == 4  # from 2 days back (in part inside the retention) to tomorrow
    async with database.session() as s:
        series = await telemetry_query.device_series(s, d, "t_c", NOW - 3600, NOW, "1m")
    assert [p[1] for p in series.points] == [3.0]


async def test_rollup_retention_by_partition(database: Database) -> None:
    await _ensure(database, NOW - 40 * DAY, ahead_s=41 * DAY)
    d = await _device(database)
    await _ingest(database, d, 1, [("t_c", NOW - 35 * DAY, 1.0), ("t_c", NOW - 60, 2.0)])
    async with database.session() as s:
        await telemetry.apply_retention(s, SETTINGS, NOW)
        m1 = (await s.scalars(select(TelemetryRollup1m.bucket_ts))).all()
        h1 = (await s.scalars(select(TelemetryRollup1h.bucket_ts))).all()
    assert m1 == [int(NOW - 60) // 60 * 60]  # 1 m kept 30 days
    assert len(h1) == 2  # 1 h kept 730 days


async def test_points_outside_every_partition_are_kept_and_moved(database: Database) -> None:
    d = await _device(database)
    far = NOW - 10 * DAY  # no partition yet: the DEFAULT one holds it
    await _ingest(database, d, 1, [("t_c", far, 1.0), ("t_c", NOW, 2.0)])
    assert await _raw_ts(database) == [far, NOW]
    made = await _ensure(database, far, ahead_s=11 * DAY)
    assert await _raw_ts(database) == [far, NOW]
    if _pg(database):
        assert tp.partition_name(tp.BY_TABLE["telemetry_raw"], int(far // DAY) * DAY) in made
        async with database.engine.connect() as conn:
            left = (
                await conn.exec_driver_sql(f"SELECT count(*) FROM {tp.default_name(tp.SCHEMES[0])}")
            ).scalar_one()
        assert left == 0


async def test_duplicates_and_boundaries_behave_as_before(database: Database) -> None:
    await _ensure(database, NOW)
    d = await _device(database)
    midnight = float(int(NOW // DAY) * DAY + DAY)  # the first instant of tomorrow's partition
    pts = [("t_c", midnight - 0.001, 1.0), ("t_c", midnight, 2.0), ("t_c", midnight, 3.0)]
    r = await _ingest(database, d, 1, pts)
    assert (r.stored, r.points) == (True, 2)  # the last value sent for a (metric, ts) wins
    again = await _ingest(database, d, 2, [("t_c", midnight, 9.0), ("t_c", NOW, 4.0)])
    assert again.stored  # a point re-sent in a new batch is stored once (the first value)
    async with database.session() as s:
        raw = await telemetry_query.device_series(s, d, "t_c", NOW, midnight + 1, None)
    assert raw.points == [[NOW, 4.0], [midnight - 0.001, 1.0], [midnight, 3.0]]
    assert (await _ingest(database, d, 2, [("t_c", NOW + 1, 5.0)])).duplicate


async def test_deleted_devices_leave_nothing(database: Database) -> None:
    await _ensure(database, NOW)
    d, gone = await _device(database), await _device(database, 2)
    await _ingest(database, d, 1, [("t_c", NOW, 1.0)])
    await _ingest(database, gone, 1, [("t_c", NOW, 2.0)])
    async with database.session() as s:
        await s.execute(text("DELETE FROM devices WHERE num = 2"))
    async with database.session() as s:
        await telemetry.apply_retention(s, SETTINGS, NOW)
        left = (await s.execute(select(func.count()).select_from(TelemetryRaw))).scalar_one()
        h1 = (await s.scalars(select(TelemetryRollup1h.device_num))).all()
    assert (left, h1) == (1, [1])
