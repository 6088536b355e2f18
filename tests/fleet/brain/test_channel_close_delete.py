"""A board's session ending while an admin deletes the board: both finish, neither
deadlocks (the session's end locks the device before its session row, as a deletion's
cascade does), and a session ending after its board is gone records nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.fleet.brain.channel_kit import Kit, make_kit
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.services import registry


@pytest.fixture
async def kit(database: Database, tmp_path: Path) -> Kit:
    return await make_kit(database, tmp_path)


async def _delete(kit: Kit, device_id: str) -> None:
    async with kit.db.session() as s:
        await registry.delete_device(s, kit.admin, device_id)


async def test_sessions_ending_while_their_boards_are_deleted(kit: Kit) -> None:
    devs = await kit.devices(*(f"gone-{i}" for i in range(12)))
    sessions = [(await kit.open(d, secret))[0] for d, secret in devs]
    results = await asyncio.gather(
        *(s.close("disconnected") for s in sessions),
        *(_delete(kit, d) for d, _ in devs),
        return_exceptions=True,
    )
    assert [r for r in results if isinstance(r, BaseException)] == []
    async with kit.db.session() as s:
        left = await s.scalars(select(Device.id).where(Device.id.in_([d for d, _ in devs])))
        assert list(left) == []


async def test_a_session_ending_after_its_board_was_deleted_records_nothing(kit: Kit) -> None:
    ((dev, secret),) = await kit.devices("gone-first")
    session, _, _ = await kit.open(dev, secret)
    await _delete(kit, dev)
    await session.close("disconnected")  # no error, no row brought back
    async with kit.db.session() as s:
        assert await s.get(Device, dev) is None
