"""The device channel over MQTT: topic names, broker URLs, and the device side's ``Dialer``.

Each message travels on its own topic under ``<root>/<device_id>/`` (root ``wrale/v1``, or
the path of the broker URL): device → server ``hello telemetry events reported cmd_result
status``, server → device ``welcome ack desired cmd goodbye``; all QoS 1. The device connects
with client id and username = its device id and password = its secret (so a broker with a
password file and ``pattern readwrite wrale/v1/%u/#`` keeps devices apart), keeps a
persistent session, and ignores welcome / ack / goodbye of other connections (they carry the
``Hello.session`` they answer). The central side is ``fleet/brain/channel/mqtt_bridge.py``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import secrets
import socket
import ssl
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qs, unquote, urlsplit

from wrale.fleet.sync.protocol import (
    Ack,
    CommandResult,
    EventsBatch,
    Goodbye,
    Hello,
    Message,
    ProtocolError,
    Reported,
    Status,
    TelemetryBatch,
    Welcome,
    decode,
    encode,
)
from wrale.fleet.sync.transport.base import (
    Connection,
    ConnectionClosed,
    DialError,
    Refused,
    handshake,
    require_secure,
)
from wrale.shared.errors import ConfigError

if TYPE_CHECKING:
    import aiomqtt

log = logging.getLogger(__name__)

DEFAULT_ROOT: Final = "wrale/v1"
QOS: Final = 1
UP: Final = ("hello", "telemetry", "events", "reported", "cmd_result", "status")
"""Topics a device publishes on (device → server)."""
DOWN: Final = ("welcome", "ack", "desired", "cmd", "goodbye")
"""Topics a device subscribes to (server → device)."""
UP_TYPES: Final[dict[str, tuple[type[Message], ...]]] = {
    "hello": (Hello,),
    "telemetry": (TelemetryBatch,),
    "events": (EventsBatch,),
    "reported": (Reported,),
    "cmd_result": (CommandResult,),
    "status": (Status, Goodbye),  # a Goodbye here is the device's will / clean close
}
LOST: Final = "lost"  # Goodbye.code of the will message: the broker lost the device
CLOSED: Final = "closed"  # Goodbye.code the device sends when it closes cleanly
NOT_AUTHORIZED: Final = frozenset({4, 5, 0x86, 0x87})  # CONNACK: bad credentials / not allowed
# paho leaves Nagle's algorithm on: a small frame would wait ~40 ms for the peer's delayed ACK
SOCKET_OPTIONS: Final = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)
_SESSION_BOUND: Final = (Welcome, Ack, Goodbye)  # replies that carry the hello's session


@dataclass(frozen=True, slots=True)
class BrokerUrl:
    """``mqtt[s]://[user[:password]@]host[:port][/topic/root][?ca_file=…&client_id=…&insecure=1]``."""

    url: str
    host: str
    port: int
    tls: bool
    root: str = DEFAULT_ROOT
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    client_id: str | None = None
    insecure: bool = False

    def topic(self, device_id: str, kind: str) -> str:
        return f"{self.root}/{device_id}/{kind}"

    def split(self, topic: str) -> tuple[str, str] | None:
        """``(device_id, kind)`` of a topic under this root, or None."""
        head, sep, rest = topic.partition(self.root + "/")
        if head or not sep:
            return None
        device_id, slash, kind = rest.partition("/")
        if not slash or not device_id or "/" in kind:
            return None
        return device_id, kind

    @property
    def redacted(self) -> str:
        """The URL without its password (for logs)."""
        auth = f"{self.username}@" if self.username else ""
        scheme = "mqtts" if self.tls else "mqtt"
        return f"{scheme}://{auth}{self.host}:{self.port}/{self.root}"


def parse_broker_url(url: str) -> BrokerUrl:
    """Parse an MQTT broker URL; ``ConfigError`` says what is wrong."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("mqtt", "mqtts"):
        raise ConfigError(f"MQTT broker URL {url!r} must start with mqtt:// or mqtts://")
    if not parts.hostname:
        raise ConfigError(f"MQTT broker URL {url!r} has no host")
    try:
        port = parts.port or (8883 if scheme == "mqtts" else 1883)
    except ValueError:
        raise ConfigError(f"MQTT broker URL {url!r} has a bad port") from None
    root = parts.path.strip("/") or DEFAULT_ROOT
    if "#" in url or any(c in root for c in "+%\x00") or "//" in root:
        raise ConfigError(f"MQTT topic root {root!r} must not hold wildcards or empty levels")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(query) - {"ca_file", "client_id", "insecure"}
    if unknown:
        raise ConfigError(f"MQTT broker URL {url!r}: unknown option(s) {sorted(unknown)}")
    return BrokerUrl(
        url=url,
        host=parts.hostname,
        port=port,
        tls=scheme == "mqtts",
        root=root,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        ca_file=query.get("ca_file"),
        client_id=query.get("client_id"),
        insecure=query.get("insecure", "").lower() in ("1", "true", "yes"),
    )


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """Server-certificate and host-name verification on; ``ca_file`` for a private CA."""
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"MQTT CA file {ca_file!r} cannot be used: {exc}") from None


def connect_properties(**values: Any) -> Any:
    """MQTT 5 CONNECT properties (e.g. ``SessionExpiryInterval=3600``)."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    for name, value in values.items():
        setattr(props, name, value)
    return props


def connect_error(exc: Exception) -> Exception:
    """A broker's refusal as the agent understands it: bad credentials are ``Refused``
    (``unauthorized``, do not retry), anything else a ``DialError``."""
    from aiomqtt.exceptions import MqttConnectError

    value = getattr(exc.rc, "value", exc.rc) if isinstance(exc, MqttConnectError) else None
    if isinstance(value, int) and value in NOT_AUTHORIZED:
        return Refused(
            Goodbye(code="unauthorized", message=f"the MQTT broker refused: {exc}", retry=False)
        )
    return DialError(f"MQTT broker: {exc}")


# ----------------------------------------------------------------------------- device side


class MqttConnection:
    """One session of a device over an MQTT client (a ``Connection``).

    ``recv`` returns server messages of this session in order: welcome / ack / goodbye of
    another session (left in the persistent session's queue) are dropped; desired and cmd
    that arrive before the welcome are held and returned after it.
    """

    def __init__(self, client: aiomqtt.Client, broker: BrokerUrl, hello: Hello) -> None:
        self._client = client
        self._broker = broker
        self._device_id = hello.device_id
        self.session = hello.session
        self._messages = client.messages
        self._held: collections.deque[Message] = collections.deque()
        self._welcomed = False
        self._closed = False
        self._goodbye: Goodbye | None = None

    async def send(self, msg: Message) -> None:
        kind = "status" if isinstance(msg, Goodbye) else msg.T
        if kind not in UP_TYPES or not isinstance(msg, UP_TYPES[kind]):
            raise ProtocolError(f"a device does not send {msg.T!r}")
        if self._closed:
            raise ConnectionClosed("connection closed")
        payload = encode(msg)
        import aiomqtt

        try:
            await self._client.publish(self._broker.topic(self._device_id, kind), payload, qos=QOS)
        except aiomqtt.MqttError as exc:
            await self._shut()
            raise ConnectionClosed(f"MQTT: {exc}") from None

    async def recv(self) -> Message:
        while True:
            if self._welcomed and self._held:
                return self._held.popleft()
            if self._goodbye is not None or self._closed:
                await self._shut()
                raise ConnectionClosed(
                    f"goodbye: {self._goodbye.code}" if self._goodbye else "connection closed"
                )
            msg = await self._next()
            if msg is None:
                continue
            if isinstance(msg, Welcome):
                self._welcomed = True
                return msg
            if isinstance(msg, Goodbye):
                self._goodbye = msg  # delivered now; the next recv raises ConnectionClosed
                return msg
            if not self._welcomed:
                self._held.append(msg)  # a desired / cmd queued by the broker while offline
                continue
            return msg

    async def _next(self) -> Message | None:
        """The next message of this session, None for one that is not (or not valid)."""
        import aiomqtt

        try:
            raw = await self._messages.__anext__()
        except aiomqtt.MqttError as exc:
            await self._shut()
            raise ConnectionClosed(f"MQTT: {exc}") from None
        where = self._broker.split(raw.topic.value)
        if where is None or where[0] != self._device_id or where[1] not in DOWN:
            log.debug("ignoring a message on %s", raw.topic.value)
            return None
        payload = raw.payload if isinstance(raw.payload, bytes | str) else b""
        msg = decode(payload)  # ProtocolError: the link stays usable, the caller decides
        if where[1] != msg.T:
            raise ProtocolError(f"a {msg.T!r} frame on the {where[1]!r} topic")
        if isinstance(msg, _SESSION_BOUND) and msg.session != self.session:
            log.debug("dropping a %s of another session", msg.T)
            return None
        return msg

    async def close(self) -> None:
        """Say goodbye (the central server closes the session at once) and disconnect."""
        if self._closed:
            return
        with contextlib.suppress(Exception):
            bye = Goodbye(code=CLOSED, message="agent closed", session=self.session)
            async with asyncio.timeout(2.0):
                await self._client.publish(
                    self._broker.topic(self._device_id, "status"), encode(bye), qos=QOS
                )
        await self._shut()

    async def _shut(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5.0):
                await self._client.__aexit__(None, None, None)


class MqttDialer:
    """A ``Dialer`` over an MQTT broker for the device that owns ``secret``.

    The broker account is username = device id, password = ``secret``; ``hello_secret``
    also puts the secret in the hello (only for a legacy anonymous broker, where the
    central has no other proof: anyone subscribed on the broker can read it). ``url`` is
    ``mqtts://host[:8883][/root]`` (server certificate verified, ``ca_file`` for a private
    CA) or ``mqtt://`` to loopback, or anywhere with ``insecure`` (logs a warning).
    """

    def __init__(
        self,
        url: str,
        device_id: str,
        secret: str,
        *,
        ca_file: Path | str | None = None,
        insecure: bool = False,
        handshake_timeout_s: float = 10.0,
        keepalive_s: int = 30,
        session_expiry_s: int = 7 * 86_400,
        max_queued: int = 1000,
        hello_secret: bool = True,
    ) -> None:
        self.broker = parse_broker_url(url)
        require_secure(url, insecure=insecure or self.broker.insecure, what="the MQTT broker")
        ca = str(ca_file) if ca_file is not None else self.broker.ca_file
        self._tls = tls_context(ca) if self.broker.tls else None
        self.device_id = device_id
        self._secret = secret
        self.handshake_timeout_s = handshake_timeout_s
        self.keepalive_s = keepalive_s
        self.session_expiry_s = session_expiry_s
        self.max_queued = max_queued
        self.hello_secret = hello_secret

    async def __call__(self, hello: Hello) -> tuple[Connection, Welcome]:
        import aiomqtt

        device_id = self.device_id
        hello = replace(
            hello,
            device_id=device_id,
            secret=self._secret if self.hello_secret else None,
            session=secrets.token_hex(8),  # fresh per connection: replies are matched to it
        )
        will = Goodbye(code=LOST, message="connection lost", session=hello.session)
        client = aiomqtt.Client(
            self.broker.host,
            self.broker.port,
            identifier=device_id,
            username=device_id,
            password=self._secret,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=connect_properties(SessionExpiryInterval=self.session_expiry_s),
            tls_context=self._tls,
            will=aiomqtt.Will(self.broker.topic(device_id, "status"), encode(will), qos=QOS),
            keepalive=self.keepalive_s,
            timeout=self.handshake_timeout_s,
            max_queued_incoming_messages=self.max_queued,
            socket_options=SOCKET_OPTIONS,
        )
        try:
            await client.__aenter__()
        except aiomqtt.MqttError as exc:
            raise connect_error(exc) from None
        conn = MqttConnection(client, self.broker, hello)
        try:
            await client.subscribe([(self.broker.topic(device_id, kind), QOS) for kind in DOWN])
        except aiomqtt.MqttError as exc:
            await conn.close()
            raise DialError(f"MQTT subscribe failed: {exc}") from None
        welcome = await handshake(conn, hello, self.handshake_timeout_s)
        return conn, welcome
