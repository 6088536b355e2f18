"""The device channel over MQTT end to end: a real central app (its MQTT bridge on the real
Mosquitto, each test on a topic root of its own) on SQLite and PostgreSQL, and devices
dialing with the real ``MqttDialer`` — the same behaviours the WebSocket path has."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import func, select, update

from tests.conftest import ADMIN_PASSWORD
from tests.fleet.edge.kit import edge_settings
from tests.fleet.sync.secure_broker import SecureBroker, secure_broker
from tests.user.tcp_proxy import CuttableProxy
from wrale.fleet.brain.channel.mqtt_bridge import MqttBridge
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.channel import ChannelSession
from wrale.fleet.brain.models.telemetry import TelemetryRaw, TelemetryRollup1h
from wrale.fleet.edge.agent import EdgeAgent
from wrale.fleet.edge.store import EdgeStore
from wrale.fleet.sync.backoff import Backoff
from wrale.fleet.sync.protocol import (
    Ack,
    Command,
    CommandResult,
    Desired,
    EventsBatch,
    Goodbye,
    Hello,
    Message,
    Reported,
    Status,
    TelemetryBatch,
    Welcome,
)
from wrale.fleet.sync.transport.base import Connection, ConnectionClosed, Refused
from wrale.fleet.sync.transport.mqtt import MqttDialer, parse_broker_url
from wrale.metal.core.client import InProcessMetalClient
from wrale.metal.core.engine import MetalCore
from wrale.metal.core.store import DeviceStore
from wrale.metal.hw.sim import SimBoard
from wrale.shared.central_settings import CentralSettings
from wrale.shared.clock import SystemClock
from wrale.shared.config import SimSettings
from wrale.user.api.app import create_app

pytestmark = pytest.mark.mqtt
WAIT_S = 15.0  # only guards against a hang; nothing here is timed
M = TypeVar("M", bound=Message)


# ----------------------------------------------------------------------------- the server


@dataclass
class Replica:
    app: Any
    http: httpx.AsyncClient
    admin: dict[str, str]

    @property
    def bridge(self) -> MqttBridge:
        bridge: MqttBridge = self.app.state.mqtt_bridge
        return bridge

    async def call(self, method: str, path: str, **kw: Any) -> Any:
        r = await self.http.request(method, f"/api/v1{path}", headers=self.admin, **kw)
        assert r.status_code < 300, r.text
        return r.json() if r.content else None


@asynccontextmanager
async def replica(db: Database, tmp_path: Path, mqtt_url: str) -> AsyncIterator[Replica]:
    """A central server in process with ``--mqtt-url``, its bridge subscribed."""
    settings = CentralSettings(
        data_dir=tmp_path,
        secret_key="test-secret-key-0123456789abcdef",
        admin_password=ADMIN_PASSWORD,
        dev=True,
        mqtt_url=mqtt_url,
    )
    app = create_app(settings, database=db, migrate=False)
    async with app.router.lifespan_context(app):
        await asyncio.wait_for(app.state.mqtt_bridge.ready.wait(), WAIT_S)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://central") as http:
            r = await http.post(
                "/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
            )
            assert r.status_code == 200, r.text
            yield Replica(app, http, {"Authorization": f"Bearer {r.json()['access_token']}"})


@pytest.fixture
async def central(database: Database, tmp_path: Path, mqtt_url: str) -> AsyncIterator[Replica]:
    async with replica(database, tmp_path, mqtt_url) as r:
        yield r


async def enroll(c: Replica, name: str | None = None) -> tuple[str, str]:
    """A new device: (device_id, secret)."""
    token = await c.call("POST", "/enrollment-tokens", json={"name": "t", "max_uses": 1})
    r = await c.http.post(
        "/api/v1/enroll", json={"token": token["token"], "name": name or uuid.uuid4().hex[:12]}
    )
    assert r.status_code == 201, r.text
    return r.json()["device_id"], r.json()["device_secret"]


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    """Wait until ``check()`` holds (what the server does after it answered)."""

    async def loop() -> None:
        while True:
            if await check():
                return
            await asyncio.sleep(0.02)

    await asyncio.wait_for(loop(), WAIT_S)


# ----------------------------------------------------------------------------- the device


@dataclass
class FakeDevice:
    """A device at the protocol level over the real dialer: the test sends each frame."""

    url: str
    device_id: str
    secret: str
    ca_file: Path | None = None
    conn: Connection | None = None
    welcome: Welcome | None = None
    other: list[Message] = field(default_factory=list)

    def dialer(self) -> MqttDialer:
        return MqttDialer(
            self.url, self.device_id, self.secret, ca_file=self.ca_file, session_expiry_s=60
        )

    async def connect(self, **hello: Any) -> Welcome:
        self.conn, self.welcome = await self.dialer()(
            Hello(device_id=self.device_id, agent_version="9.1.0", **hello)
        )
        return self.welcome

    async def send(self, msg: Message) -> None:
        assert self.conn is not None
        await self.conn.send(msg)

    async def expect(self, kind: type[M], pred: Callable[[M], bool] = lambda m: True) -> M:
        """The next ``kind`` message matching ``pred`` (others are kept in ``other``)."""
        for i, m in enumerate(self.other):
            if isinstance(m, kind) and pred(m):
                del self.other[i]
                return m
        assert self.conn is not None
        while True:
            m = await asyncio.wait_for(self.conn.recv(), WAIT_S)
            if isinstance(m, kind) and pred(m):
                return m
            self.other.append(m)

    async def recv(self) -> Message:
        """The next message off the link (``ConnectionClosed`` once it has ended)."""
        assert self.conn is not None
        return await asyncio.wait_for(self.conn.recv(), WAIT_S)

    async def ack(self, batch: TelemetryBatch | EventsBatch) -> Ack:
        await self.send(batch)
        stream = "telemetry" if isinstance(batch, TelemetryBatch) else "events"
        return await self.expect(Ack, lambda a: a.stream == stream)

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()
            self.conn = None


def points(n: int, start: float, metric: str = "cpu_temp_c") -> list[tuple[str, float, float]]:
    return [(metric, start + i, 40.0 + i) for i in range(n)]


async def points_stored(db: Database, device_id: str) -> int:
    """Every point ever stored for the device (the hourly rollups count each once)."""
    async with db.session() as s:
        num = await s.scalar(select(Device.num).where(Device.id == device_id))
        total = await s.scalar(
            select(func.coalesce(func.sum(TelemetryRollup1h.count), 0)).where(
                TelemetryRollup1h.device_num == num
            )
        )
    return int(total or 0)


async def status_of(c: Replica, device_id: str) -> str:
    return str((await c.call("GET", f"/devices/{device_id}"))["status"])


# ----------------------------------------------------------------------------- tests


async def test_hello_welcome_and_telemetry_stored_exactly_once_with_redelivery(
    central: Replica, database: Database, mqtt_url: str
) -> None:
    device_id, secret = await enroll(central)
    dev = FakeDevice(mqtt_url, device_id, secret)
    welcome = await dev.connect()
    assert welcome.device_id == device_id
    assert welcome.acked == {"telemetry": 0, "events": 0}
    desired = await dev.expect(Desired)  # composed from the fleet's policies, pushed at once
    assert desired.version >= 1
    assert "thermal" in desired.doc
    assert await status_of(central, device_id) == "online"

    now = time.time() - 60
    b1 = TelemetryBatch(seq=1, prev=0, points=points(3, now))
    b2 = TelemetryBatch(seq=2, prev=1, points=points(2, now + 10))
    assert await dev.ack(b1) == Ack(stream="telemetry", seq=1, session=welcome.session)
    assert (await dev.ack(b1)).seq == 1  # redelivered: acknowledged, not stored again
    gap = await dev.ack(TelemetryBatch(seq=3, prev=2, points=points(1, now + 20)))
    assert (gap.seq, gap.gap) == (1, True)  # batch 2 is missing: resend after 1
    assert (await dev.ack(b2)).seq == 2
    event = {"ts": now, "type": "FAN_FAILURE", "severity": "critical", "message": "stalled"}
    assert (await dev.ack(EventsBatch(seq=1, prev=0, events=[event]))).seq == 1
    await dev.send(Status(ts=now, mode="normal", outbox={"telemetry": 0}, live={"x_c": 1.0}))

    # a new connection: the welcome says what is stored; redelivery stores nothing
    await dev.close()
    welcome = await dev.connect(acked={"telemetry": 1})
    assert welcome.acked == {"telemetry": 2, "events": 1}
    assert (await dev.ack(b2)).seq == 2
    assert await points_stored(database, device_id) == 5
    series = await central.call(
        "GET", f"/devices/{device_id}/telemetry", params={"metric": "cpu_temp_c", "start": now - 1}
    )
    assert [p[1] for p in series["points"]] == [40.0, 41.0, 42.0, 40.0, 41.0]
    events = await central.call("GET", f"/devices/{device_id}/events")
    assert [e["type"] for e in events["items"]] == ["FAN_FAILURE"]

    # a clean close takes the device offline at once (so does the broker's will)
    await dev.close()

    async def offline() -> bool:
        return await status_of(central, device_id) == "offline"

    await eventually(offline)


async def test_desired_pushed_and_a_command_round_trip(central: Replica, mqtt_url: str) -> None:
    device_id, secret = await enroll(central)
    dev = FakeDevice(mqtt_url, device_id, secret)
    await dev.connect()
    first = await dev.expect(Desired)

    twin = await central.call("GET", f"/devices/{device_id}/twin")
    await central.call(
        "PATCH",
        f"/devices/{device_id}/twin",
        json={
            "version": twin["desired"]["version"],
            "desired": {"fan": {"override_pct": 60.0, "duration_s": 120.0}},
        },
    )
    pushed = await dev.expect(Desired, lambda d: d.version > first.version)
    assert pushed.doc["fan"]["override_pct"] == 60.0

    await dev.send(
        Reported(
            version=1, doc={"fan": {"override_pct": 60.0}}, applied_desired_version=pushed.version
        )
    )

    async def reported() -> bool:
        t = await central.call("GET", f"/devices/{device_id}/twin")
        return bool(t["reported"]["version"] == 1)

    await eventually(reported)

    made = await central.call(
        "POST", f"/devices/{device_id}/commands", json={"op": "set_fan", "args": {"percent": 70}}
    )
    cmd = await dev.expect(Command)
    assert (cmd.id, cmd.op, cmd.args["percent"]) == (made["id"], "set_fan", 70)

    async def sent() -> bool:  # marked once handed to the broker, just after it went out
        return bool((await central.call("GET", f"/commands/{cmd.id}"))["status"] == "sent")

    await eventually(sent)
    await dev.send(CommandResult(id=cmd.id, status="succeeded", result={"fan_pct": 70}))

    async def finished() -> bool:
        return bool((await central.call("GET", f"/commands/{cmd.id}"))["status"] == "succeeded")

    await eventually(finished)

    # a command for an offline device waits, queued, and goes out after the next hello
    await dev.close()

    async def offline() -> bool:
        return await status_of(central, device_id) == "offline"

    await eventually(offline)
    waiting = await central.call(
        "POST", f"/devices/{device_id}/commands", json={"op": "run_diag", "args": {}}
    )
    assert (await central.call("GET", f"/commands/{waiting['id']}"))["status"] == "queued"
    await dev.connect(desired_version=pushed.version)
    assert (await dev.expect(Command)).id == waiting["id"]

    async def waiting_sent() -> bool:
        c = await central.call("GET", f"/commands/{waiting['id']}")
        return bool(c["status"] == "sent")

    await eventually(waiting_sent)
    await dev.close()


async def test_a_revoked_credential_ends_the_session_and_is_refused(
    central: Replica, mqtt_url: str
) -> None:
    device_id, secret = await enroll(central)
    wrong = FakeDevice(mqtt_url, device_id, "wds_not-the-secret")
    with pytest.raises(Refused) as info:
        await wrong.connect()
    assert (info.value.goodbye.code, info.value.goodbye.retry) == ("unauthorized", False)

    dev = FakeDevice(mqtt_url, device_id, secret)
    await dev.connect()
    await central.call("POST", f"/devices/{device_id}/credentials/revoke")
    await central.bridge.sweep()  # what runs every heartbeat, and at its next message
    bye = await dev.expect(Goodbye)
    assert (bye.code, bye.retry) == ("revoked", False)
    with pytest.raises(ConnectionClosed):
        await dev.recv()
    with pytest.raises(Refused) as info:
        await dev.connect()
    assert (info.value.goodbye.code, info.value.goodbye.retry) == ("unauthorized", False)


async def test_a_quarantined_device_is_told_at_once_and_refused(
    central: Replica, mqtt_url: str
) -> None:
    device_id, secret = await enroll(central)
    dev = FakeDevice(mqtt_url, device_id, secret)
    await dev.connect()
    await central.call(
        "POST", f"/devices/{device_id}/quarantine", json={"reason": "case opened in rack 3"}
    )
    bye = await dev.expect(Goodbye)
    assert bye.code == "quarantined"
    assert "case opened" in bye.message
    with pytest.raises(ConnectionClosed):
        await dev.recv()
    with pytest.raises(Refused) as info:
        await dev.connect()
    assert info.value.goodbye.code == "quarantined"


async def test_frames_after_the_session_ended_ask_for_a_new_hello(
    central: Replica, database: Database, mqtt_url: str
) -> None:
    device_id, secret = await enroll(central)
    dev = FakeDevice(mqtt_url, device_id, secret)
    welcome = await dev.connect()
    # the session is closed elsewhere (the offline job, another replica) while the device
    # still talks on it; this replica re-checks its cached session at once
    async with database.session() as s:
        await s.execute(
            update(ChannelSession)
            .where(ChannelSession.id == welcome.session)
            .values(closed_at=time.time(), close_reason="offline")
        )
    central.bridge.recheck_s = 0.0
    await dev.send(TelemetryBatch(seq=1, prev=0, points=points(1, time.time() - 5)))
    bye = await dev.expect(Goodbye)
    assert bye.retry
    assert bye.session == welcome.session
    with pytest.raises(ConnectionClosed):
        await dev.recv()
    welcome = await dev.connect()  # a new hello opens a new session
    assert (await dev.ack(TelemetryBatch(seq=1, prev=0, points=points(1, time.time())))).seq == 1
    await dev.close()


async def test_two_replicas_split_the_devices_through_the_shared_subscription(
    database: Database, tmp_path: Path, mqtt_url: str
) -> None:
    other_db = Database(database.url)
    try:
        async with (
            replica(database, tmp_path / "a", mqtt_url) as a,
            replica(other_db, tmp_path / "b", mqtt_url) as b,
        ):
            device_id, secret = await enroll(a)
            dev = FakeDevice(mqtt_url, device_id, secret)
            await dev.connect()
            start = time.time() - 100
            for seq in range(1, 9):
                batch = TelemetryBatch(seq=seq, prev=seq - 1, points=points(2, start + 2 * seq))
                assert (await dev.ack(batch)).seq == seq
            await dev.close()
            # both replicas served this device's messages: the session opened on one was
            # attached on the other, from the database
            assert a.bridge.stats.groups > 0
            assert b.bridge.stats.groups > 0
            assert await points_stored(database, device_id) == 16
    finally:
        await other_db.dispose()


async def test_a_restarted_central_server_serves_the_open_session(
    database: Database, tmp_path: Path, mqtt_url: str
) -> None:
    """The device's broker connection outlives the central process: the next process
    finds its session in the database, without a new hello."""
    async with replica(database, tmp_path / "a", mqtt_url) as first:
        device_id, secret = await enroll(first)
        dev = FakeDevice(mqtt_url, device_id, secret)
        welcome = await dev.connect()
        assert (
            await dev.ack(TelemetryBatch(seq=1, prev=0, points=points(2, time.time() - 20)))
        ).seq == 1
    async with replica(database, tmp_path / "b", mqtt_url) as second:
        ack = await dev.ack(TelemetryBatch(seq=2, prev=1, points=points(2, time.time() - 9)))
        assert ack == Ack(stream="telemetry", seq=2, session=welcome.session)
        assert second.bridge.stats.groups == 1
        assert await status_of(second, device_id) == "online"
        await dev.close()
    assert await points_stored(database, device_id) == 4


async def test_the_bridge_reconnects_and_sessions_survive_a_broker_outage(
    database: Database, tmp_path: Path, mqtt_url: str
) -> None:
    port = parse_broker_url(mqtt_url).port
    proxy = CuttableProxy(target_port=port).start()
    try:
        via_proxy = mqtt_url.replace(f":{port}/", f":{proxy.port}/")
        async with replica(database, tmp_path, via_proxy) as central:
            device_id, secret = await enroll(central)
            dev = FakeDevice(mqtt_url, device_id, secret)
            await dev.connect()
            batch = TelemetryBatch(seq=1, prev=0, points=points(4, time.time() - 30))

            central.bridge.backoff = Backoff(base_s=0.01, cap_s=0.1)  # retry soon
            proxy.cut()  # the central server loses the broker; the device does not

            async def down() -> bool:
                return not central.bridge.ready.is_set()

            await eventually(down)
            await dev.send(batch)  # nobody subscribed: the broker drops it, nothing acks
            proxy.restore()
            await asyncio.wait_for(central.bridge.ready.wait(), WAIT_S)
            assert central.bridge.stats.reconnects >= 1
            # the agent resends what was not acknowledged; the session is still open
            assert (await dev.ack(batch)).seq == 1
            assert await points_stored(database, device_id) == 4
            await dev.close()
    finally:
        proxy.stop()


@pytest.fixture
def locked_broker(tmp_path: Path) -> Iterator[SecureBroker]:
    with secure_broker(tmp_path / "broker") as broker:
        yield broker


async def test_devices_authenticated_by_a_locked_down_broker(
    database: Database, tmp_path: Path, locked_broker: SecureBroker
) -> None:
    """TLS, no anonymous clients, the central server with its own account, each device with
    its id and secret, and an ACL that gives a device only its own topics."""
    async with replica(database, tmp_path / "central", locked_broker.url(central=True)) as c:
        device_id, secret = await enroll(c)
        dev = FakeDevice(locked_broker.url(), device_id, secret, ca_file=locked_broker.ca_file)
        with pytest.raises(Refused):  # not provisioned on the broker yet
            await dev.connect()
        locked_broker.add_user(device_id, secret)  # what the operator's provisioning does

        async def admitted() -> bool:  # once the broker has reloaded its password file
            try:
                await dev.connect()
            except Refused:
                return False
            return True

        await eventually(admitted)
        await dev.expect(Desired)
        batch = TelemetryBatch(seq=1, prev=0, points=points(3, time.time() - 10))
        assert (await dev.ack(batch)).seq == 1
        assert await points_stored(database, device_id) == 3
        await dev.close()


# ----------------------------------------------------------------------------- the real agent


@asynccontextmanager
async def running_agent(
    tmp_path: Path, mqtt_url: str, device_id: str, secret: str
) -> AsyncIterator[EdgeAgent]:
    """A simulated board (SimBoard + MetalCore) with the edge agent dialing over MQTT."""
    clock = SystemClock()
    board = SimBoard(SimSettings(seed=1, noise=False), clock=clock)
    core = MetalCore(board, store=DeviceStore(":memory:"), clock=clock, sample_interval_s=0.05)
    await core.start()
    settings = edge_settings(tmp_path / "edge", mqtt_url=mqtt_url)
    settings.state_dir.mkdir(parents=True)
    store = EdgeStore(settings.store_path())
    dialer = MqttDialer(mqtt_url, device_id, secret, session_expiry_s=60)
    agent = EdgeAgent(
        settings, InProcessMetalClient(core), store, dialer, clock=clock, device_id=device_id
    )
    stop = asyncio.Event()
    tasks = [asyncio.create_task(core.run(stop)), asyncio.create_task(agent.run(stop))]
    try:
        yield agent
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), WAIT_S)
        store.close()


async def test_the_edge_agent_over_mqtt(
    central: Replica, database: Database, mqtt_url: str, tmp_path: Path
) -> None:
    device_id, secret = await enroll(central)
    twin = await central.call("GET", f"/devices/{device_id}/twin")
    await central.call(
        "PATCH",
        f"/devices/{device_id}/twin",
        json={
            "version": twin["desired"]["version"],
            "desired": {"sampling": {"interval_s": 0.1, "report_interval_s": 1.0}},
        },
    )
    async with running_agent(tmp_path, mqtt_url, device_id, secret) as agent:

        async def reporting() -> bool:
            t = await central.call("GET", f"/devices/{device_id}/twin")
            return bool(t["applied_desired_version"] == t["desired"]["version"])

        async def telemetry_stored() -> bool:
            return await points_stored(database, device_id) > 0

        await eventually(reporting)  # desired pushed, applied, reported
        await eventually(telemetry_stored)
        assert await status_of(central, device_id) == "online"

        twin = await central.call("GET", f"/devices/{device_id}/twin")
        await central.call(
            "PATCH",
            f"/devices/{device_id}/twin",
            json={
                "version": twin["desired"]["version"],
                "desired": {"fan": {"override_pct": 80.0, "duration_s": 600.0}},
            },
        )
        await eventually(reporting)
        twin = await central.call("GET", f"/devices/{device_id}/twin")
        assert twin["reported"]["doc"]["fan"]["override_pct"] == 80.0

        made = await central.call(
            "POST",
            f"/devices/{device_id}/commands",
            json={"op": "set_fan", "args": {"percent": 90, "duration_s": 60}},
        )

        async def done() -> bool:
            c = await central.call("GET", f"/commands/{made['id']}")
            return c["status"] in ("succeeded", "failed", "refused")

        await eventually(done)
        assert (await central.call("GET", f"/commands/{made['id']}"))["status"] == "succeeded"
        assert agent.stats()["refused"] is None

    async def offline() -> bool:
        return await status_of(central, device_id) == "offline"

    await eventually(offline)  # the agent's clean close
    # every batch stored once: the rollups count no point twice
    async with database.session() as s:
        raw = await s.scalar(
            select(func.count())
            .select_from(TelemetryRaw)
            .where(
                TelemetryRaw.device_num
                == select(Device.num).where(Device.id == device_id).scalar_subquery()
            )
        )
    assert raw == await points_stored(database, device_id)
