"""PostgreSQL's pool: a connection the server dropped while it sat idle in the pool is found
dead and replaced before it is handed out (pinged when idle over ``IDLE_PING_S``), and a
connection back in the pool a moment ago is handed out without that extra round trip."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import text

from tests.conftest import PG_ADMIN_DSN
from wrale.fleet.brain import db as db_module
from wrale.fleet.brain.db import Database

pytestmark = pytest.mark.postgres


@pytest.fixture
async def pg(database: Database) -> Database:
    if database.is_sqlite:
        pytest.skip("PostgreSQL's pool only")
    return database


async def _backend(db: Database) -> int:
    async with db.session() as s:
        return int((await s.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _pings(db: Database, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the pings of ``db``'s pooled connections from now on."""
    seen: list[int] = []
    conn = await db.engine.raw_connection()
    adapted = type(conn.dbapi_connection)
    conn.close()
    real = adapted.ping

    def ping(self: object) -> None:
        seen.append(1)
        real(self)

    monkeypatch.setattr(adapted, "ping", ping)
    return seen


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
async def test_a_connection_killed_while_idle_is_replaced_not_handed_out(
    pg: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_module, "IDLE_PING_S", 0.05)
    first = await _backend(pg)  # one pooled connection, now idle
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", first)
    finally:
        await admin.close()
    await asyncio.sleep(0.2)
    second = await _backend(pg)  # no error: the dead one was pinged and replaced
    assert second != first


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
async def test_a_connection_back_a_moment_ago_is_not_pinged(
    pg: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings = await _pings(pg, monkeypatch)
    for _ in range(20):
        await _backend(pg)
    assert pings == []
    monkeypatch.setattr(db_module, "IDLE_PING_S", 0.05)
    await asyncio.sleep(0.1)
    await _backend(pg)
    assert pings == [1]
