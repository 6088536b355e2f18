"""On SQLite the background jobs' writes take writer turns (``Database.serial_session``)
like the device channel's: a lease claim, a retention pass or a sweep that wrote outside
the turns met the channel's group commit at the file lock, where SQLite's busy handler
sleeps up to 100 ms a try and the two waited on each other (seconds a commit, traced on
the fleet bench). Waiting for a turn holds no pooled connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from tests.conftest import sqlite_database
from wrale.fleet.brain.background import acquire_lease
from wrale.fleet.brain.channel.offline import apply_retention as channel_retention
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Lease
from wrale.fleet.brain.services.dry_runs import fail_lost
from wrale.shared.central_settings import CentralSettings


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    async with sqlite_database(tmp_path) as d:
        yield d


async def _while_the_writer_holds_its_turn(db: Database, work: asyncio.Future[Any]) -> None:
    """``work`` has not run a statement while a writer holds its turn (it waits on the
    turn, with no connection), and finishes once the turn is released."""
    async with db.serial_session() as s:
        await s.execute(update(Lease).values(holder="the writer"))  # holds the file lock
        await asyncio.sleep(0.3)
        assert not work.done()
        assert db.writer.pool.checkedout() == 1  # type: ignore[attr-defined]
        assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    await asyncio.wait_for(work, 10)


async def test_a_lease_claim_waits_for_a_writer_turn(db: Database) -> None:
    claim = asyncio.ensure_future(acquire_lease(db, "job", "me", 30.0, 1000.0))
    await _while_the_writer_holds_its_turn(db, claim)
    assert claim.result() is True


async def test_the_sweeps_wait_for_a_writer_turn(db: Database, tmp_path: Path) -> None:
    settings = CentralSettings(data_dir=tmp_path, secret_key="k" * 32)
    await _while_the_writer_holds_its_turn(db, asyncio.ensure_future(fail_lost(db, 1000.0)))
    gone = asyncio.ensure_future(channel_retention(db, settings, 1000.0))
    await _while_the_writer_holds_its_turn(db, gone)
