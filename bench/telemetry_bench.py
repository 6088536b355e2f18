"""Telemetry: ingestion rate through ``ingest_batch`` (1,000 devices × batches of 100 points,
one transaction per batch as a lone device's frames are committed before acknowledging, and
``GROUP`` batches of different devices per transaction as the device channel's group commit
does on SQLite — the central's SQLite syncs every commit, ``synchronous=FULL``) and the
latency of a 24 h chart at a 1-minute step of one device holding 7 days of data at one
point per 10 s for 3 metrics (median of 20 queries), on SQLite (temp file, WAL) and on
PostgreSQL (a temporary database on 127.0.0.1:5432, skipped with a note if unreachable;
its telemetry tables partitioned by day, the partitions made as the central's duty does).

Why ``central.telemetry_ingest_pg_pts_s`` is the device channel itself: ``DEVICES`` boards
with open sessions (``DeviceSession``, as their sockets have) each hand a batch to
``FrameSession.handle`` at once, which stores it as the channel does and acknowledges it:
the device's row, the batch, ``last_seen`` every few seconds a board (real clock: due for
every board in the measured run's first round, not in its second), the Ack.
On PostgreSQL that is the channel's group commit (``channel.group_commit``: several
transactions at once, each storing many devices' batches in one statement) when the
channel context turns it on, else each session committing its own batch; the unit says
which. The figures beside it: ``SESSIONS`` sessions at once calling ``ingest_batch``
alone, one batch per commit each (``..._pg_sessions_pts_s``: the storage path without the
channel), one batch per commit in one session (``..._pg_serial_pts_s``: bounded by the
disk's flush, about 0.6-0.9 ms here, ~1,100 commits/s before any work), and ``GROUP``
batches per commit (``..._pg_group_pts_s``).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from common import Figure, scratch_pg
from wrale.fleet.brain.bus import EventBus
from wrale.fleet.brain.channel.context import ChannelContext
from wrale.fleet.brain.channel.session import DeviceSession
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Base, Device, Tenant
from wrale.fleet.brain.services import enrollment
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.fleet.brain.services.telemetry import ingest_batch
from wrale.fleet.brain.services.telemetry_partitions import ensure_partitions
from wrale.fleet.brain.services.telemetry_query import device_series
from wrale.fleet.sync.protocol import Hello, Message, TelemetryBatch
from wrale.shared.central_settings import CentralSettings

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


async def _open_sessions(db: Database, tmp: str) -> list[DeviceSession]:
    """``DEVICES`` enrolled boards, each with an open device-channel session (as its
    socket's), on a channel context as ``wrale central`` makes it."""
    async with db.session() as s:
        tenant = Tenant(name="bench-channel")
        s.add(tenant)
        await s.flush()
        admin = Principal(tenant.id, Role.ADMIN, "user", "a" * 32, "bench")
        specs = [{"name": f"c{i}"} for i in range(DEVICES)]
        made = await enrollment.enroll_bulk(s, admin, specs)
    settings = CentralSettings(data_dir=Path(tmp), secret_key="bench-" + "k" * 32, dev=True)
    ctx = ChannelContext(db, EventBus(), settings)

    async def discard(_msg: Message) -> None:
        return None

    async def open_one(device_id: str, secret: str) -> DeviceSession:
        session = DeviceSession(ctx, discard)
        opened = await session.open(Hello(device_id=device_id, agent_version="9.9.1"), secret)
        assert session.open_, opened
        return session

    sessions: list[DeviceSession] = []
    for i in range(0, len(made), 100):  # a connect storm, a hundred at a time
        chunk = made[i : i + 100]
        sessions += await asyncio.gather(*(open_one(e.device.id, e.secret) for e in chunk))
    return sessions


async def _channel_rate(sessions: list[DeviceSession], t0: float, seq0: int) -> float:
    """Points per second through the device channel: every session hands a batch to
    ``FrameSession.handle`` at once (each board's socket), which stores it as the channel
    does (PostgreSQL: grouped, ``channel.group_commit``) and acknowledges it."""
    stored: list[int] = []
    ctx = sessions[0].ctx
    ctx.on_points = stored.append
    start = time.perf_counter()
    for r in range(ROUNDS):
        base = t0 + (seq0 + r) * 10
        points = [(m, base + k, 40.0 + k * 0.1) for k in range(10) for m in METRICS]
        batch = TelemetryBatch(seq=seq0 + r + 1, prev=seq0 + r, points=points)
        await asyncio.gather(*(s.handle([batch]) for s in sessions))
    rate = sum(stored) / (time.perf_counter() - start)
    assert sum(stored) == ROUNDS * len(sessions) * BATCH, sum(stored)  # none lost or refused
    return rate


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


async def _bench(url: str, sessions: int = 0) -> tuple[float, float, float, float, float, str]:
    """(points/s one batch a transaction, points/s grouped, chart ms, points/s with
    ``sessions`` sessions at once, each one batch a transaction, points/s through the
    device channel and how it commits; 0 and "" when ``sessions`` is 0)."""
    db = Database(url)
    try:
        devices, chart = await _setup(db)
        now = time.time()
        rate = await _ingest_rate(db, devices, now - 3600)
        grouped = await _ingest_rate(db, devices, now - 3600, group=GROUP, seq0=ROUNDS)
        await _fill_week(db, chart, now)
        chart_ms = await _chart_ms(db, chart, now)  # before the pool holds many connections
        together, channel, how = 0.0, 0.0, ""
        if sessions:
            together = await _concurrent_rate(db, devices, now - 3600, sessions, 2 * ROUNDS)
            with tempfile.TemporaryDirectory() as tmp:
                boards = await _open_sessions(db, tmp)
            committer = boards[0].ctx.committer()
            how = "each session commits alone"
            if committer is not None:
                how = f"group commit, {committer.committers} transactions at once"
            await _channel_rate(boards, now - 3600, 0)  # warm-up: the pool, last_seen writes
            # every board's last_seen due again (not timed): the measured run's first round
            # writes them all, whatever the opens and the warm-up took
            await asyncio.sleep(boards[0].ctx.last_seen_every_s)
            channel = await _channel_rate(boards, now - 3600, ROUNDS)
        return rate, grouped, chart_ms, together, channel, how
    finally:
        await db.dispose()


def run() -> list[Figure]:
    figures = []
    with tempfile.TemporaryDirectory() as tmp:
        rate, grouped, ms, *_ = asyncio.run(
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
        rate, grouped, ms, together, channel, how = asyncio.run(_bench(url, SESSIONS))
    figures += [
        Figure(
            "central.telemetry_ingest_pg_pts_s",
            channel,
            f"points/s (the device channel, {DEVICES} boards' sessions at once: {how})",
            ">= 100000",
        ),
        Figure(
            "central.telemetry_ingest_pg_sessions_pts_s",
            together,
            f"points/s ({SESSIONS} sessions at once, ingest_batch alone, 1 batch/commit each)",
            "",
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
