"""The database schema's life: Alembic migrations run on start (under an advisory lock on
PostgreSQL, so replicas starting together take turns) and a readiness check."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from wrale.fleet.brain.db import Database

MIGRATIONS = Path(__file__).parent / "migrations"
LOCK_KEY = 0x57A1E  # advisory lock id for migrations


def _config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


def is_known(revision: str) -> bool:
    """Whether ``revision`` is one of this code's migrations (a newer database's is not)."""
    try:
        return ScriptDirectory.from_config(_config()).get_revision(revision) is not None
    except Exception:  # alembic raises its own errors for unknown or malformed ids
        return False


async def upgrade(db: Database) -> None:
    """Bring the schema to the newest revision."""
    async with db.engine.begin() as conn:
        if not db.is_sqlite:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
        await conn.run_sync(lambda c: command.upgrade(_config(c), "head"))


async def current_revision(db: Database) -> str | None:
    async with db.engine.connect() as conn:
        return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())


async def is_current(db: Database) -> bool:
    return await current_revision(db) == head_revision()


def autogenerate(message: str, workdir: Path) -> None:
    """Write a new revision for the models' changes (a developer's tool: ``make migration``).

    Migrates a scratch SQLite database in ``workdir`` to head and compares it with the models.
    """
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{workdir / 'scratch.db'}")
    with engine.begin() as conn:
        command.upgrade(_config(conn), "head")
        command.revision(_config(conn), message=message, autogenerate=True)
    engine.dispose()
