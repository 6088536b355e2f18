"""SQLite's readers (``sqlite_inline.ReaderConnection``): a statement is one hand-off to the
connection's thread (aiosqlite made it four: cursor, execute, fetch, close), its rows and
counts are what SQLAlchemy expects, and statements still run on the thread, not the loop."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import func, select, text, update

from tests.conftest import sqlite_database
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Lease
from wrale.fleet.brain.sqlite_inline import ReaderConnection


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    async with sqlite_database(tmp_path) as d:
        async with d.serial_session() as s:
            for i in range(5):
                s.add(Lease(name=f"job-{i}", holder="nobody", expires_at=i, acquired_at=0.0))
        yield d


@pytest.fixture
def hand_offs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The calls queued to a reader connection's thread, by name."""
    seen: list[str] = []
    queue = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(self, ReaderConnection):
            seen.append(getattr(fn, "__name__", repr(fn)))
        return await queue(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return seen


async def test_a_read_is_one_hand_off_a_statement(db: Database, hand_offs: list[str]) -> None:
    async with db.session() as s:
        await s.execute(text("SELECT 1"))  # the pooled connection's first use
        hand_offs.clear()
        names = (await s.scalars(select(Lease.name).order_by(Lease.name))).all()
        count = await s.scalar(select(func.count()).select_from(Lease))
        assert hand_offs == ["_run", "_run"]
    assert hand_offs == ["_run", "_run"]  # the unit only read: its commit had nothing to do
    assert names == [f"job-{i}" for i in range(5)]
    assert count == 5


async def test_rows_counts_and_writes_through_a_reader(db: Database) -> None:
    async with db.session() as s:
        result = await s.execute(update(Lease).where(Lease.expires_at >= 3).values(holder="r"))
        assert result.rowcount == 2  # type: ignore[attr-defined]
        none = await s.scalar(select(Lease.name).where(Lease.name == "missing"))
        assert none is None
    async with db.session() as s:  # committed: another connection sees the write
        held = (await s.scalars(select(Lease.name).where(Lease.holder == "r"))).all()
    assert sorted(held) == ["job-3", "job-4"]


async def test_a_failed_unit_rolls_back_its_write(db: Database) -> None:
    async def failing() -> None:
        async with db.session() as s:
            await s.execute(update(Lease).values(holder="lost"))
            raise RuntimeError("the request failed")

    with pytest.raises(RuntimeError):
        await failing()
    async with db.session() as s:
        lost = await s.scalar(select(func.count()).where(Lease.holder == "lost"))
    assert lost == 0


async def test_the_statement_runs_on_the_connections_thread(db: Database) -> None:
    async with db.session() as s:
        conn = await s.connection()
        driver = (await conn.get_raw_connection()).driver_connection
        assert isinstance(driver, ReaderConnection)
        ident = await driver._execute(threading.get_ident)  # type: ignore[no-untyped-call]
    assert ident != threading.get_ident()
