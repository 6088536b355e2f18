"""Login throttling in the database: the counters are atomic, so concurrent guesses (from
one replica or several) get no more password checks than the limit, on SQLite and
PostgreSQL alike."""

from __future__ import annotations

import asyncio

import pytest

from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import AuditEntry
from wrale.fleet.brain.services import identity
from wrale.fleet.brain.services.identity import AuthConfig
from wrale.fleet.brain.services.login_throttle import LoginThrottledError
from wrale.shared.errors import AuthError

CFG = AuthConfig(secret_key="k" * 32, max_failures=5, lockout_s=60, address_max_failures=50)


async def _attempt(db: Database, password: str, ip: str) -> str:
    async with db.session() as session:
        try:
            await identity.login(session, "admin", password, CFG, ip)
        except LoginThrottledError:
            return "throttled"
        except AuthError:
            return "wrong"
        return "ok"


async def test_concurrent_guesses_get_no_more_checks_than_the_limit(database: Database) -> None:
    async with database.session() as session:
        await identity.bootstrap(session, "right-password-1")
    results = await asyncio.gather(
        *(_attempt(database, f"guess-{i:04d}", "192.0.2.1") for i in range(16))
    )
    assert results.count("wrong") == 5
    assert results.count("throttled") == 11
    async with database.session() as session:
        failed = await session.scalars(
            AuditEntry.__table__.select().where(
                AuditEntry.action == "auth.login", AuditEntry.outcome == "failed"
            )
        )
        assert len(failed.all()) == 5
    # the right password from the throttled address waits; from another it works
    assert await _attempt(database, "right-password-1", "192.0.2.1") == "throttled"
    assert await _attempt(database, "right-password-1", "192.0.2.2") == "ok"


async def test_an_ipv6_attacker_cannot_escape_by_changing_the_interface_id(
    database: Database,
) -> None:
    async with database.session() as session:
        await identity.bootstrap(session, "right-password-1")
    for i in range(5):
        assert await _attempt(database, "wrong-password", f"2001:db8::{i + 1:x}") == "wrong"
    assert await _attempt(database, "wrong-password", "2001:db8::ffff") == "throttled"
    assert await _attempt(database, "right-password-1", "2001:db8:1::1") == "ok"


@pytest.mark.parametrize("failures", [5, 6, 7, 40])
def test_the_back_off_doubles_and_is_capped(failures: int) -> None:
    from wrale.fleet.brain.services.login_throttle import back_off_s

    delay = back_off_s(failures, limit=5, base_s=60, max_s=3600)
    assert delay == min(60 * 2 ** (failures - 5), 3600)
