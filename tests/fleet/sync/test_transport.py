"""Transports of the device channel: the in-memory pair and network (used by the agent
tests), the shared handshake, URL security, and the WebSocket dialer against a real
WebSocket server on loopback."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from wrale.fleet.sync.protocol import (
    Ack,
    Goodbye,
    Hello,
    ProtocolError,
    Status,
    Welcome,
    decode,
    encode,
)
from wrale.fleet.sync.transport.base import (
    Connection,
    ConnectionClosed,
    DialError,
    Refused,
    is_loopback,
    require_secure,
)
from wrale.fleet.sync.transport.memory import MemoryNetwork, memory_pair
from wrale.fleet.sync.transport.websocket import WebSocketDialer, edge_ws_url
from wrale.shared.errors import ConfigError

HELLO = Hello(device_id="dev-1", agent_version="0.1.0", acked={"telemetry": 3}, secret="s")
TIMEOUT_S = 10.0


# ----------------------------------------------------------------------------- memory


async def test_memory_pair_carries_messages_through_the_codec() -> None:
    a, b = memory_pair()
    await a.send(Status(ts=1.0, live={"cpu_temp_c": 50.5}))
    got = await b.recv()
    assert got == Status(ts=1.0, live={"cpu_temp_c": 50.5})
    with pytest.raises(ProtocolError):
        await a.send(Status(ts=float("nan")))  # JSON has no NaN: refused before the wire


async def test_a_clean_close_delivers_what_was_sent_first() -> None:
    a, b = memory_pair()
    await a.send(Ack("telemetry", 1))
    await a.close()
    assert await b.recv() == Ack("telemetry", 1)
    with pytest.raises(ConnectionClosed):
        await b.recv()
    with pytest.raises(ConnectionClosed):
        await a.send(Ack("telemetry", 2))


async def test_a_cut_loses_frames_in_flight_and_wakes_both_ends() -> None:
    a, b = memory_pair()
    await a.send(Ack("telemetry", 1))
    pending = asyncio.create_task(a.recv())
    await asyncio.sleep(0)
    a.cut()
    with pytest.raises(ConnectionClosed):
        await b.recv()  # the ack in flight was lost
    with pytest.raises(ConnectionClosed):
        await pending


async def test_memory_network_dials_handshakes_and_refuses_when_down() -> None:
    async def serve_once(conn: Connection) -> None:
        hello = await conn.recv()
        assert isinstance(hello, Hello)
        if hello.device_id == "banned":
            await conn.send(Goodbye("revoked", "credential revoked", retry=False))
            return
        await conn.send(Welcome(hello.device_id, "test", acked={"telemetry": 2}))
        await conn.recv()

    net = MemoryNetwork(serve_once)
    conn, welcome = await net.dial(HELLO)
    assert welcome.acked == {"telemetry": 2}
    with pytest.raises(Refused) as refused:
        await net.dial(Hello(device_id="banned", agent_version="0.1.0"))
    assert refused.value.goodbye.code == "revoked"
    net.down()
    with pytest.raises(ConnectionClosed):
        await conn.recv()
    with pytest.raises(DialError):
        await net.dial(HELLO)
    net.up()
    await net.dial(HELLO)
    await net.aclose()


async def test_a_silent_or_confused_server_fails_the_handshake() -> None:
    async def silent(conn: Connection) -> None:
        await conn.recv()
        await asyncio.Event().wait()

    async def confused(conn: Connection) -> None:
        await conn.recv()
        await conn.send(Ack("telemetry", 0))

    for serve_fn in (silent, confused):
        net = MemoryNetwork(serve_fn, handshake_timeout_s=0.05)
        with pytest.raises(DialError):
            await net.dial(HELLO)
        await net.aclose()


# ----------------------------------------------------------------------------- URL security


def test_loopback_names() -> None:
    assert all(is_loopback(h) for h in ("localhost", "127.0.0.1", "127.9.9.9", "::1", "[::1]"))
    assert not any(is_loopback(h) for h in ("example.com", "10.0.0.1", "", None, "::"))


def test_plain_text_only_to_loopback_or_when_insecure(caplog: pytest.LogCaptureFixture) -> None:
    assert require_secure("https://central.example", insecure=False) is True
    assert require_secure("wss://central.example/api", insecure=False) is True
    assert require_secure("http://127.0.0.1:8080", insecure=False) is False
    with pytest.raises(ConfigError, match="not encrypted"):
        require_secure("http://central.example", insecure=False)
    with caplog.at_level(logging.WARNING):
        assert require_secure("ws://central.example", insecure=True) is False
    assert "INSECURE" in caplog.text
    for bad in ("ftp://x", "central.example", "https://"):
        with pytest.raises(ConfigError):
            require_secure(bad, insecure=True)


def test_edge_url_from_the_central_url() -> None:
    assert edge_ws_url("https://c.example") == "wss://c.example/api/v1/edge/ws"
    assert edge_ws_url("http://127.0.0.1:8080/") == "ws://127.0.0.1:8080/api/v1/edge/ws"
    assert edge_ws_url("wss://c.example/api/v1/edge/ws") == "wss://c.example/api/v1/edge/ws"
    with pytest.raises(ConfigError):
        edge_ws_url("c.example")


def test_tls_dialers_verify_certificates_and_take_a_ca_file(tmp_path: Path) -> None:
    d = WebSocketDialer("https://c.example", "dev-1", "secret")
    assert d.tls
    assert d._ssl is not None
    assert d._ssl.verify_mode is ssl.CERT_REQUIRED
    assert d._ssl.check_hostname
    with pytest.raises(ConfigError, match="CA file"):
        WebSocketDialer("https://c.example", "d", "s", ca_file=tmp_path / "missing.pem")
    with pytest.raises(ConfigError):
        WebSocketDialer("http://c.example", "d", "s")


# ----------------------------------------------------------------------------- websocket


Handler = Callable[[ServerConnection], Awaitable[None]]


@asynccontextmanager
async def ws_server(
    handler: Handler, refuse_status: int | None = None
) -> AsyncIterator[tuple[str, list[Headers]]]:
    seen: list[Headers] = []

    def process_request(conn: ServerConnection, request: Request) -> Response | None:
        seen.append(request.headers)
        if refuse_status is not None:
            return conn.respond(refuse_status, "no\n")
        return None

    async with serve(handler, "127.0.0.1", 0, process_request=process_request) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"http://127.0.0.1:{port}", seen


async def welcome_then_echo(ws: ServerConnection) -> None:
    hello = decode(await ws.recv())
    assert isinstance(hello, Hello)
    assert hello.secret is None  # the secret travels in the header only
    await ws.send(encode(Welcome(hello.device_id, "test", acked={"events": 5})))
    async for frame in ws:
        msg = decode(frame)
        assert isinstance(msg, Status)
        await ws.send(encode(Ack("telemetry", int(msg.ts))))


async def test_websocket_dialer_sends_credentials_and_gets_welcome() -> None:
    async with ws_server(welcome_then_echo) as (url, seen):
        dialer = WebSocketDialer(url, "dev-1", "wds_secret", handshake_timeout_s=TIMEOUT_S)
        conn, welcome = await dialer(HELLO)
        assert welcome == Welcome("dev-1", "test", acked={"events": 5})
        await conn.send(Status(ts=7.0))
        assert await conn.recv() == Ack("telemetry", 7)
        await conn.close()
        with pytest.raises(ConnectionClosed):
            await conn.recv()
    assert seen[0]["X-Wrale-Device"] == "dev-1"
    assert seen[0]["Authorization"] == "Bearer wds_secret"


async def test_websocket_bad_frames_are_protocol_errors_and_closes_are_seen() -> None:
    async def garbage(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send(encode(Welcome("dev-1", "test")))
        await ws.send('{"t": "nonsense"}')
        await ws.close(1001, "going away")

    async with ws_server(garbage) as (url, _):
        conn, _ = await WebSocketDialer(url, "dev-1", "s")(HELLO)
        with pytest.raises(ProtocolError):
            await conn.recv()
        with pytest.raises(ConnectionClosed) as closed:
            await conn.recv()
        assert closed.value.code == 1001


@pytest.mark.parametrize("how", ["goodbye", "close-4401", "http-401", "http-403"])
async def test_a_refused_credential_is_final(how: str) -> None:
    async def refuse(ws: ServerConnection) -> None:
        await ws.recv()
        if how == "goodbye":
            await ws.send(encode(Goodbye("unauthorized", "unknown device", retry=False)))
        await ws.close(4401, "unauthorized")

    status = int(how[-3:]) if how.startswith("http") else None
    async with ws_server(refuse, refuse_status=status) as (url, _):
        with pytest.raises(Refused) as refused:
            await WebSocketDialer(url, "dev-1", "bad")(HELLO)
    assert refused.value.goodbye.code == "unauthorized"
    assert refused.value.goodbye.retry is False


async def test_unreachable_or_failing_servers_are_dial_errors() -> None:
    async def close_at_once(ws: ServerConnection) -> None:
        await ws.close(1011, "internal error")

    async with ws_server(close_at_once) as (url, _):
        with pytest.raises(DialError, match="handshake"):
            await WebSocketDialer(url, "dev-1", "s")(HELLO)
    async with ws_server(close_at_once, refuse_status=503) as (url, _):
        with pytest.raises(DialError, match="503"):
            await WebSocketDialer(url, "dev-1", "s")(HELLO)
    with pytest.raises(DialError):
        await WebSocketDialer(url, "dev-1", "s", open_timeout_s=2)(HELLO)  # nobody listens
