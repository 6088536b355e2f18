"""Connected boards still receive a fleet-wide change: the request only queues it; each
background batch commits, announces ``twin.desired`` for its twins, and the hub pushes the
new document to each board's session, once (on SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from tests.fleet.brain.channel_kit import Kit, make_kit
from wrale.fleet.brain.channel.hub import ChannelHub
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models.twin import DeviceTwin
from wrale.fleet.brain.services import policies, twin_recompose
from wrale.fleet.sync.protocol import Desired


async def versions(db: Database) -> dict[str, int]:
    async with db.session() as s:
        return {t.device_id: t.desired_version for t in await s.scalars(select(DeviceTwin))}


async def test_connected_boards_get_the_change_batch_by_batch(
    database: Database, tmp_path: Path
) -> None:
    kit: Kit = await make_kit(database, tmp_path)
    boards = await kit.devices("push-a", "push-b", "push-c")
    hub = ChannelHub(kit.ctx())
    await hub.start()
    opened = []
    try:
        for device_id, secret in boards:
            session, wire, _ = await kit.open(device_id, secret)
            hub.register(session)
            await session.deliver()
            wire.take()  # the desired document sent on connect
            opened.append(wire)
        before = await versions(kit.db)
        async with kit.db.session() as s:
            await policies.create_policy(
                s, kit.admin, "fleet", None, "sampling", {"interval_s": 4.0}, kit.bus
            )
        assert await versions(kit.db) == before  # the request recomposed no twin
        # one board per batch, three batches: each twin is bumped and pushed once
        assert await twin_recompose.recompose_pending(kit.db, kit.bus, batch=1) == 3
        after = await versions(kit.db)
        assert after == {k: v + 1 for k, v in before.items()}
        for wire in opened:
            got = await wire.wait_for(lambda m: isinstance(m, Desired))
            assert isinstance(got, Desired)
            assert got.doc["sampling"]["interval_s"] == 4.0
            assert [m.version for m in wire.sent if isinstance(m, Desired)] == [got.version]
    finally:
        await hub.stop()
