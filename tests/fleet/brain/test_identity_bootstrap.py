"""Replicas starting together on a fresh database: one creates the admin, the other sees
it (no duplicate-name failure of the default tenant). Replicas share PostgreSQL only (a
SQLite file has one central process), so this runs there."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Tenant, User
from wrale.fleet.brain.services import identity


@pytest.mark.postgres
@pytest.mark.parametrize("database", ["postgres"], indirect=True)
async def test_two_first_starts_at_once_make_one_admin(database: Database) -> None:
    async def start() -> str | None:
        async with database.session() as s:
            return await identity.bootstrap(s, None)

    results = await asyncio.gather(start(), start())
    assert sum(r is not None for r in results) == 1  # one generated password, printed once
    async with database.session() as s:
        admins = await s.scalar(select(func.count()).select_from(User))
        tenants = await s.scalar(
            select(func.count()).select_from(Tenant).where(Tenant.name == identity.DEFAULT_TENANT)
        )
    assert (admins, tenants) == (1, 1)
