"""Boards authenticated by the broker: a real Mosquitto with the dynamic-security plugin
(started here), a real central (its bridge and its broker accounts), boards dialing with
the real ``MqttDialer``. A board reaches its own topics only; revoked, wrong and anonymous
connections are refused; the hello carries no secret."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest

from tests.conftest import ADMIN_PASSWORD
from tests.fleet.brain.mqtt_dynsec_broker import (
    ADMIN_PASSWORD as BROKER_ADMIN_PASSWORD,
)
from tests.fleet.brain.mqtt_dynsec_broker import (
    ADMIN_USER,
    DynsecBroker,
    dynsec_broker,
)
from tests.user.api.test_mqtt_channel import WAIT_S, FakeDevice, eventually, points_stored
from wrale.fleet.brain.channel.broker_accounts import BrokerAccounts
from wrale.fleet.brain.db import Database
from wrale.fleet.sync.protocol import Ack, Hello, TelemetryBatch, decode, encode
from wrale.fleet.sync.transport.base import ConnectionClosed, DialError, Refused
from wrale.fleet.sync.transport.mqtt import MqttDialer
from wrale.shared.central_settings import CentralSettings
from wrale.user.api.app import create_app

pytestmark = pytest.mark.mqtt
BRIDGE_USER, BRIDGE_PASSWORD = "central", "central-bridge-password"
NOT_AUTHORIZED = 0x87
ROOT = "wrale/v1"


@dataclass
class Fleet:
    broker: DynsecBroker
    app: Any
    http: httpx.AsyncClient
    admin: dict[str, str]
    db: Database

    @property
    def accounts(self) -> BrokerAccounts:
        accounts: BrokerAccounts = self.app.state.broker_accounts
        return accounts

    async def call(self, method: str, path: str, **kw: Any) -> Any:
        r = await self.http.request(method, f"/api/v1{path}", headers=self.admin, **kw)
        assert r.status_code < 300, r.text
        return r.json() if r.content else None

    async def enroll(self) -> tuple[str, str]:
        token = await self.call("POST", "/enrollment-tokens", json={"name": "t", "max_uses": 1})
        r = await self.http.post(
            "/api/v1/enroll", json={"token": token["token"], "name": uuid.uuid4().hex[:12]}
        )
        assert r.status_code == 201, r.text
        assert r.json()["mqtt_broker_auth"] is True  # the board is told: no secret in hello
        return r.json()["device_id"], r.json()["device_secret"]

    def device(self, device_id: str, secret: str) -> FakeDevice:
        return BoardDevice(self.broker.url(), device_id, secret)


@dataclass
class BoardDevice(FakeDevice):
    """A board as it dials with broker accounts: its hello carries no secret."""

    handshake_timeout_s: float = 10.0

    def dialer(self) -> MqttDialer:
        return MqttDialer(
            self.url,
            self.device_id,
            self.secret,
            session_expiry_s=60,
            hello_secret=False,
            handshake_timeout_s=self.handshake_timeout_s,
        )


@asynccontextmanager
async def fleet(database: Database, tmp_path: Path) -> AsyncIterator[Fleet]:
    with dynsec_broker(tmp_path / "broker") as broker:
        settings = CentralSettings(
            data_dir=tmp_path,
            secret_key="test-secret-key-0123456789abcdef",
            admin_password=ADMIN_PASSWORD,
            dev=True,
            mqtt_url=broker.url(BRIDGE_USER, BRIDGE_PASSWORD),
            mqtt_broker_auth=True,
            mqtt_admin_username=ADMIN_USER,
            mqtt_admin_password=BROKER_ADMIN_PASSWORD,
        )
        assert settings.mqtt_hello_secret is False  # off by default with broker accounts
        app = create_app(settings, database=database, migrate=False)
        async with app.router.lifespan_context(app):
            # the central makes its own bridge account on the broker, then the bridge is up
            await asyncio.wait_for(app.state.mqtt_bridge.ready.wait(), WAIT_S)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://central") as http:
                r = await http.post(
                    "/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
                )
                assert r.status_code == 200, r.text
                admin = {"Authorization": f"Bearer {r.json()['access_token']}"}
                yield Fleet(broker, app, http, admin, database)


@pytest.fixture
async def board_fleet(database: Database, tmp_path: Path) -> AsyncIterator[Fleet]:
    async with fleet(database, tmp_path) as f:
        yield f


def raw_client(f: Fleet, username: str | None, password: str | None) -> aiomqtt.Client:
    """A hand-driven MQTT 5 connection (another client id than the board's own)."""
    return aiomqtt.Client(
        "127.0.0.1",
        f.broker.port,
        identifier=f"raw-{uuid.uuid4().hex[:8]}",
        username=username,
        password=password,
        protocol=aiomqtt.ProtocolVersion.V5,
        timeout=WAIT_S,
    )


async def publish_code(client: aiomqtt.Client, topic: str, payload: bytes) -> int:
    """Publish at QoS 1 and return the PUBACK's reason code (aiomqtt drops it)."""
    codes: list[int] = []
    paho = client._client
    original = paho.on_publish

    def spy(c: Any, userdata: Any, mid: int, reason: Any, props: Any = None) -> None:
        codes.append(int(getattr(reason, "value", reason)))
        original(c, userdata, mid, reason, props)

    paho.on_publish = spy
    try:
        await client.publish(topic, payload, qos=1)
    finally:
        paho.on_publish = original
    assert codes, "no PUBACK"
    return codes[-1]


async def refused(f: Fleet, device_id: str, secret: str) -> bool:
    try:
        dev = f.device(device_id, secret)
        await dev.connect()
    except Refused:
        return True
    await dev.close()
    return False


# ----------------------------------------------------------------------------- tests


async def test_a_board_reaches_its_own_topics_only(board_fleet: Fleet) -> None:
    f = board_fleet
    (a_id, a_secret), (b_id, b_secret) = await f.enroll(), await f.enroll()
    root = ROOT

    # A: hello without a secret (the broker authenticated it), telemetry stored
    a = f.device(a_id, a_secret)
    welcome = await a.connect()
    assert welcome.device_id == a_id
    now = time.time() - 60
    ack = await a.ack(TelemetryBatch(seq=1, prev=0, points=[("cpu_temp_c", now, 41.5)]))
    assert ack == Ack(stream="telemetry", seq=1, session=welcome.session)
    assert await points_stored(f.db, a_id) == 1

    # B is online: what A forges for B would land in B's open session
    b = f.device(b_id, b_secret)
    await b.connect()
    async with raw_client(f, a_id, a_secret) as evil:
        # A cannot subscribe to B's downstream topics (nor to everything)
        for topic in (f"{root}/{b_id}/cmd", f"{root}/{b_id}/desired", f"{root}/#"):
            (code,) = await evil.subscribe(topic, qos=1)
            assert code.value >= 0x80, (topic, code)
        # A cannot publish on B's topics: the broker says so in the PUBACK
        forged = TelemetryBatch(seq=1, prev=0, points=[("cpu_temp_c", now, 99.0)])
        assert await publish_code(evil, f"{root}/{b_id}/telemetry", encode(forged)) == (
            NOT_AUTHORIZED
        )
        hello = Hello(device_id=b_id, agent_version="6.6.6", session="forged")
        assert await publish_code(evil, f"{root}/{b_id}/hello", encode(hello)) == NOT_AUTHORIZED
        # nor on a topic of its own that the protocol does not have
        assert await publish_code(evil, f"{root}/{a_id}/cmd", b"{}") == NOT_AUTHORIZED

    # B's own first batch is new to the central: nothing of A's was stored for B
    own = TelemetryBatch(seq=1, prev=0, points=[("cpu_temp_c", now, 42.0)])
    assert (await b.ack(own)).seq == 1
    series = await f.call(
        "GET", f"/devices/{b_id}/telemetry", params={"metric": "cpu_temp_c", "start": now - 1}
    )
    assert [p[1] for p in series["points"]] == [42.0]
    await a.close()
    await b.close()


async def test_the_hello_carries_no_secret(board_fleet: Fleet) -> None:
    """What the bridge's account sees on the hello topic (the only account that may)."""
    f = board_fleet
    device_id, secret = await f.enroll()
    async with raw_client(f, BRIDGE_USER, BRIDGE_PASSWORD) as listener:
        await listener.subscribe(f"{ROOT}/{device_id}/hello", qos=1)
        dev = f.device(device_id, secret)
        await dev.connect()
        msg = await asyncio.wait_for(anext(aiter(listener.messages)), WAIT_S)
        payload = bytes(msg.payload) if isinstance(msg.payload, bytes | bytearray) else b""
        assert secret.encode() not in payload
        hello = decode(payload)
        assert isinstance(hello, Hello)
        assert hello.secret is None
        await dev.close()


async def test_revoked_wrong_and_anonymous_connections_are_refused(board_fleet: Fleet) -> None:
    f = board_fleet
    device_id, secret = await f.enroll()
    assert not await refused(f, device_id, secret)
    assert await refused(f, device_id, secret + "x")  # wrong password
    assert await refused(f, uuid.uuid4().hex, secret)  # someone else's name
    with pytest.raises(aiomqtt.MqttError):  # anonymous
        async with raw_client(f, None, None):
            pass

    await f.call("POST", f"/devices/{device_id}/credentials/revoke")
    assert await refused(f, device_id, secret)
    # the reconcile loop keeps it so: its credential is no longer valid
    assert (await f.accounts.reconcile(f.db))["enabled"] == 0
    assert await refused(f, device_id, secret)


async def test_rotation_rekeys_and_quarantine_and_deletion_bar_the_board(
    board_fleet: Fleet,
) -> None:
    f = board_fleet
    device_id, old = await f.enroll()
    rotated = await f.call("POST", f"/devices/{device_id}/credentials/rotate")
    new = rotated["device_secret"]
    assert await refused(f, device_id, old)
    assert not await refused(f, device_id, new)

    await f.call("POST", f"/devices/{device_id}/quarantine", json={"reason": "tamper"})

    async def barred() -> bool:
        """Refused at connect. A dial that races the bar (the broker let it in just before
        the account was disabled, then dropped it or its hello went unanswered) is no
        verdict: dial again, briefly, until the answer is a refusal."""
        dev = BoardDevice(f.broker.url(), device_id, new, handshake_timeout_s=2.0)
        try:
            await dev.connect()
        except Refused:
            return True
        except (DialError, ConnectionClosed):
            return False
        await dev.close()
        return False

    await eventually(barred)  # on the status event, after the commit
    await f.call("POST", f"/devices/{device_id}/release")
    await f.accounts.reconcile(f.db)  # what the release event also starts
    assert not await refused(f, device_id, new)

    await f.call("DELETE", f"/devices/{device_id}")
    assert await refused(f, device_id, new)
    assert device_id not in {c["username"] for c in await f.accounts.clients()}


async def test_a_restarted_central_finds_its_accounts_in_place(board_fleet: Fleet) -> None:
    """Setting up the central's role and account again (every start) changes nothing."""
    f = board_fleet
    device_id, secret = await f.enroll()
    await f.accounts.ensure_central(BRIDGE_PASSWORD)
    await f.accounts.ensure_central(BRIDGE_PASSWORD)
    assert await f.accounts.reconcile(f.db) == {"disabled": 0, "enabled": 0, "deleted": 0}
    dev = f.device(device_id, secret)
    await dev.connect()  # the bridge still answers
    await dev.close()


async def test_the_reconcile_loop_removes_accounts_of_unknown_devices(
    board_fleet: Fleet,
) -> None:
    """A broker account made for an enrollment that never committed goes away."""
    f = board_fleet
    ghost = uuid.uuid4().hex
    await f.accounts.provision(ghost, "wds_ghost-secret-0123456789", uuid.uuid4().hex)
    assert ghost in {c["username"] for c in await f.accounts.clients()}
    done = await f.accounts.reconcile(f.db)
    assert done["deleted"] == 1
    assert ghost not in {c["username"] for c in await f.accounts.clients()}


def test_broker_accounts_need_the_admin_account() -> None:
    with pytest.raises(ValueError, match="WRALE_MQTT_ADMIN_USERNAME"):
        CentralSettings(mqtt_url="mqtt://127.0.0.1/wrale/v1", mqtt_broker_auth=True)
    legacy = CentralSettings(mqtt_url="mqtt://127.0.0.1/wrale/v1")
    assert legacy.mqtt_hello_secret is True  # an anonymous broker: the old way, explicit
    assert json.dumps(legacy.mqtt_broker_auth) == "false"
