"""An empty central database (no schema) on SQLite or on a fresh PostgreSQL database, for
the tests that run the migrations themselves."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tests.conftest import PG_ADMIN_DSN, _pg_or_skip, _pg_url
from wrale.fleet.brain.db import Database


async def _recreate(name: str, *, create: bool) -> None:
    import asyncpg

    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if create:
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


@asynccontextmanager
async def empty_database(kind: str, tmp_path: Path, prefix: str) -> AsyncIterator[Database]:
    if kind == "sqlite":
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
        try:
            yield db
        finally:
            await db.dispose()
        return
    _pg_or_skip()
    name = f"{prefix}_{os.getpid()}"
    await _recreate(name, create=True)
    db = Database(_pg_url(name))
    try:
        yield db
    finally:
        await db.dispose()
        await _recreate(name, create=False)
