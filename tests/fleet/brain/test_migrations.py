"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL,
and running them again (a restart, or a second replica) changes nothing."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from tests.conftest import PG_ADMIN_DSN, _pg_or_skip, _pg_url
from wrale.fleet.brain import schema
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Base


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
        yield db
        await db.dispose()
        return
    import asyncpg

    _pg_or_skip()
    name = f"wrale_mig_{os.getpid()}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    db = Database(_pg_url(name))
    yield db
    await db.dispose()
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


async def test_migrations_match_the_models(empty_db: Database) -> None:
    assert not await schema.is_current(empty_db)
    await schema.upgrade(empty_db)
    await schema.upgrade(empty_db)  # idempotent
    assert await schema.is_current(empty_db)
    async with empty_db.engine.connect() as conn:
        diff = await conn.run_sync(
            lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata)
        )
    assert diff == []
