"""A connect storm: sessions opening together share the channel's group commit (one
transaction for many, on both databases when forced), a refused or failing one does not
fail the others, and an open that waited past its bound is told to come back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import event, select

from tests.fleet.brain.channel_kit import Kit, make_kit
from wrale.fleet.brain.channel import group_commit
from wrale.fleet.brain.db import Database, DatabaseBusyError
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.channel import ChannelSession
from wrale.fleet.sync.protocol import Command, Goodbye, Welcome


@pytest.fixture
async def kit(database: Database, tmp_path: Path) -> Kit:
    return await make_kit(database, tmp_path)


def _commits(db: Database) -> list[int]:
    seen: list[int] = []
    event.listen(db.engine.sync_engine, "commit", lambda _conn: seen.append(1))
    return seen


async def test_sessions_opening_together_share_transactions(kit: Kit) -> None:
    ctx = kit.ctx()
    ctx.group_commit = True
    ctx.open_max_wait_s = 120.0  # about sharing, not speed: a loaded machine is slow
    devs = await kit.devices(*(f"storm-{i}" for i in range(40)))
    commits = _commits(kit.db)
    intruder = (devs[0][0], "not-the-secret")
    got = await asyncio.gather(
        *(kit.connect(d, s, ctx=ctx) for d, s in [*devs, intruder]),
    )
    firsts = [first for _, _, first in got]
    assert all(isinstance(f, Welcome) for f in firsts[:-1]), [
        f for f in firsts if not isinstance(f, Welcome)
    ]
    assert isinstance(firsts[-1], Goodbye)
    assert firsts[-1].code == "unauthorized"
    # 40 opens (+ the refusal) in a handful of transactions, not one each
    per_txn = group_commit.GROUP_POINTS_MAX // group_commit.JOB_COST
    assert len(commits) <= -(-41 // per_txn) + 2, len(commits)
    async with kit.db.session() as s:
        online = await s.scalars(select(Device.status).where(Device.id.in_([d for d, _ in devs])))
        rows = await s.scalars(
            select(ChannelSession.device_id).where(ChannelSession.closed_at.is_(None))
        )
        assert set(online) == {"online"}
        assert set(rows) >= {d for d, _ in devs}


async def test_a_failing_open_is_redone_alone_and_fails_only_itself(kit: Kit) -> None:
    ctx = kit.ctx()
    ctx.group_commit = True
    devs = await kit.devices("fine-1", "fine-2")
    committer = ctx.committer()
    assert committer is not None

    async def broken(_s: object) -> None:
        raise RuntimeError("this job's own failure")

    results = await asyncio.gather(
        kit.connect(*devs[0], ctx=ctx),
        committer.run(broken),
        kit.connect(*devs[1], ctx=ctx),
        return_exceptions=True,
    )
    assert isinstance(results[1], RuntimeError)
    for r in (results[0], results[2]):
        assert not isinstance(r, BaseException), r
        assert isinstance(r[2], Welcome)


async def test_an_open_that_waited_too_long_is_told_to_come_back(kit: Kit) -> None:
    ctx = kit.ctx()
    ctx.group_commit = True
    ctx.open_max_wait_s = 0.05
    ((dev, secret),) = await kit.devices("late-1")
    committer = ctx.committer()
    assert committer is not None
    committer.committers = 1  # one transaction at a time (PostgreSQL's default: several)

    started = asyncio.Event()

    async def slow(_s: object) -> None:
        started.set()
        await asyncio.sleep(0.3)  # a long turn ahead of the open

    ahead = asyncio.create_task(committer.run(slow))
    await started.wait()  # its transaction has begun, alone
    _, _, first = await kit.connect(dev, secret, ctx=ctx)
    await ahead
    assert isinstance(first, Goodbye)
    assert (first.code, first.retry) == ("shutdown", True)
    with pytest.raises(DatabaseBusyError):
        await committer.run(lambda s: asyncio.sleep(0), max_wait_s=-1)


async def test_delivery_on_connect_shares_the_group_commit_and_sends_commands(
    kit: Kit,
) -> None:
    from wrale.fleet.brain.services import commands

    ctx = kit.ctx()
    ctx.group_commit = True
    ((dev, secret),) = await kit.devices("deliver-1")
    async with kit.db.session() as s:
        device = await s.get(Device, dev)
        assert device is not None
        queued = await commands.create_command(s, kit.admin, device.id, "arm", {"level": "low"})
    session, wire, first = await kit.connect(dev, secret, ctx=ctx)
    assert isinstance(first, Welcome)
    sent = await session.deliver(urgent=False)
    msgs = wire.take()
    assert sent == len(msgs) >= 1
    assert any(isinstance(m, Command) and m.id == queued.id for m in msgs)
    async with kit.db.session() as s:
        again = await commands.due_for(s, device, kit.clock.now())
    assert [c.id for c in again] == []  # marked sent in the shared transaction
