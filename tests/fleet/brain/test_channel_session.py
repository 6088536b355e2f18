"""The device session on SQLite and PostgreSQL: hello/welcome, acks, idempotent
redelivery, gaps and duplicates on both streams, refusals, replaced sessions, group commit,
bad frames, and sessions rebuilt on another replica (the MQTT path)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.fleet.brain.channel_kit import Kit, Wire, make_kit
from wrale.fleet.brain.channel import quarantine
from wrale.fleet.brain.channel.session import DeviceSession
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.channel import ChannelSession, DeviceEvent
from wrale.fleet.brain.models.telemetry import TelemetryRaw
from wrale.fleet.brain.services import enrollment, registry
from wrale.fleet.sync.protocol import (
    Ack,
    EventsBatch,
    Goodbye,
    Hello,
    ProtocolError,
    Status,
    TelemetryBatch,
)


def batch(seq: int, prev: int, t0: float, n: int = 3) -> TelemetryBatch:
    points = [("cpu_temp_c", t0 + i, 40.0 + seq + i / 10) for i in range(n)]
    return TelemetryBatch(seq=seq, prev=prev, points=points)


def ev(kind: str, t: float, severity: str = "critical", **data: object) -> dict[str, object]:
    return {"ts": t, "type": kind, "severity": severity, "message": kind.lower(), "data": data}


async def count(db: Database, model: type, **where: object) -> int:
    async with db.session() as s:
        stmt = select(func.count()).select_from(model)
        for k, v in where.items():
            stmt = stmt.where(getattr(model, k) == v)
        return int(await s.scalar(stmt) or 0)


async def acks(session: DeviceSession, wire: Wire, *msgs: object) -> list[tuple[str, int, bool]]:
    await session.handle(list(msgs))  # type: ignore[arg-type]
    return [(a.stream, a.seq, a.gap) for a in wire.take() if isinstance(a, Ack)]


@pytest.fixture
async def kit(database: Database, tmp_path: Path) -> Kit:
    return await make_kit(database, tmp_path)


async def test_acks_redelivery_gaps_and_marks(kit: Kit) -> None:
    ((dev, secret),) = await kit.devices("board-1")
    t0 = kit.clock.now() - 60
    session, wire, welcome = await kit.open(dev, secret)
    assert welcome.acked == {"telemetry": 0, "events": 0}
    assert welcome.session == session.id
    assert welcome.heartbeat_s == 15.0
    async with kit.db.session() as s:
        device = await s.get(Device, dev)
        assert device is not None
        assert (device.status, device.agent_version) == ("online", "9.9.1")
        num = device.num

    # two batches in one group: one transaction, an ack for each
    assert await acks(session, wire, batch(1, 0, t0), batch(2, 1, t0 + 3)) == [
        ("telemetry", 1, False),
        ("telemetry", 2, False),
    ]
    assert await count(kit.db, TelemetryRaw, device_num=num) == 6
    # redelivery of a stored batch: acknowledged again, nothing stored twice
    assert await acks(session, wire, batch(2, 1, t0 + 3)) == [("telemetry", 2, False)]
    # a batch whose predecessor is missing: refused with gap, nothing stored
    assert await acks(session, wire, batch(5, 4, t0 + 12)) == [("telemetry", 2, True)]
    # the sender resends from the ack: order restored
    assert await acks(session, wire, batch(3, 2, t0 + 6), batch(5, 3, t0 + 12)) == [
        ("telemetry", 3, False),
        ("telemetry", 5, False),
    ]
    assert await count(kit.db, TelemetryRaw, device_num=num) == 12

    # events: the same rule on their own stream
    events = EventsBatch(seq=1, prev=0, events=[ev("DIAGNOSTICS", t0, "info")])
    assert await acks(session, wire, events) == [("events", 1, False)]
    assert await acks(session, wire, events) == [("events", 1, False)]
    gap = EventsBatch(seq=3, prev=2, events=[ev("DIAGNOSTICS", t0, "info")])
    assert await acks(session, wire, gap) == [("events", 1, True)]
    assert await count(kit.db, DeviceEvent, device_id=dev) == 1

    # a new connection learns the marks; the agent's own acks above them move them up
    # (those batches are gone from its outbox: the streams must continue)
    again, wire2, welcome2 = await kit.open(dev, secret, acked={"telemetry": 9, "events": 1})
    assert welcome2.acked == {"telemetry": 9, "events": 1}
    assert await acks(again, wire2, batch(10, 9, t0 + 30)) == [("telemetry", 10, False)]
    async with kit.db.session() as s:
        rows = {r.id: r for r in await s.scalars(select(ChannelSession))}
    assert rows[session.id].close_reason == "replaced"
    assert rows[again.id].closed_at is None


async def test_group_commit_status_bad_points_and_protocol_errors(kit: Kit) -> None:
    ((dev, secret),) = await kit.devices("board-2")
    session, wire, _ = await kit.open(dev, secret)
    t0 = kit.clock.now() - 10
    mixed = TelemetryBatch(
        seq=1,
        prev=0,
        points=[("cpu_temp_c", t0, 50.0), ("Bad Name", t0, 1.0), ("power_w", 1.0, 3.0)],
    )
    async with kit.bus.subscribe(kit.admin.tenant_id) as heard:
        status = Status(ts=t0, mode="sa\x00fe", outbox={"telemetry": 4}, live={"cpu_temp_c": 50.0})
        nul = {**ev("ARMED", t0, "info", note="x\x00y"), "message": "ar\x00med"}
        events = EventsBatch(seq=1, prev=0, events=[nul])
        got = await acks(session, wire, mixed, status, events)
        kinds = [heard.get_nowait().kind for _ in range(heard.qsize())]
    assert got == [("telemetry", 1, False), ("events", 1, False)]
    assert {"telemetry.summary", "device.live", "device.event"} <= set(kinds)
    async with kit.db.session() as s:
        device = await s.get(Device, dev)
        assert device is not None
        stored = await s.scalar(
            select(func.count())
            .select_from(TelemetryRaw)
            .where(TelemetryRaw.device_num == device.num)
        )
    assert stored == 1  # the bad name and the 1970 timestamp were dropped, the batch acked
    async with kit.db.session() as s:
        event = await s.scalar(select(DeviceEvent).where(DeviceEvent.device_id == dev))
        row = await s.get(ChannelSession, session.id)
    assert event is not None
    assert (event.message, event.data) == ("armed", {"note": "xy"})
    assert row is not None
    assert row.mode == "safe"
    with pytest.raises(ProtocolError):
        await session.handle([Hello(device_id=dev, agent_version="1")])
    with pytest.raises(ProtocolError):
        await session.handle([Ack(stream="telemetry", seq=1)])


async def test_refusals_at_connect(kit: Kit) -> None:
    (a, secret_a), (b, secret_b), (c, secret_c) = await kit.devices("r-a", "r-b", "r-c")

    async def refused(device_id: str, secret: str) -> Goodbye:
        _, _, first = await kit.connect(device_id, secret)
        assert isinstance(first, Goodbye), first
        return first

    bye = await refused(a, "wds_wrong")
    assert (bye.code, bye.retry) == ("unauthorized", False)
    assert (await refused("f" * 32, secret_a)).code == "unauthorized"
    assert (await refused(a, secret_b)).code == "unauthorized"  # another device's secret
    async with kit.db.session() as s:
        await enrollment.revoke_credentials(s, kit.admin, a)
    assert (await refused(a, secret_a)).code == "unauthorized"

    async with kit.db.session() as s:
        await quarantine.quarantine(s, kit.admin, b, "case opened in rack 3", kit.bus)
    bye = await refused(b, secret_b)
    assert (bye.code, bye.retry) == ("quarantined", True)
    assert "case opened in rack 3" in bye.message
    async with kit.db.session() as s:
        await quarantine.release(s, kit.admin, b, None, kit.bus)
    await kit.open(b, secret_b)

    async with kit.db.session() as s:
        await registry.change_status(s, kit.admin, c, "maintenance", "new fan", kit.bus)
    assert (await refused(c, secret_c)).code == "held"
    async with kit.db.session() as s:
        device = await s.get(Device, c)
        assert device is not None
        assert device.status == "maintenance"
        await registry.change_status(s, kit.admin, c, "decommissioned", None, kit.bus)
    bye = await refused(c, secret_c)
    assert (bye.code, bye.message) == ("held", "the device is decommissioned")
    assert (await refused(c, "wds_wrong")).code == "unauthorized"


async def test_replaced_session_keeps_the_device_online(kit: Kit) -> None:
    ((dev, secret),) = await kit.devices("board-3")
    first, _, _ = await kit.open(dev, secret)
    second, _, _ = await kit.open(dev, secret)
    await first.close("replaced")

    async def status() -> str:
        async with kit.db.session() as s:
            device = await s.get(Device, dev)
            assert device is not None
            return device.status

    assert await status() == "online"
    await first.close("disconnected")  # closing twice changes nothing
    assert await status() == "online"
    await second.close("disconnected")
    assert await status() == "offline"


async def test_attach_on_another_replica(kit: Kit) -> None:
    """The MQTT bridge's path: open on one replica, continue on another from the row."""
    ((dev, secret),) = await kit.devices("board-4")
    wire = Wire()
    opened = DeviceSession(kit.ctx("replica-a"), wire.send, transport="mqtt")
    first = await opened.open(
        Hello(device_id=dev, agent_version="1.0", session="mqtt-sess-01"), secret
    )
    assert first.session == "mqtt-sess-01"
    other = Wire()
    attached = await DeviceSession.attach(kit.ctx("replica-b"), other.send, dev, "mqtt-sess-01")
    assert attached is not None
    assert attached.id == "mqtt-sess-01"
    t0 = kit.clock.now() - 5
    await attached.handle([batch(1, 0, t0)])
    assert other.take() == [Ack(stream="telemetry", seq=1, session="mqtt-sess-01")]
    # both replicas handed the same batch (broker redelivery): stored once
    assert await acks(opened, wire, batch(1, 0, t0)) == [("telemetry", 1, False)]
    async with kit.db.session() as s:
        device = await s.get(Device, dev)
        assert device is not None
    assert await count(kit.db, TelemetryRaw, device_num=device.num) == 3
    newer, _, _ = await kit.open(dev, secret)
    assert await DeviceSession.attach(kit.ctx("replica-b"), other.send, dev, "mqtt-sess-01") is None
    again = await DeviceSession.attach(kit.ctx("replica-b"), other.send, dev)
    assert again is not None
    assert again.id == newer.id


@pytest.mark.parametrize("bad", [False, True])
async def test_group_commit_across_sessions(kit: Kit, bad: bool) -> None:
    """Frames of several sessions committed together (SQLite's default, forced here on
    both databases): each session gets its own acks after the commit; a bad frame of one
    session fails that session alone and the others are still stored (redone apart)."""
    ctx = kit.ctx()
    ctx.group_commit = True
    devs = await kit.devices("gc-1", "gc-2", "gc-3")
    opened = [await kit.connect(d, s, ctx=ctx) for d, s in devs]
    t0 = kit.clock.now() - 30
    (a, wa, _), (b, wb, _), (c, wc, _) = opened
    third = [Hello(device_id=devs[2][0], agent_version="1")] if bad else [batch(1, 0, t0)]
    got = await asyncio.gather(
        a.handle([batch(1, 0, t0), batch(2, 1, t0 + 3)]),
        b.handle([batch(4, 3, t0)]),  # a gap: nothing stored, acked with gap
        c.handle(third),
        return_exceptions=True,
    )
    assert (got[0], got[1]) == (None, None)
    if bad:
        assert isinstance(got[2], ProtocolError)
    else:
        assert got[2] is None
        assert [(m.seq, m.gap) for m in wc.take() if isinstance(m, Ack)] == [(1, False)]
    assert [(m.seq, m.gap) for m in wa.take() if isinstance(m, Ack)] == [(1, False), (2, False)]
    assert [(m.seq, m.gap) for m in wb.take() if isinstance(m, Ack)] == [(0, True)]
    async with kit.db.session() as s:
        nums = [(await s.get(Device, d)).num for d, _ in devs]  # type: ignore[union-attr]
    assert await count(kit.db, TelemetryRaw, device_num=nums[0]) == 6
    assert await count(kit.db, TelemetryRaw, device_num=nums[1]) == 0
    assert await count(kit.db, TelemetryRaw, device_num=nums[2]) == (0 if bad else 3)
    # redelivery through the shared path stores nothing twice
    await a.handle([batch(2, 1, t0 + 3)])
    assert [(m.seq, m.gap) for m in wa.take() if isinstance(m, Ack)] == [(2, False)]
    assert await count(kit.db, TelemetryRaw, device_num=nums[0]) == 6


@pytest.mark.postgres
@pytest.mark.parametrize("database", ["postgres"], indirect=True)
async def test_a_quarantine_committed_while_a_status_change_waits_is_kept(kit: Kit) -> None:
    """The channel read the device (offline), an admin quarantined it and committed, then
    the channel marks it online or offline: the quarantine stands. Before the status was
    judged under a row lock, the stale read wrote "online" over it and the board went on
    being welcomed."""
    ((dev, _),) = await kit.devices("q-race")
    for status in ("online", "offline"):
        async with kit.db.session() as stale:
            device = await stale.get(Device, dev)
            assert device is not None
            async with kit.db.session() as admin:
                await quarantine.quarantine(admin, kit.admin, dev, "case opened", kit.bus)
            changed = await registry.set_status(stale, device, status, "connected", kit.bus)
        assert not changed
        async with kit.db.session() as s:
            assert (await s.get(Device, dev)).status == "quarantined"  # type: ignore[union-attr]
            await quarantine.release(s, kit.admin, dev, None, kit.bus)
