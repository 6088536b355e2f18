"""The central database: an async engine on SQLite (WAL) or PostgreSQL, and sessions.

Everything the central server knows lives here, so several replicas can share one
PostgreSQL; nothing another replica needs is kept in process memory.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from wrale.fleet.brain import sqlite_inline
from wrale.fleet.brain.turns import TurnLock


class DatabaseBusyError(Exception):
    """The database was too busy to serve this in time (``Database.serial_session``)."""


class Database:
    """One engine and its session factory; ``session()`` commits or rolls back."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo}
        path = ""
        if self.is_sqlite:
            path = url.split(":///", 1)[-1]
            kwargs["connect_args"] = {"timeout": 30}
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                # readers: one hand-off to their thread a statement (``sqlite_inline``)
                kwargs["async_creator"] = sqlite_inline.creator(
                    path, sqlite_inline.ReaderConnection, 30
                )
            # sessions always end in commit or rollback, so the pool need not roll back again
            kwargs["pool_reset_on_return"] = None
        else:
            kwargs.update(pool_size=10, max_overflow=20)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            event.listen(self.engine.sync_engine, "checkin", _returned)
            event.listen(self.engine.sync_engine, "checkout", _ping_if_idle)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # SQLite's writer turns: a connection whose statements run on the loop's thread
        # (``sqlite_inline``); re-entrant turns may need a second one
        self.writer: AsyncEngine = self.engine
        self.writer_sessions = self.sessions
        if self.is_sqlite and path and path != ":memory:":
            self.writer = create_async_engine(
                url,
                echo=echo,
                async_creator=sqlite_inline.creator(path),
                pool_size=1,
                max_overflow=2,
                pool_reset_on_return=None,
            )
            event.listen(self.writer.sync_engine, "connect", _sqlite_pragmas)
            event.listen(self.writer.sync_engine, "connect", sqlite_inline.no_busy_wait)
            self.writer_sessions = async_sessionmaker(self.writer, expire_on_commit=False)
        self._lock: TurnLock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self._lock_owner: asyncio.Task[Any] | None = None

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A unit of work: committed when the block ends, rolled back if it raises."""
        async with _unit(self.sessions) as session:
            yield session

    @asynccontextmanager
    async def _writer_session(self) -> AsyncIterator[AsyncSession]:
        async with _unit(self.writer_sessions) as session:
            yield session

    @asynccontextmanager
    async def serial_session(
        self, *, max_wait_s: float | None = None, urgent: bool = False
    ) -> AsyncIterator[AsyncSession]:
        """``session()``, but on SQLite one at a time per process (PostgreSQL: no lock).

        SQLite has one writer: many concurrent write transactions each hold a pooled
        connection while the file lock busy-waits, starving the pool (and a busy-waiting
        writer polls with sleeps up to 100 ms, losing the race to the next queued turn).
        Writers (the device channel, the API's changes) queue here on a ``TurnLock``
        instead, holding no connection while they wait; ``urgent`` turns (commands and
        their results, operators' changes) go before telemetry's. Re-entrant within one
        task. ``DatabaseBusyError`` when the turn came after more than ``max_wait_s`` (the
        caller's peer may be gone)."""
        if not self.is_sqlite:
            async with self.session() as s:
                yield s
            return
        me = asyncio.current_task()
        lock = self._serial_lock()
        if me is not None and self._lock_owner is me:
            async with self._writer_session() as s:
                yield s
            return
        queued = time.monotonic()
        await lock.acquire(urgent=urgent)
        try:
            if max_wait_s is not None and time.monotonic() - queued > max_wait_s:
                raise DatabaseBusyError(f"waited over {max_wait_s:g} s for the database")
            self._lock_owner = me
            try:
                async with self._writer_session() as s:
                    yield s
            finally:
                self._lock_owner = None
        finally:
            lock.release()

    def urgent_waiting(self) -> bool:
        """Whether an urgent writer turn waits (SQLite): a long turn may end early."""
        return self._lock is not None and self._lock.waiting()[0] > 0

    def _serial_lock(self) -> TurnLock:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop, self._lock_owner = TurnLock(), loop, None
        return self._lock

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:  # any failure means "not reachable"
            return False
        return True

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.writer is not self.engine:
            await self.writer.dispose()


@asynccontextmanager
async def _unit(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session committed when the block ends, rolled back if it raises."""
    async with sessions() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


# PostgreSQL: a pooled connection idle longer than this is pinged before it is handed out
# (a restart of the server or a dropped link leaves it dead). Not every checkout, as
# ``pool_pre_ping`` would: that round trip held telemetry ingest at 62-65k points/s against
# 80-82k without it (bench/telemetry_bench.py, 8 sessions), and
# a connection back in the pool within the second was alive a moment ago (if the server
# went away meanwhile, the statement fails, SQLAlchemy drops the whole pool, and the channel's
# device resends the batch it did not see acknowledged).
IDLE_PING_S = 1.0


def _returned(_dbapi_conn: Any, record: Any) -> None:
    record.info["wrale_returned_at"] = time.monotonic()


def _ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
    returned = record.info.get("wrale_returned_at")
    if returned is None or time.monotonic() - returned < IDLE_PING_S:
        return  # new, or in use a moment ago
    try:
        dbapi_conn.ping()
    except Exception as exc:  # the pool drops it and hands out another (a new one)
        raise DisconnectionError(f"a pooled connection was dead: {exc}") from exc


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # FULL: the WAL is synced at every commit, so what the channel acks survives a power
    # cut (NORMAL may lose the last commits). Group commit keeps the cost per batch small.
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()
