"""An urgent writer turn (a command, its result, an operator's change) that starts waiting
during a group commit waits for the item being written, not for the whole transaction:
the committer commits what is done and writes the rest right after the urgent turn."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import sqlite_database
from wrale.fleet.brain.channel import group_commit
from wrale.fleet.brain.channel.group_commit import GroupCommitter
from wrale.fleet.brain.db import Database


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    async with sqlite_database(tmp_path) as d:
        yield d


async def test_an_urgent_turn_waits_for_one_item_not_the_transaction(db: Database) -> None:
    committer = GroupCommitter(db)
    log: list[str] = []
    urgent: list[asyncio.Task[None]] = []

    async def operator() -> None:
        async with db.serial_session(urgent=True):
            log.append("urgent")

    def job(name: str) -> Callable[[AsyncSession], Awaitable[str]]:
        async def run(s: AsyncSession) -> str:
            log.append(name)
            if name == "a":  # an operator's change arrives while "a" is written
                urgent.append(asyncio.create_task(operator()))
                await asyncio.sleep(0)  # it queues for the writer
            return name

        return run

    results = await asyncio.gather(*(committer.run(job(n)) for n in "abc"))
    await asyncio.wait_for(urgent[0], 10)
    assert results == ["a", "b", "c"]
    assert log == ["a", "urgent", "b", "c"]


async def test_without_an_urgent_turn_the_items_share_one_commit(db: Database) -> None:
    committer = GroupCommitter(db)
    commits: list[int] = []
    event.listen(db.writer.sync_engine, "commit", lambda _conn: commits.append(1))

    async def run(s: AsyncSession) -> None:
        await s.execute(text("SELECT 1"))

    await asyncio.gather(*(committer.run(run) for _ in range(5)))
    assert len(commits) == 1


@pytest.mark.parametrize(("slice_s", "turns"), [(0.0, 9), (3600.0, 0)])
async def test_the_loop_is_served_once_a_slice_not_after_every_item(
    db: Database, monkeypatch: pytest.MonkeyPatch, slice_s: float, turns: int
) -> None:
    """The writer runs inline: the loop gets a turn when a slice of work is spent (every
    item with a zero slice, none within an hour's), not after every item of a long group."""
    monkeypatch.setattr(group_commit, "SLICE_S", slice_s)
    committer = GroupCommitter(db)
    seen: list[int] = []  # loop turns counted while each item is written
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0)
            ticks += 1

    def job(n: int) -> Callable[[AsyncSession], Awaitable[None]]:
        async def run(s: AsyncSession) -> None:  # never yields: a statement run inline
            seen.append(ticks)

        return run

    counting = asyncio.create_task(ticker())
    try:
        await asyncio.gather(*(committer.run(job(n)) for n in range(10)))
    finally:
        counting.cancel()
    assert len(seen) == 10
    assert seen[-1] - seen[0] == turns
