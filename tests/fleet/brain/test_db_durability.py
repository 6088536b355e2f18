"""The central's SQLite acknowledges only what survives a power cut: every connection runs
``synchronous=FULL`` in WAL mode, so a committed transaction (and the Ack that follows it)
is on disk before the commit returns."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from wrale.fleet.brain.db import Database


async def test_every_sqlite_connection_commits_durably(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'central.db'}")
    try:
        # two connections at once: the pragma is set per connection, not once per file
        async with db.engine.connect() as a, db.engine.connect() as b:
            for conn in (a, b):
                assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
                # 2 = FULL: the WAL is synced at every commit (1 = NORMAL loses the
                # last commits on power loss)
                assert (await conn.execute(text("PRAGMA synchronous"))).scalar() == 2
    finally:
        await db.dispose()
