"""SQLite's writer turns run their statements on the event loop's thread (no wait for
the loop's next turn per statement), long ones go to the connection's thread inside
``off_loop()``, and a write lock held by a connection outside the turns never blocks the
loop: the refused statement waits on the thread instead."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import sqlite_database
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Lease
from wrale.fleet.brain.sqlite_inline import off_loop


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    async with sqlite_database(tmp_path) as d:
        async with d.serial_session() as s:
            s.add(Lease(name="job", holder="nobody", expires_at=0.0, acquired_at=0.0))
        yield d


async def _thread_of(s: AsyncSession) -> int:
    conn = await s.connection()
    driver = (await conn.get_raw_connection()).driver_connection
    ident: int = await driver._execute(threading.get_ident)  # type: ignore[union-attr]
    return ident


async def test_a_writer_turn_runs_on_the_loop_thread_and_a_read_does_not(db: Database) -> None:
    here = threading.get_ident()
    async with db.serial_session() as s:
        assert await _thread_of(s) == here
        with off_loop():
            assert await _thread_of(s) != here
        assert await _thread_of(s) == here
    async with db.session() as s:
        assert await _thread_of(s) != here


async def test_a_lock_held_outside_the_turns_does_not_stop_the_loop(db: Database) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async def turn() -> None:
        async with db.serial_session() as s:
            await s.execute(update(Lease).values(expires_at=Lease.expires_at + 1))

    tick = asyncio.create_task(ticker())
    try:
        async with db.session() as outside:  # a write outside the turns holds the file lock
            await outside.execute(update(Lease).values(holder="outside"))
            waiting = asyncio.create_task(turn())
            await asyncio.sleep(0.5)
            assert not waiting.done()
            assert ticks >= 20  # the loop went on while the turn waited for the lock
        await asyncio.wait_for(waiting, 10)
    finally:
        tick.cancel()
    async with db.session() as s:
        row = (await s.execute(select(Lease.holder, Lease.expires_at))).one()
    assert tuple(row) == ("outside", 1.0)


async def test_a_call_left_on_the_thread_keeps_the_connection_to_itself(db: Database) -> None:
    """A turn cancelled while its refused statement waits on the thread (a shutdown): the
    statement goes on there, and the pool's closing of the connection, on the loop's
    thread, waits behind it instead of using the connection from two threads at once
    (which crashed the process: a segmentation fault in the test run)."""
    async with db.session() as outside:  # the file lock, held outside the turns
        await outside.execute(update(Lease).values(holder="outside"))
        s = db.serial_session()
        session = await s.__aenter__()
        waiting = asyncio.create_task(
            session.execute(update(Lease).values(expires_at=Lease.expires_at + 1))
        )
        await asyncio.sleep(0.3)  # refused inline: it waits on the thread now
        waiting.cancel()  # its cleanup (the pool closing the connection) waits behind it

        async def let_go() -> None:
            await asyncio.sleep(0.3)
            await outside.rollback()  # the lock is let go: the thread's statement ends

        releasing = asyncio.create_task(let_go())
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(waiting), 10)
        await releasing
        with contextlib.suppress(Exception):  # the session's transaction is gone with it
            await s.__aexit__(None, None, None)
    async with db.serial_session() as again:  # the writer works on a fresh connection
        await again.execute(update(Lease).values(holder="after"))
    async with db.session() as check:
        assert await check.scalar(select(Lease.holder)) == "after"
