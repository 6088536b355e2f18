"""Devices' telemetry through the channel's group commit, on both databases: batches of
many devices share one transaction (PostgreSQL: and one statement), each device gets the
Ack of what is stored, redelivery stores nothing twice, a gap stores nothing, and a
deleted device's frames fail only its own session."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import delete, event, func, select, update

from tests.fleet.brain.channel_kit import Kit, Wire, make_kit
from wrale.fleet.brain.channel.checks import SessionEndedError
from wrale.fleet.brain.channel.session import DeviceSession
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.channel import ChannelSession
from wrale.fleet.brain.models.telemetry import TelemetryRaw
from wrale.fleet.sync.protocol import Ack, TelemetryBatch, Welcome


@pytest.fixture
async def kit(database: Database, tmp_path: Path) -> Kit:
    return await make_kit(database, tmp_path)


def _batch(kit: Kit, seq: int, prev: int) -> TelemetryBatch:
    t = kit.clock.now() - 600 + seq * 10  # each batch its own timestamps
    pts = [(m, t + k, 40.0 + k) for k in range(5) for m in ("cpu_temp_c", "power_w")]
    return TelemetryBatch(seq=seq, prev=prev, points=pts)


async def _raw(db: Database) -> int:
    async with db.session() as s:
        return int((await s.execute(select(func.count()).select_from(TelemetryRaw))).scalar_one())


async def _open(kit: Kit, n: int) -> list[tuple[DeviceSession, Wire]]:
    ctx = kit.ctx()
    ctx.group_commit = True
    devs = await kit.devices(*(f"gc-{i}" for i in range(n)))
    out = []
    for d, secret in devs:
        session, wire, first = await kit.connect(d, secret, ctx=ctx)
        assert isinstance(first, Welcome), first
        wire.take()
        out.append((session, wire))
    return out


def _acks(wire: Wire) -> list[tuple[int, bool]]:
    return [(m.seq, m.gap) for m in wire.take() if isinstance(m, Ack)]


async def test_many_devices_batches_share_a_transaction_and_are_acked(kit: Kit) -> None:
    sessions = await _open(kit, 6)
    commits: list[int] = []
    writes: list[str] = []
    engine = kit.db.writer.sync_engine
    event.listen(engine, "commit", lambda _conn: commits.append(1))
    event.listen(
        engine,
        "before_cursor_execute",
        lambda _c, _cur, sql, *_a: writes.append(sql) if "telemetry_raw" in sql else None,
    )
    await asyncio.gather(*(s.handle([_batch(kit, 1, 0)]) for s, _ in sessions))
    assert len(commits) == 1
    if not kit.db.is_sqlite:
        assert len(writes) == 1  # one statement for the six devices
    assert [_acks(w) for _, w in sessions] == [[(1, False)]] * 6
    assert await _raw(kit.db) == 60
    # redelivered, the next batch, and one after a missing batch (a gap), all together
    await asyncio.gather(
        sessions[0][0].handle([_batch(kit, 1, 0)]),
        sessions[1][0].handle([_batch(kit, 2, 1), _batch(kit, 3, 2)]),
        sessions[2][0].handle([_batch(kit, 5, 4)]),
    )
    assert _acks(sessions[0][1]) == [(1, False)]
    assert _acks(sessions[1][1]) == [(2, False), (3, False)]
    assert _acks(sessions[2][1]) == [(1, True)]
    assert await _raw(kit.db) == 60 + 20


async def test_a_deleted_devices_frames_fail_only_its_session(kit: Kit) -> None:
    sessions = await _open(kit, 3)
    async with kit.db.session() as s:
        await s.execute(delete(Device).where(Device.id == sessions[1][0].device_id))
    got = await asyncio.gather(
        *(s.handle([_batch(kit, 1, 0)]) for s, _ in sessions), return_exceptions=True
    )
    assert got[0] is None
    assert got[2] is None
    assert isinstance(got[1], SessionEndedError)
    assert _acks(sessions[0][1]) == [(1, False)]
    assert _acks(sessions[2][1]) == [(1, False)]
    assert await _raw(kit.db) == 20


async def test_the_boards_last_seen_is_written_once_a_transaction(kit: Kit) -> None:
    """Every board heard from in a shared transaction: its device's and its session's
    ``last_seen_at`` in one statement (SQLite: one ``executemany`` a table), and a board
    the offline job had given up on is back online."""
    sessions = await _open(kit, 5)
    back = sessions[0][0].device_id
    async with kit.db.session() as s:
        await s.execute(update(Device).where(Device.id == back).values(status="offline"))
    kit.clock.advance(30)  # every board's last_seen is due
    at = kit.clock.now()
    writes: list[str] = []
    event.listen(
        kit.db.writer.sync_engine,
        "before_cursor_execute",
        lambda _c, _cur, sql, *_a: writes.append(sql) if "SET last_seen_at" in sql else None,
    )
    await asyncio.gather(*(s.handle([_batch(kit, 1, 0)]) for s, _ in sessions))
    assert len(writes) == (2 if kit.db.is_sqlite else 1)
    ids = [s.device_id for s, _ in sessions]
    async with kit.db.session() as s:
        devices = (await s.execute(select(Device).where(Device.id.in_(ids)))).scalars().all()
        rows = await s.execute(
            select(ChannelSession.last_seen_at).where(
                ChannelSession.id.in_([s.id for s, _ in sessions])
            )
        )
        assert sorted(r for (r,) in rows) == [at] * 5
    assert {d.last_seen_at for d in devices} == {at}
    assert {d.id: d.status for d in devices}[back] == "online"
    assert all(_acks(w) == [(1, False)] for _, w in sessions)
