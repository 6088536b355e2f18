"""The channel around sessions, on SQLite and PostgreSQL: alerts from board events, the
offline job (fixed ``now``), desired state and commands pushed on connect and live through
the hub, and the hub ending sessions (revoked, replaced on another replica, quarantined)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.fleet.brain.channel_kit import Kit, make_kit
from wrale.fleet.brain.channel import alerts as channel_alerts
from wrale.fleet.brain.channel import quarantine
from wrale.fleet.brain.channel.hub import ChannelHub
from wrale.fleet.brain.channel.offline import apply_retention, mark_offline
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Device, Tenant
from wrale.fleet.brain.models.alerts import Alert
from wrale.fleet.brain.models.channel import ChannelSession
from wrale.fleet.brain.models.commands import Command as CommandRow
from wrale.fleet.brain.models.twin import DeviceTwin
from wrale.fleet.brain.services import commands, enrollment
from wrale.fleet.sync.protocol import (
    Command,
    CommandResult,
    Desired,
    EventsBatch,
    Goodbye,
    Reported,
    Status,
)


def ev(kind: str, t: float, severity: str = "critical", **data: object) -> dict[str, object]:
    return {"ts": t, "type": kind, "severity": severity, "message": kind.lower(), "data": data}


@pytest.fixture
async def kit(database: Database, tmp_path: Path) -> Kit:
    return await make_kit(database, tmp_path)


async def device_alerts(db: Database, device_id: str) -> dict[str, str]:
    """metric → state of the device's rule-less alerts (the newest of each)."""
    async with db.session() as s:
        rows = await s.scalars(select(Alert).where(Alert.device_id == device_id).order_by(Alert.id))
        return {a.metric: a.state for a in rows}


async def status_of(db: Database, device_id: str) -> str:
    async with db.session() as s:
        device = await s.get(Device, device_id)
        assert device is not None
        return device.status


async def test_board_events_raise_and_clear_alerts(kit: Kit) -> None:
    ((dev, secret),) = await kit.devices("board-ev")
    session, _wire, _ = await kit.open(dev, secret)
    t = kit.clock.now()
    first = EventsBatch(
        seq=1,
        prev=0,
        events=[
            ev("FAN_FAILURE", t, duty_pct=80, fan_rpm=0),
            ev("TAMPER", t, "warning", input="case", alert=True),
            ev("TAMPER", t, "info", input="motion", alert=False),  # noted only
            ev("SENSOR_FAILURE", t, "warning", sensor="cpu"),
        ],
    )
    async with kit.bus.subscribe(kit.admin.tenant_id) as heard:
        await session.handle([first])
        await session.handle([first])  # redelivered: no second alert
        await session.handle([EventsBatch(seq=2, prev=1, events=[ev("FAN_FAILURE", t + 1)])])
        raised = [
            e.data["metric"]
            for e in [heard.get_nowait() for _ in range(heard.qsize())]
            if e.kind == "alert.raised"
        ]
    assert sorted(raised) == ["event:FAN_FAILURE", "event:SENSOR_FAILURE:cpu", "event:TAMPER:case"]
    assert await device_alerts(kit.db, dev) == {
        "event:FAN_FAILURE": "active",
        "event:TAMPER:case": "active",
        "event:SENSOR_FAILURE:cpu": "active",
    }
    recovery = [
        ev("FAN_RECOVERED", t + 2, "info", fan_rpm=3000),
        ev("TAMPER_CLEARED", t + 2, "info", input="case"),
        ev("LOCKDOWN", t + 2),
        ev("SHUTDOWN_REQUESTED", t + 3, battery_pct=4.0),
    ]
    await session.handle([EventsBatch(seq=3, prev=2, events=recovery)])
    assert await device_alerts(kit.db, dev) == {
        "event:FAN_FAILURE": "cleared",
        "event:TAMPER:case": "cleared",
        "event:SENSOR_FAILURE:cpu": "active",
        "event:LOCKDOWN": "active",
        "event:SHUTDOWN_REQUESTED": "active",
    }
    back = [ev("DISARMED", t + 4, "warning"), ev("METALD_STARTED", t + 9, "info", lockdown=False)]
    await session.handle([EventsBatch(seq=4, prev=3, events=back)])
    states = await device_alerts(kit.db, dev)
    assert states["event:LOCKDOWN"] == states["event:SHUTDOWN_REQUESTED"] == "cleared"
    assert states["event:SENSOR_FAILURE:cpu"] == "active"  # no recovery event yet


async def test_offline_job_alert_and_reconnect(kit: Kit) -> None:
    (a, secret_a), (b, secret_b) = await kit.devices("silent", "leaver")
    settings = kit.settings  # offline after 60 s, alert after 600 s
    sa, _, _ = await kit.open(a, secret_a)
    sb, _, _ = await kit.open(b, secret_b)
    await sb.close("disconnected")  # a clean goodbye: offline at once
    assert await status_of(kit.db, b) == "offline"
    start = kit.clock.now()

    result = await mark_offline(kit.db, kit.bus, settings, start + 59)
    assert result.went_offline == 0
    assert await status_of(kit.db, a) == "online"
    result = await mark_offline(kit.db, kit.bus, settings, start + 61)
    assert result.went_offline == 1
    assert await status_of(kit.db, a) == "offline"
    async with kit.db.session() as s:
        row = await s.get(ChannelSession, sa.id)
        assert row is not None
        assert row.close_reason == "silent"
    await sa.handle([Status(ts=start)])  # it was only slow: heard from again, online
    assert await status_of(kit.db, a) == "online"
    await sa.close("disconnected")
    assert await status_of(kit.db, a) == "offline"

    result = await mark_offline(kit.db, kit.bus, settings, start + 599)
    assert result.alerts_raised == 0
    result = await mark_offline(kit.db, kit.bus, settings, start + 601)
    assert result.alerts_raised == 2
    again = await mark_offline(kit.db, kit.bus, settings, start + 900)
    assert again.alerts_raised == 0  # one open alert per device
    assert (await device_alerts(kit.db, a))[channel_alerts.OFFLINE] == "active"

    kit.clock.advance(1000)
    await kit.open(a, secret_a)  # back: online, its alert cleared by the session
    assert await status_of(kit.db, a) == "online"
    assert (await device_alerts(kit.db, a))[channel_alerts.OFFLINE] == "cleared"
    assert (await device_alerts(kit.db, b))[channel_alerts.OFFLINE] == "active"
    assert await apply_retention(kit.db, settings, kit.clock.now() + 8 * 86_400) >= 2


async def test_desired_and_commands_on_connect_and_live(kit: Kit) -> None:
    ((dev, secret),) = await kit.devices("board-cmd")
    async with kit.db.session() as s:
        queued = await commands.create_command(s, kit.admin, dev, "run_diag", {}, bus=kit.bus)
    hub = ChannelHub(kit.ctx())
    await hub.start()
    session, wire, _ = await kit.open(dev, secret)
    hub.register(session)
    try:
        assert await session.deliver() == 2
        desired, cmd = wire.take()
        assert isinstance(desired, Desired)
        assert desired.version >= 1
        assert {"thermal", "power", "security", "sampling"} <= set(desired.doc)
        assert isinstance(cmd, Command)
        assert (cmd.id, cmd.op) == (queued.id, "run_diag")
        assert await session.deliver() == 0  # sent once
        async with kit.db.session() as s:
            row = await s.get(CommandRow, queued.id)
            assert row is not None
            assert row.status == "sent"

        # live: a command queued after connect reaches the session through the bus
        async with kit.db.session() as s:
            later = await commands.create_command(
                s, kit.admin, dev, "set_fan", {"percent": 80, "duration_s": 60}, bus=kit.bus
            )
        pushed = await wire.wait_for(lambda m: isinstance(m, Command) and m.id == later.id)
        assert isinstance(pushed, Command)
        assert pushed.args["percent"] == 80
        # and a twin change
        new = await kit.fan_override(wire, dev, desired.version, 55.0)
        assert new.doc["fan"]["override_pct"] == 55.0
        version = new.version

        # the device answers
        result = CommandResult(id=later.id, status="refused", reason="below the fan floor")
        reported = Reported(
            version=1, doc={"agent_version": "9.9.1"}, applied_desired_version=version
        )
        await session.handle([result, reported])
        async with kit.db.session() as s:
            row = await s.get(CommandRow, later.id)
            assert row is not None
            assert (row.status, row.reason) == (
                "refused",
                "below the fan floor",
            )
            tw = await s.scalar(select(DeviceTwin).where(DeviceTwin.device_id == dev))
            assert tw is not None
            assert tw.reported_version == 1
        # the pusher ran only while there was work: an idle session holds no task
        assert session._pusher is None
    finally:
        await hub.stop()


async def test_hub_ends_sessions(kit: Kit) -> None:
    devices = await kit.devices("k-a", "k-b", "k-c", "k-d")
    (a, _), (b, _), (c, secret_c), (d, _) = devices
    hub = ChannelHub(kit.ctx("replica-a"))
    await hub.start()
    try:
        opened = {}
        for dev, secret in devices:
            session, wire, _ = await kit.open(dev, secret)
            hub.register(session)
            opened[dev] = (session, wire)
        assert await hub.sweep() == 0

        # quarantine: the bus tells the hub at once
        async with kit.db.session() as s:
            await quarantine.quarantine(s, kit.admin, a, "lockdown on site", kit.bus)
        bye = await opened[a][1].wait_for(lambda m: isinstance(m, Goodbye))
        assert isinstance(bye, Goodbye)
        assert bye.code == "quarantined"
        assert opened[a][0].ended

        # revoked credentials (no bus event): the sweep finds them
        async with kit.db.session() as s:
            await enrollment.revoke_credentials(s, kit.admin, b)
        # replaced by a session opened on another replica: the sweep finds it too
        await kit.open(c, secret_c, ctx=kit.ctx("replica-b"))
        # past the revocation time (stamped with the wall clock, however slow the machine)
        kit.clock.advance(max(1.0, time.time() - kit.clock.now() + 1))
        assert await hub.sweep() == 2  # a's session had already ended
        for dev, code in ((b, "revoked"), (c, "replaced")):
            bye = await opened[dev][1].wait_for(lambda m: isinstance(m, Goodbye))
            assert isinstance(bye, Goodbye)
            assert bye.code == code, bye
        # a suspended organisation: its devices' sessions end at the next sweep
        async with kit.db.session() as s:
            tenant = await s.get(Tenant, kit.admin.tenant_id)
            assert tenant is not None
            tenant.status = "suspended"
        assert await hub.sweep() == 1
        bye = await opened[d][1].wait_for(lambda m: isinstance(m, Goodbye))
        assert isinstance(bye, Goodbye)
        assert (bye.code, bye.message) == ("held", "the organisation is suspended")
    finally:
        await hub.stop()
