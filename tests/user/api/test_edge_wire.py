"""The device channel's own carrier under uvicorn (``user.api.edge_wire``), as ``wrale
central`` serves it: a real server on a loopback port, spoken to with the ``websockets``
client. What the ASGI route did, the wire must do too: refusals as HTTP answers, the
hello deadline, silence, fragments, oversized messages, shutdown (1012), the client's
address through a trusted proxy; and the dashboard's own WebSockets still reach the app.
(The protocol's flow — welcome, a flood of 200 batches acked in order, a bad frame — is
``test_edge_ws.test_real_server_speaks_the_protocol``, on the same server.)"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.user.api.central_server import ThreadedCentral, start_central
from wrale.fleet.sync.protocol import (
    Ack,
    Desired,
    Goodbye,
    Hello,
    Message,
    TelemetryBatch,
    Welcome,
    decode,
    encode,
)
from wrale.user.api.routes.edge import WS_MAX_SIZE

API = "/api/v1"
SAFETY_S = 10.0  # bound on what should come at once, never a timing


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ThreadedCentral]:
    s = start_central(
        tmp_path,
        migrate=False,
        channel_hello_timeout_s=1.0,
        channel_max_pending_per_address=3,
        offline_after_s=3.0,
        channel_heartbeat_s=1.0,
    )
    try:
        yield s
    finally:
        s.stop()


def enroll(server: ThreadedCentral, *names: str) -> list[tuple[str, str]]:
    admin = {"Authorization": f"Bearer {server.login()}"}
    body = {"devices": [{"name": n} for n in names]}
    r = httpx.post(f"{server.url}{API}/enroll/bulk", headers=admin, json=body, timeout=10)
    assert r.status_code == 201, r.text
    return [(i["device_id"], i["device_secret"]) for i in r.json()["items"]]


def edge_url(server: ThreadedCentral) -> str:
    return server.url.replace("http://", "ws://") + f"{API}/edge/ws"


def headers(dev: str, secret: str, **more: str) -> dict[str, str]:
    return {"X-Wrale-Device": dev, "Authorization": f"Bearer {secret}", **more}


async def recv(ws: Any) -> Message:
    return decode(await asyncio.wait_for(ws.recv(), SAFETY_S))


async def closed(ws: Any) -> int:
    """The close code, once the server has closed the socket (what came before: dropped)."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), SAFETY_S)
    except ConnectionClosed:
        pass
    code: int = ws.close_code
    return code


def sessions(data: Path, dev: str) -> list[tuple[str, str | None, str | None]]:
    """The device's session rows (id, remote, close reason), newest first."""
    with sqlite3.connect(data / "central.db") as db:
        rows = db.execute(
            "SELECT id, remote, close_reason FROM device_sessions WHERE device_id = ?"
            " ORDER BY opened_at DESC",
            (dev,),
        ).fetchall()
    return [(str(r[0]), r[1], r[2]) for r in rows]


def device(server: ThreadedCentral, dev: str) -> dict[str, Any]:
    admin = {"Authorization": f"Bearer {server.login()}"}
    r = httpx.get(f"{server.url}{API}/devices/{dev}", headers=admin, timeout=10)
    out: dict[str, Any] = r.json()
    return out


def test_refusals_are_http_answers_with_a_json_body(server: ThreadedCentral) -> None:
    ((dev, secret),) = enroll(server, "wire-refused")

    async def go() -> None:
        for hdrs in ({}, headers(dev, "wds_wrong"), headers("", secret)):
            with pytest.raises(InvalidStatus) as refused:
                async with connect(edge_url(server), additional_headers=hdrs):
                    pass
            assert refused.value.response.status_code == 403
            body = json.loads(refused.value.response.body or b"{}")
            assert body["error"]["code"] == "unauthorized"

        # three sockets of one address still before their hello: the fourth waits its turn
        held = [
            await connect(edge_url(server), additional_headers=headers(dev, secret))
            for _ in range(3)
        ]
        with pytest.raises(InvalidStatus) as busy:
            async with connect(edge_url(server), additional_headers=headers(dev, secret)):
                pass
        assert busy.value.response.status_code == 429
        assert json.loads(busy.value.response.body or b"{}")["error"]["code"] == (
            "too_many_connections"
        )
        for ws in held:
            await ws.close()

    asyncio.run(go())


def test_no_hello_in_time_and_a_silent_board_are_let_go(server: ThreadedCentral) -> None:
    ((dev, secret),) = enroll(server, "wire-silent")

    async def go() -> None:
        async with connect(edge_url(server), additional_headers=headers(dev, secret)) as ws:
            bye = await recv(ws)  # nothing sent: the 1 s hello deadline passes
            assert isinstance(bye, Goodbye)
            assert (bye.code, bye.message) == ("protocol", "no hello in time")
            assert await closed(ws) == 4400

        # a hello in three fragments is one message; then the board goes quiet
        async with connect(
            edge_url(server), additional_headers=headers(dev, secret), ping_interval=None
        ) as ws:
            text = encode(Hello(device_id=dev, agent_version="0.4.0"))
            third = len(text) // 3
            await ws.send([text[:third], text[third : 2 * third], text[2 * third :]])
            assert isinstance(await recv(ws), Welcome)
            assert isinstance(await recv(ws), Desired)
            assert device(server, dev)["status"] == "online"
            assert await closed(ws) == 1001  # silent past offline_after_s (3 s)
        for _ in range(int(SAFETY_S * 10)):
            if device(server, dev)["status"] == "offline":
                break
            await asyncio.sleep(0.1)
        assert device(server, dev)["status"] == "offline"

    asyncio.run(go())


def test_an_oversized_message_is_refused_and_the_board_comes_back(
    server: ThreadedCentral,
) -> None:
    ((dev, secret),) = enroll(server, "wire-big")

    async def go() -> None:
        async with connect(
            edge_url(server), additional_headers=headers(dev, secret), max_size=None
        ) as ws:
            await ws.send(encode(Hello(device_id=dev, agent_version="0.4.0")))
            assert isinstance(await recv(ws), Welcome)
            await ws.send("x" * (WS_MAX_SIZE + 1))
            assert await closed(ws) == 1009
        async with connect(edge_url(server), additional_headers=headers(dev, secret)) as ws:
            await ws.send(encode(Hello(device_id=dev, agent_version="0.4.0")))
            assert isinstance(await recv(ws), Welcome)
            await ws.send(encode(TelemetryBatch(seq=1, prev=0, points=[("power_w", 1e9, 4.0)])))
            ack = await recv(ws)
            while not isinstance(ack, Ack):
                ack = await recv(ws)
            assert (ack.stream, ack.seq) == ("telemetry", 1)

    asyncio.run(go())


def test_forwarded_for_from_a_trusted_proxy_is_the_board_address(tmp_path: Path) -> None:
    server = start_central(tmp_path, migrate=False)
    ((dev, secret),) = enroll(server, "wire-proxied")

    async def go() -> None:
        hdrs = headers(dev, secret, **{"X-Forwarded-For": "203.0.113.7"})
        async with connect(edge_url(server), additional_headers=hdrs) as ws:
            await ws.send(encode(Hello(device_id=dev, agent_version="0.4.0")))
            assert isinstance(await recv(ws), Welcome)
            (_, remote, _), *_ = sessions(tmp_path, dev)
            assert remote is not None
            assert remote.startswith("203.0.113.7:")  # 127.0.0.1, the proxy, is trusted

    try:
        asyncio.run(go())
    finally:
        server.stop()


def test_shutdown_closes_1012_and_records_the_end(tmp_path: Path) -> None:
    server = start_central(tmp_path, migrate=False)
    ((dev, secret),) = enroll(server, "wire-shutdown")
    got: dict[str, int] = {}

    async def go() -> None:
        async with connect(edge_url(server), additional_headers=headers(dev, secret)) as ws:
            await ws.send(encode(Hello(device_id=dev, agent_version="0.4.0")))
            assert isinstance(await recv(ws), Welcome)
            await asyncio.get_running_loop().run_in_executor(None, server.stop)
            got["code"] = await closed(ws)

    asyncio.run(go())
    assert got["code"] == 1012
    ((_, _, reason),) = sessions(tmp_path, dev)
    assert reason == "shutdown"  # recorded before the server stopped


def test_the_dashboard_stream_still_reaches_the_app(server: ThreadedCentral) -> None:
    """Every other WebSocket goes through uvicorn's protocol and the ASGI app, as before."""

    async def go() -> None:
        url = server.url.replace("http://", "ws://") + f"{API}/ws?token=not-a-token"
        async with connect(url) as ws:
            assert await closed(ws) == 4401
        token = server.login()
        async with connect(
            server.url.replace("http://", "ws://") + f"{API}/ws?token={token}"
        ) as ws:
            assert json.loads(await asyncio.wait_for(ws.recv(), SAFETY_S))["type"] == "ready"
            await ws.send(json.dumps({"type": "subscribe", "id": "s1", "kinds": ["device.*"]}))
            reply = json.loads(await asyncio.wait_for(ws.recv(), SAFETY_S))
            assert reply == {"type": "subscribed", "id": "s1"}

    asyncio.run(go())


@pytest.mark.parametrize("context", [True, False])
def test_deflate_with_or_without_context_between_messages(tmp_path: Path, context: bool) -> None:
    """``channel_deflate_context`` off: the server asks boards to compress each message on
    its own (no decoder kept per board); either way the channel works compressed."""
    server = start_central(tmp_path, migrate=False, channel_deflate_context=context)
    ((dev, secret),) = enroll(server, "wire-deflate")

    async def go() -> str:
        async with connect(
            edge_url(server), additional_headers=headers(dev, secret), compression="deflate"
        ) as ws:
            assert ws.response is not None
            negotiated = ws.response.headers.get("Sec-WebSocket-Extensions", "")
            await ws.send(encode(Hello(device_id=dev, agent_version="0.4.0")))
            assert isinstance(await recv(ws), Welcome)
            t0 = 1.7e9
            for seq in (1, 2, 3):  # alike messages: what a kept context would shrink
                points = [("power_w", t0 + seq * 10 + i, 4.0 + i / 10) for i in range(170)]
                await ws.send(encode(TelemetryBatch(seq=seq, prev=seq - 1, points=points)))
            acks: list[int] = []
            while len(acks) < 3:
                m = await recv(ws)
                if isinstance(m, Ack):
                    acks.append(m.seq)
            assert acks == [1, 2, 3]
            return negotiated

    try:
        negotiated = asyncio.run(go())
    finally:
        server.stop()
    assert "permessage-deflate" in negotiated
    assert ("client_no_context_takeover" in negotiated) is (not context)
