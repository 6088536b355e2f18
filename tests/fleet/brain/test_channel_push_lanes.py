"""What the hub pushes to a session, and in which writer lane, on SQLite and PostgreSQL: a
command takes the urgent turn; a desired document alone shares the next group commit; a
board's first delivery is composed in a batch with the others opening (or alone if the
batch fails), and the twin it made is not composed a second time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.fleet.brain.channel_kit import Kit, make_kit
from wrale.fleet.brain.channel import first_compose
from wrale.fleet.brain.channel.hub import ChannelHub
from wrale.fleet.brain.channel.session import DeviceSession
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.services import commands, twin, twin_batch
from wrale.fleet.sync.protocol import Command, Desired


@pytest.fixture
async def kit(database: Database, tmp_path: Path) -> Kit:
    return await make_kit(database, tmp_path)


async def settled(session: DeviceSession) -> None:
    """Until the session's pusher has nothing left to do."""
    for _ in range(500):
        await asyncio.sleep(0.01)
        if session._pusher is None:
            return
    raise AssertionError("the pusher did not finish")


def watch_turns(session: DeviceSession) -> list[tuple[str, bool]]:
    """The session's writer turns, as (what, urgent), in order."""
    seen: list[tuple[str, bool]] = []
    real = session._turn

    async def turn(job: Callable[[AsyncSession], Awaitable[Any]], *, urgent: bool) -> Any:
        seen.append((job.__name__, urgent))
        return await real(job, urgent=urgent)

    session._turn = turn  # type: ignore[method-assign]
    return seen


async def test_first_delivery_composes_the_twin_once(
    kit: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    ((dev, secret),) = await kit.devices("first-session")
    alone: list[str] = []
    batched: list[list[str]] = []
    real_alone, real_batch = twin.desired_for, twin_batch.recompose_devices

    async def counting(s: AsyncSession, device: Any, bus: Any = None) -> tuple[int, Any]:
        alone.append(device.id)
        return await real_alone(s, device, bus)

    async def counting_batch(s: AsyncSession, tenant: str, ids: Any, bus: Any) -> int:
        batched.append(list(ids))
        return await real_batch(s, tenant, ids, bus)

    monkeypatch.setattr(twin, "desired_for", counting)
    monkeypatch.setattr(twin_batch, "recompose_devices", counting_batch)
    hub = ChannelHub(kit.ctx())
    await hub.start()
    try:
        session, wire, _ = await kit.open(dev, secret)
        hub.register(session)
        assert await session.deliver(urgent=False) == 1  # as a transport does after Welcome
        (desired,) = wire.take()
        assert isinstance(desired, Desired)
        assert {"thermal", "power", "security", "sampling"} <= set(desired.doc)
        # its twin was made by that delivery, and the hub heard of the new version: the
        # session has sent it, so nothing is composed or sent again
        await settled(session)
        assert batched == [[dev]]
        assert alone == []
        assert wire.take() == []
        assert session.desired_sent == desired.version
    finally:
        await hub.stop()


async def test_boards_opening_together_are_composed_in_batches(
    kit: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    devices = await kit.devices(*(f"storm-{i}" for i in range(first_compose.BATCH + 8)))
    sizes: list[int] = []
    real_batch = twin_batch.recompose_devices

    async def counting_batch(s: AsyncSession, tenant: str, ids: Any, bus: Any) -> int:
        sizes.append(len(ids))
        return await real_batch(s, tenant, ids, bus)

    monkeypatch.setattr(twin_batch, "recompose_devices", counting_batch)
    ctx = kit.ctx()  # the process's one context, as a transport's sessions share it
    opened = [await kit.connect(dev, secret, ctx=ctx) for dev, secret in devices]
    heard = await asyncio.gather(*(s.deliver(urgent=False) for s, _w, _ in opened))
    assert heard == [1] * len(devices)
    assert sizes == [first_compose.BATCH, 8]
    versions = {}
    for (dev, _), (_s, wire, _) in zip(devices, opened, strict=True):
        (desired,) = wire.take()
        assert isinstance(desired, Desired)
        versions[dev] = desired.version
    async with kit.db.session() as s:
        for dev, version in versions.items():
            stored = await twin.stored_desired(s, dev)
            assert stored is not None
            assert stored[0] == version  # what was sent is what is stored


async def test_a_failed_batch_leaves_each_board_to_compose_alone(
    kit: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    ((dev, secret),) = await kit.devices("batch-fails")

    async def broken(*_args: Any) -> int:
        raise RuntimeError("the batch broke")

    monkeypatch.setattr(twin_batch, "recompose_devices", broken)
    session, wire, _ = await kit.open(dev, secret)
    assert await session.deliver(urgent=False) == 1
    (desired,) = wire.take()
    assert isinstance(desired, Desired)
    assert desired.version >= 1


async def test_a_command_is_urgent_and_a_desired_document_is_not(kit: Kit) -> None:
    ((dev, secret),) = await kit.devices("lanes")
    hub = ChannelHub(kit.ctx())
    await hub.start()
    try:
        session, wire, _ = await kit.open(dev, secret)
        hub.register(session)
        await session.deliver(urgent=False)
        (first,) = wire.take()
        assert isinstance(first, Desired)
        await settled(session)
        turns = watch_turns(session)

        pushed = await kit.fan_override(wire, dev, first.version, 40.0)
        assert pushed.doc["fan"]["override_pct"] == 40.0
        await settled(session)
        assert ("due", False) in turns
        assert ("due", True) not in turns

        turns.clear()
        wire.take()
        async with kit.db.session() as s:
            queued = await commands.create_command(s, kit.admin, dev, "run_diag", {}, bus=kit.bus)
        cmd = await wire.wait_for(lambda m: isinstance(m, Command) and m.id == queued.id)
        assert isinstance(cmd, Command)
        await settled(session)
        assert turns[0] == ("due", True)
        # the command's delivery composed no desired document: none was sent with it
        assert not [m for m in wire.take() if isinstance(m, Desired)]
    finally:
        await hub.stop()
