"""The revision partitioning telemetry keeps every row of a populated database: on
PostgreSQL the tables become partitioned (rows in their day's partition, very old ones in
the DEFAULT partition), on SQLite they stay plain; both get telemetry_latest by metric."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic import command

from tests.fleet.brain.migrations_kit import empty_database
from wrale.fleet.brain import schema
from wrale.fleet.brain.db import Database

BEFORE = "4b44946a5582"  # the revision before telemetry was partitioned
DAY = 86_400


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async with empty_database(request.param, tmp_path, "wrale_tmig") as db:
        yield db


async def _rows(db: Database, sql: str) -> list[tuple[object, ...]]:
    async with db.engine.connect() as conn:
        return [tuple(r) for r in (await conn.exec_driver_sql(sql)).all()]


async def test_populated_tables_keep_their_rows(empty_db: Database) -> None:
    async with empty_db.engine.begin() as conn:
        await conn.run_sync(lambda c: command.upgrade(schema._config(c), BEFORE))
    now = time.time()
    raw = [(n, 1, now - k * 3600.5, float(k)) for n in (1, 2) for k in range(60)]
    raw.append((1, 1, now - 1000 * DAY, -1.0))  # older than any partition
    buckets = [(1, 1, int(now - k * DAY) // 60 * 60, 1.0, 2.0, 3.0, 2, 2.0, now) for k in range(5)]
    async with empty_db.engine.begin() as conn:
        q = "?" if empty_db.is_sqlite else "$"
        marks = [f"{q}{i + 1}" if q == "$" else q for i in range(9)]
        await conn.exec_driver_sql(
            f"INSERT INTO telemetry_raw VALUES ({', '.join(marks[:4])})", raw
        )
        for table in ("telemetry_1m", "telemetry_1h"):
            await conn.exec_driver_sql(
                f"INSERT INTO {table} (device_num, metric_id, bucket_ts, min, max, sum, count, "
                f"last, last_ts) VALUES ({', '.join(marks)})",
                buckets,
            )
    await schema.upgrade(empty_db)
    assert await schema.is_current(empty_db)
    got = await _rows(empty_db, "SELECT device_num, metric_id, ts, value FROM telemetry_raw")
    assert sorted(got) == sorted(raw)
    for table in ("telemetry_1m", "telemetry_1h"):
        assert len(await _rows(empty_db, f"SELECT * FROM {table}")) == 5
    if empty_db.is_sqlite:
        return
    kinds = await _rows(
        empty_db,
        "SELECT relname, relkind::text FROM pg_class WHERE relname IN "
        "('telemetry_raw', 'telemetry_1m', 'telemetry_1h', 'telemetry_raw_unpartitioned')",
    )
    assert sorted(kinds) == [("telemetry_1h", "p"), ("telemetry_1m", "p"), ("telemetry_raw", "p")]
    (in_default,) = await _rows(empty_db, "SELECT value FROM telemetry_parts.telemetry_raw_default")
    assert in_default == (-1.0,)
    today = time.strftime("%Y%m%d", time.gmtime(now))
    (count,) = await _rows(empty_db, f"SELECT count(*) FROM telemetry_parts.telemetry_raw_p{today}")
    assert count[0] == sum(1 for r in raw if int(r[2] // DAY) == int(now // DAY))
    index = await _rows(
        empty_db, "SELECT indexname FROM pg_indexes WHERE tablename = 'telemetry_latest'"
    )
    assert ("ix_telemetry_latest_metric_id",) in index
