"""Telemetry: ingestion rate through ``ingest_batch`` (1,000 devices × batches of 100 points,
one transaction per batch as a lone device's frames are committed before acknowledging, and
``GROUP`` batches of different devices per transaction as the device channel's group commit
does on SQLite — the central's SQLite syncs every commit, ``synchronous=FULL``) and the
latency of a 24 h chart at a 1-minute step of one device holding 7 days of data at one
point per 10 s for 3 metrics (median of 20 queries), on SQLite (temp file, WAL) and on
PostgreSQL (a temporary database on 127.0.0.1:5432, skipped with a note if unreachable;
its telemetry tables partitioned by day, the partitions made as the central's duty does).

Why ``central.telemetry_ingest_pg_pts_s`` measures ``SESSIONS`` device sessions at once,
each committing its own batch: that is how the device channel writes on PostgreSQL. Its
group commit (many devices' frames in one transaction) is for SQLite's single writer only
(``ChannelContext.group_commit`` is None: SQLite); on PostgreSQL every connected device's
session stores and commits its batch on its own pooled connection while the others do the
same, and PostgreSQL flushes the WAL of commits that arrive together once. One durable
commit at a time is bounded by the disk's flush (about 0.6-0.9 ms here, a floor of ~1,100
commits/s before any work), so it measures the disk more than the ingest path; it is still
reported (``central.telemetry_ingest_pg_serial_pts_s``, one batch per commit, one session)
and so is ``GROUP`` batches per commit (``central.telemetry_ingest_pg_group_pts_s``).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from common import Figure, scratch_pg
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Base, Device, Tenant
from wrale.fleet.brain.services.telemetry import ingest_batch
from wrale.fleet.brain.services.telemetry_partitions import ensure_partitions
from wrale.fleet.brain.services.telemetry_query import device_series

DEVICES = int(os.environ.get("BENCH_TELEMETRY_DEVICES", "1000"))
ROUNDS = 2  # batches per device
BATCH = 100  # points: 10 metrics × 10 samples (1 s apart)
GROUP = 32  # batches of different devices in one transaction (the channel's group commit)
SESSIONS = 8  # device sessions storing at once (PostgreSQL: each commits alone; pool of 10)
METRICS = [f"m{i}_c" for i in range(10)]
CHART_METRICS = ("cpu_temp_c", "power_w", "fan_rpm")
WEEK_S = 7 * 86400


async def _setup(db: Database) -> tuple[list[Device], Device]:
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    async with db.session() as s:  # PostgreSQL: a partition per day of the week charted
        await ensure_partitions(s, time.time() - WEEK_S - 86400, ahead_s=WEEK_S + 4 * 86400)
    async with db.session() as s:
        tenant = Tenant(name="bench")
        s.add(tenant)
        await s.flush()
        devices = [Device(tenant_id=tenant.id, num=i + 1, name=f"d{i}") for i in range(DEVICES)]
        chart = Device(tenant_id=tenant.id, num=DEVICES + 1, name="chart")
        s.add_all([*devices, chart])
    return devices, chart


async def _ingest_rate(
    db: Database, devices: list[Device], t0: float, group: int = 1, seq0: int = 0
) -> float:
    """Points per second, ``group`` devices' batches committed in each transaction."""
    total = 0
    start = time.perf_counter()
    for r in range(ROUNDS):
        base = t0 + (seq0 + r) * 10
        points = [(m, base + k, 40.0 + k * 0.1) for k in range(10) for m in METRICS]
        for i in range(0, len(devices), group):
            async with db.session() as s:
                for d in devices[i : i + group]:
                    result = await ingest_batch(s, d, seq0 + r + 1, points, now=t0 + 60)
                    total += result.points
    return total / (time.perf_counter() - start)


async def _store_from(
    db: Database, queue: list[Device], seq: int, points: list[tuple[str, float, float]], at: float
) -> int:
    """One device session's loop: take the next device, store its batch, commit."""
    stored = 0
    while queue:
        d = queue.pop()
        async with db.session() as s:
            stored += (await ingest_batch(s, d, seq, points, now=at)).points
    return stored


async def _concurrent_rate(
    db: Database, devices: list[Device], t0: float, sessions: int, seq0: int
) -> float:
    """Points per second, ``sessions`` device sessions at once, one batch per commit each."""
    total = 0
    start = time.perf_counter()
    for r in range(ROUNDS):
        base = t0 + (seq0 + r) * 10
        points = [(m, base + k, 40.0 + k * 0.1) for k in range(10) for m in METRICS]
        queue = list(reversed(devices))
        runs = (_store_from(db, queue, seq0 + r + 1, points, t0 + 60) for _ in range(sessions))
        total += sum(await asyncio.gather(*runs))
    return total / (time.perf_counter() - start)


async def _fill_week(db: Database, chart: Device, end: float) -> None:
    step_ts = 10.0
    per_batch = 1000  # samples per metric per batch (≈ 2.8 h)
    ts0 = end - WEEK_S
    n = int(WEEK_S / step_ts)
    for seq, i in enumerate(range(0, n, per_batch), start=1):
        points = [
            (m, ts0 + k * step_ts, 45.0 + (k % 360) / 36.0 + j)
            for k in range(i, min(n, i + per_batch))
            for j, m in enumerate(CHART_METRICS)
        ]
        async with db.session() as s:
            await ingest_batch(s, chart, seq, points, now=end)


async def _chart_ms(db: Database, chart: Device, end: float) -> float:
    times = []
    for _ in range(20):
        t = time.perf_counter()
        async with db.session() as s:
            series = await device_series(s, chart, "cpu_temp_c", end - 86400, end, "1m")
        times.append((time.perf_counter() - t) * 1000)
        assert len(series.points) >= 1440, len(series.points)
    return statistics.median(times)


async def _bench(url: str, sessions: int = 0) -> tuple[float, float, float, float]:
    """(points/s one batch a transaction, points/s grouped, chart ms, points/s with
    ``sessions`` sessions at once, each one batch a transaction; 0 when not asked)."""
    db = Database(url)
    try:
        devices, chart = await _setup(db)
        now = time.time()
        rate = await _ingest_rate(db, devices, now - 3600)
        grouped = await _ingest_rate(db, devices, now - 3600, group=GROUP, seq0=ROUNDS)
        await _fill_week(db, chart, now)
        chart_ms = await _chart_ms(db, chart, now)  # before the pool holds many connections
        together = 0.0
        if sessions:
            together = await _concurrent_rate(db, devices, now - 3600, sessions, 2 * ROUNDS)
        return rate, grouped, chart_ms, together
    finally:
        await db.dispose()


def run() -> list[Figure]:
    figures = []
    with tempfile.TemporaryDirectory() as tmp:
        rate, grouped, ms, _ = asyncio.run(
            _bench(f"sqlite+aiosqlite:///{Path(tmp) / 'central.db'}")
        )
    figures += [
        Figure(
            "central.telemetry_ingest_sqlite_pts_s", rate, "points/s (FULL, 1 batch/commit)", ""
        ),
        Figure(
            "central.telemetry_ingest_sqlite_group_pts_s",
            grouped,
            f"points/s (FULL, {GROUP} batches/commit as the channel's group commit)",
            ">= 100000",
        ),
        Figure("central.telemetry_chart_24h_1m_sqlite_ms", ms, "ms (median of 20)", "< 50"),
    ]
    name = f"wrale_bench_{os.getpid()}"
    with scratch_pg(name) as url:
        if url is None:
            return figures
        rate, grouped, ms, together = asyncio.run(_bench(url, SESSIONS))
    figures += [
        Figure(
            "central.telemetry_ingest_pg_pts_s",
            together,
            f"points/s ({SESSIONS} device sessions at once, 1 batch/commit each: the channel)",
            ">= 100000",
        ),
        Figure(
            "central.telemetry_ingest_pg_serial_pts_s", rate, "points/s (1 batch/commit, alone)", ""
        ),
        Figure(
            "central.telemetry_ingest_pg_group_pts_s", grouped, f"points/s ({GROUP}/commit)", ""
        ),
        Figure("central.telemetry_chart_24h_1m_pg_ms", ms, "ms (median of 20)", "< 50"),
    ]
    return figures


if __name__ == "__main__":
    for f in run():
        print(f.line())
