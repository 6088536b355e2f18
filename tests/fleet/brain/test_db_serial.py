"""``Database.serial_session``: on SQLite, one at a time per process (queued on an asyncio
lock, re-entrant in one task, refused with ``DatabaseBusyError`` when the turn came too
late); on PostgreSQL an ordinary session."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.fleet.brain.channel_kit import make_kit
from wrale.fleet.brain.db import Database, DatabaseBusyError
from wrale.fleet.brain.models import Tenant


async def tenants(db: Database) -> int:
    async with db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(Tenant)) or 0)


async def test_serial_sessions_queue_and_refuse_late_turns(database: Database) -> None:
    order: list[str] = []
    release = asyncio.Event()
    entered = asyncio.Event()

    async def first() -> None:
        async with database.serial_session() as s:
            order.append("first")
            s.add(Tenant(name="serial-1"))
            async with database.serial_session() as inner:  # re-entrant in one task
                await inner.scalar(select(func.count()).select_from(Tenant))
            entered.set()
            await release.wait()

    async def late() -> str:
        try:
            async with database.serial_session(max_wait_s=0.0) as s:
                s.add(Tenant(name="serial-2"))
        except DatabaseBusyError:
            return "refused"
        return "served"

    holder = asyncio.create_task(first())
    await entered.wait()
    waiter = asyncio.create_task(late())
    await asyncio.sleep(0)  # the waiter queues behind the holder
    release.set()
    await holder
    outcome = await waiter
    assert order == ["first"]
    if database.is_sqlite:
        assert outcome == "refused"  # its turn came after more than 0 s
        assert await tenants(database) == 1
    else:
        assert outcome == "served"  # PostgreSQL: no process lock
        assert await tenants(database) == 2


async def test_open_refused_with_retry_when_busy(database: Database, tmp_path: Path) -> None:
    """A Hello whose turn comes too late is told to come back (Goodbye retry), not opened."""
    kit = await make_kit(database, tmp_path)
    ((dev, secret),) = await kit.devices("busy-1")
    if not database.is_sqlite:
        pytest.skip("the process lock exists on SQLite only")
    release = asyncio.Event()
    entered = asyncio.Event()

    async def hold() -> None:
        async with database.serial_session():
            entered.set()
            await release.wait()

    holder = asyncio.create_task(hold())
    await entered.wait()
    ctx = kit.ctx()
    ctx.open_max_wait_s = 0.0
    opening = asyncio.create_task(kit.connect(dev, secret, ctx=ctx))
    await asyncio.sleep(0)
    release.set()
    await holder
    _, _, first = await opening
    assert first.T == "goodbye"
    assert (first.code, first.retry) == ("shutdown", True)  # type: ignore[attr-defined]
    # an unhurried Hello opens
    _, _, again = await kit.connect(dev, secret)
    assert again.T == "welcome"
