"""Many devices' batches stored at once (the channel's group commit; PostgreSQL: one
statement for all the devices) store exactly what storing each alone, in order, stores:
the same results (stored, duplicate, gap), rows, rollups, newest values and marks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import event, text

from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Device, Tenant
from wrale.fleet.brain.services import telemetry, telemetry_many

T0 = 1_789_999_200.0  # a whole hour (and minute) in 2026
NOW = T0 + 7200
Points = list[tuple[str, float, float]]


def _pts(offset: float, *metrics: str) -> Points:
    return [(m, T0 + offset + k, 30.0 + k + i) for k in range(5) for i, m in enumerate(metrics)]


# (device index, seq, prev, points): firsts, a gap, a duplicate, a device's second and third
# batches (after its first, in the same bucket), an empty batch, prev None (no gap check)
SCENARIO: list[tuple[int, int, int | None, Points]] = [
    (0, 1, 0, _pts(0, "cpu_temp_c", "power_w")),
    (1, 1, None, _pts(0, "cpu_temp_c")),
    (2, 6, 5, _pts(10, "cpu_temp_c", "fan_rpm")),
    (3, 9, 7, _pts(0, "power_w")),
    (2, 6, 5, _pts(10, "cpu_temp_c", "fan_rpm")),
    (0, 2, 1, _pts(3, "cpu_temp_c", "power_w")),
    (3, 4, 3, []),
    (0, 3, 2, _pts(-3600, "cpu_temp_c", "new_metric_c")),
    (2, 10, 0, _pts(4000, "fan_rpm")),
]
BEFORE = [(2, 5, _pts(-60, "cpu_temp_c")), (3, 3, _pts(-60, "power_w"))]  # marks already there


async def _devices(db: Database, first: int) -> list[Device]:
    async with db.session() as s:
        t = Tenant(name=f"t{first}")
        s.add(t)
        await s.flush()
        devices = [Device(tenant_id=t.id, num=first + i, name=f"d{first + i}") for i in range(4)]
        s.add_all(devices)
    async with db.session() as s:
        for i, seq, pts in BEFORE:
            await telemetry.ingest_batch(s, devices[i], seq, pts, now=NOW)
    return devices


async def _rows(db: Database, first: int) -> list[Any]:
    """Every telemetry row of devices ``first``..``first + 3``, the device as its index."""
    out: list[Any] = []
    async with db.session() as s:
        for table, key in [
            ("telemetry_raw", "metric_id, ts"),
            ("telemetry_1m", "metric_id, bucket_ts"),
            ("telemetry_1h", "metric_id, bucket_ts"),
            ("telemetry_latest", "metric_id"),
            ("telemetry_seq", "device_num"),
        ]:
            rows = await s.execute(
                text(
                    f"SELECT * FROM {table} WHERE device_num BETWEEN :a AND :b "
                    f"ORDER BY device_num, {key}"
                ),
                {"a": first, "b": first + 3},
            )
            out += [(table, r.device_num - first, *r[1:]) for r in rows]
    return out


async def test_many_batches_at_once_store_what_each_alone_stores(database: Database) -> None:
    alone, many = await _devices(database, 1), await _devices(database, 11)
    expected = []
    for i, seq, prev, pts in SCENARIO:
        async with database.session() as s:
            expected.append(await telemetry.ingest_batch(s, alone[i], seq, pts, prev=prev, now=NOW))
    writes: list[str] = []
    event.listen(
        database.engine.sync_engine,
        "before_cursor_execute",
        lambda _c, _cur, sql, *_a: writes.append(sql) if "unnest" in sql else None,
    )
    batches: Sequence[tuple[Device, int, Points, int | None]] = [
        (many[i], seq, pts, prev) for i, seq, prev, pts in SCENARIO
    ]
    async with database.session() as s:
        got = await telemetry_many.ingest_batches(s, batches, now=NOW)
    assert got == expected
    assert [r.stored for r in expected] == [True, True, True, False, False, True, True, True, True]
    assert expected[3].gap
    assert expected[4].duplicate
    assert await _rows(database, 11) == await _rows(database, 1)
    if not database.is_sqlite:  # one statement a round: a device's batches one after another
        assert len(writes) == 3, writes


async def test_a_batch_ingest_batch_refuses_is_left_for_the_caller(database: Database) -> None:
    (d, *_) = await _devices(database, 1)
    bad: Points = [("cpu_temp_c", T0, float("nan"))]
    async with database.session() as s:
        got = await telemetry_many.ingest_batches(
            s, [(d, 1, bad, 0), (d, -1, [], None), (d, 1, _pts(0, "cpu_temp_c"), 0)], now=NOW
        )
    assert got[:2] == [None, None]
    assert got[2] is not None
    assert (got[2].stored, got[2].points) == (True, 5)


async def test_large_statements_store_every_row_once(database: Database) -> None:
    """Columns long enough to be sent as 2-D arrays (padded): every row arrives, no more."""
    async with database.session() as s:
        t = Tenant(name="big")
        s.add(t)
        await s.flush()
        devices = [Device(tenant_id=t.id, num=100 + i, name=f"b{i}") for i in range(7)]
        s.add_all(devices)
    metrics = ("cpu_temp_c", "power_w", "fan_rpm")
    batches: list[tuple[Device, int, Points, int | None]] = [
        (d, 1, [(m, T0 + k * 7.0, float(k + i)) for k in range(13 + i) for m in metrics], 0)
        for i, d in enumerate(devices)
    ]
    async with database.session() as s:
        got = await telemetry_many.ingest_batches(s, batches, now=NOW)
        raw = await s.execute(text("SELECT device_num, ts, value FROM telemetry_raw"))
        counts = await s.execute(text("SELECT SUM(count) FROM telemetry_1m"))
        latest = await s.execute(text("SELECT COUNT(*) FROM telemetry_latest"))
        rows = sorted((int(n), float(ts), float(v)) for n, ts, v in raw)
        assert counts.scalar_one() == len(rows)
        assert latest.scalar_one() == 3 * 7
    assert [r.points if r else None for r in got] == [3 * (13 + i) for i in range(7)]
    expected = sorted((d.num, ts, v) for d, _, pts, _ in batches for _, ts, v in pts)
    assert rows == expected
