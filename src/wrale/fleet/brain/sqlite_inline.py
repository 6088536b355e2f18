"""SQLite's writer connection, its statements run on the event loop's own thread.

aiosqlite runs every call on a thread of its own and hands the result back through the
event loop: each statement costs a wait for the loop's next turn. A writer transaction of
hundreds of statements (a group commit of many devices' frames, a connect storm's session
openings) then takes as many loop turns, and with a thousand sockets busy a turn takes
milliseconds: the transaction crawls while the loop and the thread both look idle, and
everyone waiting for the single writer waits with it. SQLite's own work per statement is
microseconds, so the writer's statements run inline instead (one thread: the loop's; the
connection is made with ``check_same_thread=False`` because aiosqlite opens it on its
thread). A statement known to be long (retention's deletes) is sent to the thread inside
``off_loop()`` so the loop keeps serving meanwhile.

Inline, the connection never waits for SQLite's file lock (its busy timeout is 0): a lock
held by another connection — a write outside a writer turn — would be held by a transaction
that needs the very loop the wait would block. A statement refused as busy is run again on
the thread, which may wait the usual ``BUSY_TIMEOUT_MS`` (nothing was done by the refused
attempt: the lock is taken before anything is written).
"""

from __future__ import annotations

import contextlib
import contextvars
import sqlite3
import threading
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import aiosqlite

_OFF_LOOP: contextvars.ContextVar[bool] = contextvars.ContextVar("wrale_off_loop", default=False)
BUSY_TIMEOUT_MS = 30_000  # how long a statement on the thread waits for the file lock
SQLITE_BUSY = 5


class InlineConnection(aiosqlite.Connection):
    """aiosqlite's connection whose calls run on the caller's thread (see the module).

    A call sent to the thread may still run there after its caller stopped waiting (a task
    cancelled in a busy wait, e.g. at shutdown): ``_using`` is held while either thread
    uses the connection, and an inline call that finds it taken goes to the thread too,
    behind that call, instead of using the connection from two threads at once (which
    crashed the process when the pool then closed the connection inline)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._using = threading.Lock()

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        if _OFF_LOOP.get() or not self._using.acquire(blocking=False):
            return await self._on_thread(partial(fn, *args, **kwargs))
        try:
            return fn(*args, **kwargs)
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", 0) & 0xFF != SQLITE_BUSY:
                raise
        finally:
            self._using.release()
        return await self._on_thread(partial(fn, *args, **kwargs))

    async def _on_thread(self, call: Callable[[], Any]) -> Any:
        run = super()._execute
        return await run(_patiently, self._connection, call, self._using)  # type: ignore[no-untyped-call]


def _patiently(conn: sqlite3.Connection, call: Callable[[], Any], using: threading.Lock) -> Any:
    """``call`` waiting up to ``BUSY_TIMEOUT_MS`` for the file lock (on the thread)."""
    with using:
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        try:
            return call()
        finally:
            with contextlib.suppress(sqlite3.ProgrammingError):  # the call closed it
                conn.execute("PRAGMA busy_timeout=0")


@contextlib.contextmanager
def off_loop() -> Iterator[None]:
    """Statements of the writer connection in this block run on its thread (long ones)."""
    token = _OFF_LOOP.set(True)
    try:
        yield
    finally:
        _OFF_LOOP.reset(token)


def creator(
    path: str, kind: type[aiosqlite.Connection] = InlineConnection, timeout_s: float = 0
) -> Callable[[], Any]:
    """``create_async_engine(async_creator=…)`` for a connection of ``kind`` to ``path``
    (the writer's ``InlineConnection``, which never waits for the file lock, by default)."""

    def connect() -> aiosqlite.Connection:
        conn = kind(
            partial(sqlite3.connect, path, timeout=timeout_s, check_same_thread=False),
            iter_chunk_size=64,
        )
        conn._thread.daemon = True  # as SQLAlchemy makes aiosqlite's own
        return conn

    return connect


def no_busy_wait(dbapi_conn: Any, _record: Any) -> None:
    """The writer's ``connect`` listener, after the pragmas: never wait inline."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=0")
    cur.close()


# ----------------------------------------------------------------------------- readers
#
# Readers stay on their threads (a long read must not hold the loop), but through
# aiosqlite a statement was four hand-offs: make the cursor, execute, fetch the rows, close
# the cursor — each a wait for the loop's next turn, which right after a connect storm is
# tens of milliseconds (an API read of three statements took ~150-250 ms). Here making
# and closing a cursor run inline (no I/O), and a statement's rows are fetched on the
# thread with its execution: one hand-off a statement.


class OneHopCursor(aiosqlite.Cursor):
    """aiosqlite's cursor, its statement executed and fetched in one call on the thread."""

    _rows: list[Any] | None = None

    async def execute(self, sql: str, parameters: Any = None) -> OneHopCursor:
        args = () if parameters is None else parameters
        run = self._execute  # aiosqlite's, untyped
        self._rows = await run(_run, self._cursor, sql, args)  # type: ignore[no-untyped-call]
        return self

    async def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, None
        if rows is None:
            return list(await super().fetchall())
        return rows

    async def fetchone(self) -> Any:
        if self._rows is None:
            return await super().fetchone()
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        if self._rows is None:
            return list(await super().fetchmany(size))
        n = self.arraysize if size is None else size
        out, self._rows = self._rows[:n], self._rows[n:]
        return out

    async def close(self) -> None:
        self._rows = None
        self._cursor.close()


def _run(cursor: sqlite3.Cursor, sql: str, parameters: Any) -> list[Any] | None:
    cursor.execute(sql, parameters)
    return cursor.fetchall() if cursor.description else None


class ReaderConnection(aiosqlite.Connection):
    """aiosqlite's connection whose cursors are ``OneHopCursor`` (made inline); the commit
    or rollback of a unit that only read (no transaction open: Python's sqlite3 begins one
    before a write) has nothing to do and no hand-off."""

    async def commit(self) -> None:
        if self._conn.in_transaction:
            await super().commit()

    async def rollback(self) -> None:
        if self._conn.in_transaction:
            await super().rollback()

    @aiosqlite.context.contextmanager
    async def cursor(self) -> aiosqlite.Cursor:
        return OneHopCursor(self, self._conn.cursor())
