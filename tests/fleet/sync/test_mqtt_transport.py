"""The device side of the MQTT transport (``MqttDialer`` / ``MqttConnection``).

Against the real Mosquitto (127.0.0.1:1883; each test on a topic root of its own) with the
server's side played by a scripted MQTT client, and against a private Mosquitto started
here with TLS, a password file and the per-device ACL that production brokers use.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import pytest

from tests.fleet.sync.secure_broker import CENTRAL_PASSWORD, SecureBroker, secure_broker
from tests.user.tcp_proxy import CuttableProxy
from wrale.fleet.sync.protocol import (
    Ack,
    Desired,
    Goodbye,
    Hello,
    Message,
    ProtocolError,
    TelemetryBatch,
    Welcome,
    decode,
    encode,
)
from wrale.fleet.sync.transport.base import Connection, ConnectionClosed, DialError, Refused
from wrale.fleet.sync.transport.mqtt import (
    BrokerUrl,
    MqttDialer,
    parse_broker_url,
)
from wrale.shared.errors import ConfigError

WAIT_S = 10.0  # only guards against a hang; nothing here is timed


# ----------------------------------------------------------------------------- URLs (pure


def test_broker_url_defaults_and_options() -> None:
    b = parse_broker_url("mqtt://127.0.0.1")
    assert (b.host, b.port, b.tls, b.root) == ("127.0.0.1", 1883, False, "wrale/v1")
    assert b.topic("dev1", "telemetry") == "wrale/v1/dev1/telemetry"
    assert b.split("wrale/v1/dev1/ack") == ("dev1", "ack")

    s = parse_broker_url("mqtts://central:p%40ss@broker.example/fleet/a?ca_file=/etc/ca.pem")
    assert (s.port, s.tls, s.root) == (8883, True, "fleet/a")
    assert (s.username, s.password, s.ca_file) == ("central", "p@ss", "/etc/ca.pem")
    assert "p@ss" not in s.redacted
    assert parse_broker_url("mqtt://h:1999/x?client_id=c1&insecure=1").client_id == "c1"
    assert parse_broker_url("mqtt://h/x?insecure=true").insecure


@pytest.mark.parametrize(
    ("topic", "where"),
    [
        ("wrale/v1/d1/hello", ("d1", "hello")),
        ("wrale/v1/d1", None),  # no kind
        ("wrale/v1/d1/a/b", None),  # too deep
        ("other/wrale/v1/d1/hello", None),  # another root
        ("wrale/v1//hello", None),  # empty device id
    ],
)
def test_topics_outside_the_root_are_not_ours(topic: str, where: tuple[str, str] | None) -> None:
    assert BrokerUrl("u", "h", 1883, False).split(topic) == where


@pytest.mark.parametrize(
    "url",
    [
        "http://broker",
        "mqtt://",
        "mqtt://broker:99999",
        "mqtt://broker/a/+/b",
        "mqtt://broker/a#",
        "mqtt://broker/x?color=red",
    ],
)
def test_bad_broker_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigError):
        parse_broker_url(url)


def test_plain_mqtt_only_to_loopback_or_when_insecure(caplog: pytest.LogCaptureFixture) -> None:
    MqttDialer("mqtt://127.0.0.1", "d1", "wds_x")
    MqttDialer("mqtt://localhost:1884/r", "d1", "wds_x")
    with pytest.raises(ConfigError, match="not encrypted"):
        MqttDialer("mqtt://broker.example", "d1", "wds_x")
    with caplog.at_level(logging.WARNING):
        MqttDialer("mqtt://broker.example", "d1", "wds_x", insecure=True)
    assert "INSECURE" in caplog.text
    MqttDialer("mqtts://broker.example", "d1", "wds_x")  # TLS: fine without the flag


def test_an_unusable_ca_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CA file"):
        MqttDialer("mqtts://broker.example", "d1", "wds_x", ca_file=tmp_path / "missing.pem")


# ----------------------------------------------------------------------------- the peer


@dataclass
class Received:
    device_id: str
    kind: str
    msg: Message


class Peer:
    """The server's side played by the test: a plain MQTT client on the device topics."""

    def __init__(self, client: aiomqtt.Client, broker: BrokerUrl) -> None:
        self.client = client
        self.broker = broker
        self._messages = client.messages

    async def next(self) -> Received:
        raw = await asyncio.wait_for(self._messages.__anext__(), WAIT_S)
        where = self.broker.split(raw.topic.value)
        assert where is not None, raw.topic.value
        assert isinstance(raw.payload, bytes)
        return Received(where[0], where[1], decode(raw.payload))

    async def send(self, device_id: str, msg: Message, kind: str | None = None) -> None:
        await self.client.publish(self.broker.topic(device_id, kind or msg.T), encode(msg), qos=1)


@pytest.fixture
async def peer(mqtt_url: str) -> AsyncIterator[Peer]:
    broker = parse_broker_url(mqtt_url)
    async with aiomqtt.Client(
        broker.host,
        broker.port,
        identifier=f"peer-{uuid.uuid4().hex[:8]}",
        protocol=aiomqtt.ProtocolVersion.V5,
    ) as client:
        await client.subscribe(
            [(broker.topic("+", k), 1) for k in ("hello", "telemetry", "status", "cmd_result")]
        )
        yield Peer(client, broker)


def dialer(url: str, device_id: str, **kw: object) -> MqttDialer:
    kw.setdefault("session_expiry_s", 60)  # the broker forgets test devices soon
    return MqttDialer(url, device_id, "wds_secret", **kw)  # type: ignore[arg-type]


def welcome_for(hello: Hello) -> Welcome:
    return Welcome(
        device_id=hello.device_id,
        server_version="test",
        acked={"telemetry": 4, "events": 0},
        session=hello.session,
    )


async def accept(peer: Peer) -> Hello:
    """Answer the next hello with a welcome (after a stale ack and a queued desired)."""
    got = await peer.next()
    assert isinstance(got.msg, Hello)
    await peer.send(got.device_id, Ack(stream="telemetry", seq=99, session="stale-session"))
    await peer.send(got.device_id, Desired(version=3, doc={"fan": {"override_pct": 40.0}}))
    await peer.send(got.device_id, welcome_for(got.msg))
    return got.msg


async def until_closed(conn: Connection) -> list[Message]:
    """What ``conn`` still delivers before it reports the link closed."""
    got: list[Message] = []
    while True:
        try:
            got.append(await asyncio.wait_for(conn.recv(), WAIT_S))
        except ConnectionClosed:
            return got


def dev() -> str:
    return f"dev-{uuid.uuid4().hex[:10]}"


# ----------------------------------------------------------------------------- over the broker


@pytest.mark.mqtt
async def test_handshake_carries_the_credential_and_matches_replies_to_the_session(
    mqtt_url: str, peer: Peer
) -> None:
    device_id = dev()
    server = asyncio.create_task(accept(peer))
    conn, welcome = await dialer(mqtt_url, device_id)(
        Hello(device_id=device_id, agent_version="1.0", acked={"telemetry": 4})
    )
    hello = await server
    assert hello.secret == "wds_secret"
    assert len(hello.session) == 16
    assert hello.session.isalnum()
    assert welcome.session == hello.session
    assert welcome.acked["telemetry"] == 4

    # the desired doc sent before the welcome is held and comes right after it; the stale
    # ack of another session never reaches the agent
    first = await asyncio.wait_for(conn.recv(), WAIT_S)
    assert first == Desired(version=3, doc={"fan": {"override_pct": 40.0}})

    await conn.send(TelemetryBatch(seq=5, prev=4, points=[("cpu_temp_c", 1.7e9, 48.5)]))
    got = await peer.next()
    assert (got.device_id, got.kind) == (device_id, "telemetry")
    assert isinstance(got.msg, TelemetryBatch)
    assert got.msg.seq == 5
    await peer.send(device_id, Ack(stream="telemetry", seq=5, session="another-one"))
    await peer.send(device_id, Ack(stream="telemetry", seq=5, session=hello.session))
    assert await asyncio.wait_for(conn.recv(), WAIT_S) == Ack(
        stream="telemetry", seq=5, session=hello.session
    )
    await conn.close()
    await conn.close()  # idempotent


@pytest.mark.mqtt
async def test_goodbye_instead_of_welcome_is_refused(mqtt_url: str, peer: Peer) -> None:
    device_id = dev()

    async def refuse() -> None:
        got = await peer.next()
        assert isinstance(got.msg, Hello)
        bye = Goodbye("unauthorized", "bad secret", retry=False, session=got.msg.session)
        await peer.send(device_id, bye)

    server = asyncio.create_task(refuse())
    with pytest.raises(Refused) as info:
        await dialer(mqtt_url, device_id)(Hello(device_id=device_id, agent_version="1.0"))
    await server
    assert info.value.goodbye.code == "unauthorized"
    assert info.value.goodbye.retry is False


@pytest.mark.mqtt
async def test_no_central_server_on_the_broker_is_a_dial_error(mqtt_url: str) -> None:
    device_id = dev()
    with pytest.raises(DialError, match="no answer"):
        await dialer(mqtt_url, device_id, handshake_timeout_s=0.3)(
            Hello(device_id=device_id, agent_version="1.0")
        )


async def test_an_unreachable_broker_is_a_dial_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    with pytest.raises(DialError):
        await dialer(f"mqtt://127.0.0.1:{port}", "d1")(Hello(device_id="d1", agent_version="1"))


@pytest.mark.mqtt
async def test_a_goodbye_mid_session_is_delivered_then_the_link_is_closed(
    mqtt_url: str, peer: Peer
) -> None:
    device_id = dev()
    server = asyncio.create_task(accept(peer))
    conn, _ = await dialer(mqtt_url, device_id)(Hello(device_id=device_id, agent_version="1"))
    hello = await server
    assert isinstance(await asyncio.wait_for(conn.recv(), WAIT_S), Desired)
    await peer.send(device_id, Goodbye("revoked", "credential revoked", False, "old-session"))
    await peer.send(device_id, Goodbye("revoked", "credential revoked", False, hello.session))
    bye = await asyncio.wait_for(conn.recv(), WAIT_S)
    assert isinstance(bye, Goodbye)
    assert bye.session == hello.session
    with pytest.raises(ConnectionClosed):
        await conn.recv()
    with pytest.raises(ConnectionClosed):
        await conn.send(TelemetryBatch(seq=1, prev=0, points=[]))


@pytest.mark.mqtt
async def test_a_device_does_not_send_server_messages(mqtt_url: str, peer: Peer) -> None:
    device_id = dev()
    server = asyncio.create_task(accept(peer))
    conn, welcome = await dialer(mqtt_url, device_id)(Hello(device_id=device_id, agent_version="1"))
    await server
    with pytest.raises(ProtocolError):
        await conn.send(welcome)
    await conn.close()


@pytest.mark.mqtt
async def test_clean_close_and_a_lost_link_both_tell_the_server(mqtt_url: str, peer: Peer) -> None:
    device_id = dev()
    server = asyncio.create_task(accept(peer))
    conn, _ = await dialer(mqtt_url, device_id)(Hello(device_id=device_id, agent_version="1"))
    hello = await server
    await conn.close()
    got = await peer.next()
    assert got.kind == "status"
    assert got.msg == Goodbye("closed", "agent closed", True, hello.session)

    # through a link that is cut: the broker publishes the device's will
    proxy = CuttableProxy(target_port=parse_broker_url(mqtt_url).port).start()
    try:
        via = mqtt_url.replace(":1883/", f":{proxy.port}/")
        server = asyncio.create_task(accept(peer))
        conn, _ = await dialer(via, device_id)(Hello(device_id=device_id, agent_version="1"))
        hello = await server
        proxy.cut()
        got = await peer.next()
        assert got.kind == "status"
        assert got.msg == Goodbye("lost", "connection lost", True, hello.session)
        # the device side sees the end of the link (after the desired it held)
        assert [m.T for m in await until_closed(conn)] == ["desired"]
    finally:
        proxy.stop()


@pytest.mark.mqtt
async def test_what_the_server_sends_while_the_device_is_offline_waits_for_it(
    mqtt_url: str, peer: Peer
) -> None:
    device_id = dev()
    server = asyncio.create_task(accept(peer))
    conn, _ = await dialer(mqtt_url, device_id)(Hello(device_id=device_id, agent_version="1"))
    await server
    await conn.close()
    await peer.next()  # its goodbye

    await peer.send(device_id, Desired(version=8, doc={"sampling": {"interval_s": 2.0}}))

    async def welcome_only() -> None:
        got = await peer.next()
        assert isinstance(got.msg, Hello)
        await peer.send(device_id, welcome_for(got.msg))

    server = asyncio.create_task(welcome_only())
    conn, _ = await dialer(mqtt_url, device_id)(Hello(device_id=device_id, agent_version="1"))
    await server
    # the first connection's desired v3 was consumed then; v8 waited in the session
    assert await asyncio.wait_for(conn.recv(), WAIT_S) == Desired(
        version=8, doc={"sampling": {"interval_s": 2.0}}
    )
    await conn.close()


# ----------------------------------------------------------------------------- TLS + ACL broker


@pytest.fixture
def locked_broker(tmp_path: Path) -> Iterator[SecureBroker]:
    users = {"dev-a": "wds_secret_a", "dev-b": "wds_secret_b"}
    with secure_broker(tmp_path / "broker", users) as broker:
        yield broker


@pytest.mark.mqtt
async def test_tls_and_per_device_passwords_on_a_locked_down_broker(
    locked_broker: SecureBroker,
) -> None:
    url = locked_broker.url()
    ca = locked_broker.ca_file
    broker = parse_broker_url(url)
    async with aiomqtt.Client(
        "localhost",
        locked_broker.port,
        identifier="central-peer",
        username="central",
        password=CENTRAL_PASSWORD,
        protocol=aiomqtt.ProtocolVersion.V5,
        tls_params=aiomqtt.TLSParameters(ca_certs=str(ca)),
    ) as client:
        await client.subscribe(broker.topic("+", "hello"), qos=1)
        peer = Peer(client, broker)

        server = asyncio.create_task(accept(peer))
        conn, welcome = await MqttDialer(url, "dev-a", "wds_secret_a", ca_file=ca)(
            Hello(device_id="dev-a", agent_version="1")
        )
        assert welcome.device_id == "dev-a"
        assert (await server).secret == "wds_secret_a"
        await conn.close()

        # the ACL keeps devices apart: dev-a cannot read dev-b's hello (and its secret)
        async with aiomqtt.Client(
            "localhost",
            locked_broker.port,
            identifier="dev-a",
            username="dev-a",
            password="wds_secret_a",
            protocol=aiomqtt.ProtocolVersion.V5,
            tls_params=aiomqtt.TLSParameters(ca_certs=str(ca)),
        ) as snoop:
            await snoop.subscribe(broker.topic("+", "hello"), qos=1)
            server = asyncio.create_task(accept(peer))
            conn, _ = await MqttDialer(url, "dev-b", "wds_secret_b", ca_file=ca)(
                Hello(device_id="dev-b", agent_version="1")
            )
            await server  # dev-b's hello has reached the central side...
            await snoop.publish(broker.topic("dev-a", "hello"), b"marker", qos=1)
            first = await asyncio.wait_for(snoop.messages.__anext__(), WAIT_S)
            assert first.topic.value == broker.topic("dev-a", "hello")  # ...never dev-a
            await conn.close()

    # a wrong (revoked, rotated) secret is refused by the broker itself
    with pytest.raises(Refused) as info:
        await MqttDialer(url, "dev-a", "wds_old_secret", ca_file=ca)(
            Hello(device_id="dev-a", agent_version="1")
        )
    assert info.value.goodbye.code == "unauthorized"
    assert not info.value.goodbye.retry
    # the server certificate is verified: without the fleet's CA it is not trusted
    with pytest.raises(DialError):
        await MqttDialer(url, "dev-a", "wds_secret_a")(Hello(device_id="dev-a", agent_version="1"))
