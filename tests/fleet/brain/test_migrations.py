"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL,
and running them again (a restart, or a second replica) changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from tests.fleet.brain.migrations_kit import empty_database
from wrale.fleet.brain import schema
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Base


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async with empty_database(request.param, tmp_path, "wrale_mig") as db:
        yield db


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
