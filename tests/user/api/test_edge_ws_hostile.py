"""``/api/v1/edge/ws`` against hostile clients: malformed frames close only that socket
(counted), strangers are refused before the socket is accepted, the hello is capped, and
one address cannot hold many sockets open before their hello. Real app and database
through ASGI; the HTTP refusal itself through a real uvicorn server."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.conftest import Central
from tests.user.api.central_server import start_central
from tests.user.api.test_edge_ws import closed, device_headers, dial, enroll, hello, recv
from tests.user.api.test_ws import AsgiSocket
from wrale.fleet.sync.protocol import Ack, Goodbye, TelemetryBatch, Welcome, encode

API = "/api/v1"
NESTED = "[" * 1200 + "]" * 1200


async def first_message(central: Central, headers: dict[str, str]) -> dict[str, Any]:
    """What the app answers a new device socket first (accept, or a refusal)."""
    sock = AsgiSocket(central.app, f"{API}/edge/ws", headers)
    await sock.to_app.put({"type": "websocket.connect"})
    sock.task = asyncio.create_task(central.app(sock.scope, sock._receive, sock._send))
    first: dict[str, Any] = await asyncio.wait_for(sock.from_app.get(), 10)
    if first["type"] != "websocket.accept":
        await asyncio.wait_for(sock.task, 10)
    else:
        await sock.finish()
    return first


async def stored_ack(central: Central, name: str) -> None:
    """Another device connects and its batch is acknowledged (stored)."""
    dev, secret = await enroll(central, name)
    sock, welcome = await dial(central, dev, secret)
    assert isinstance(welcome, Welcome)
    batch = TelemetryBatch(seq=1, prev=0, points=[("cpu_temp_c", time.time() - 5, 50.0)])
    await sock.send(encode(batch))
    while not isinstance(ack := await recv(sock), Ack):
        pass
    assert (ack.stream, ack.seq, ack.gap) == ("telemetry", 1, False)
    await sock.finish()


@pytest.mark.parametrize(
    "frame",
    [NESTED, '{"t":"status","ts":NaN}', '{"t":"reported","version":1,"doc":' + NESTED + "}"],
    ids=["nested", "nan", "nested-doc"],
)
async def test_malformed_frame_closes_only_that_socket(central: Central, frame: str) -> None:
    dev, secret = await enroll(central, "hostile")
    sock, welcome = await dial(central, dev, secret)
    assert isinstance(welcome, Welcome)
    await sock.send(frame)
    frames, code = await closed(sock)
    bye = [f for f in frames if isinstance(f, Goodbye)]
    assert code == 4400
    assert [b.code for b in bye] == ["protocol"]
    assert central.app.state.hub.ctx.counters.get("bad_frames", "ws") == 1
    await stored_ack(central, "good")


async def test_malformed_hello_is_refused_with_protocol(central: Central) -> None:
    dev, secret = await enroll(central, "hostile-hello")
    sock = AsgiSocket(central.app, f"{API}/edge/ws", device_headers(dev, secret))
    await sock.connect()
    await sock.send(NESTED)
    frames, code = await closed(sock)
    assert code == 4400
    assert [f.code for f in frames if isinstance(f, Goodbye)] == ["protocol"]


async def test_hello_over_its_cap_is_refused(central: Central) -> None:
    dev, secret = await enroll(central, "big-hello")
    sock = AsgiSocket(central.app, f"{API}/edge/ws", device_headers(dev, secret))
    await sock.connect()
    await sock.send(hello(dev)[:-1] + " " * 20_000 + "}")  # valid JSON, 20 KB
    frames, code = await closed(sock)
    assert code == 4400
    assert "exceeds" in next(f for f in frames if isinstance(f, Goodbye)).message


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Wrale-Device": "dev_x"},
        {"Authorization": "Bearer wds_nothing"},
        "wrong-secret",
        "other-device",
    ],
    ids=["none", "no-secret", "no-device", "wrong-secret", "other-device"],
)
async def test_socket_is_refused_before_accept_without_credential(
    central: Central, headers: Any
) -> None:
    dev, secret = await enroll(central, "owner")
    if headers == "wrong-secret":
        headers = device_headers(dev, "wds_" + "x" * 40)
    elif headers == "other-device":
        other, _ = await enroll(central, "other")
        headers = device_headers(other, secret)
    first = await first_message(central, headers)
    assert first["type"] == "websocket.close"  # never accepted: the server answers 403
    assert central.app.state.hub.ctx.counters.get("refused_sockets", "ws") == 1


async def test_pending_sockets_per_address_are_limited(central: Central) -> None:
    ctx = central.app.state.hub.ctx
    ctx.settings = ctx.settings.model_copy(update={"channel_max_pending_per_address": 2})
    dev, secret = await enroll(central, "slow")
    waiting = [AsgiSocket(central.app, f"{API}/edge/ws", device_headers(dev, secret)) for _ in "ab"]
    for sock in waiting:
        await sock.connect()  # accepted, no hello yet
    refused = await first_message(central, device_headers(dev, secret))
    assert refused["type"] == "websocket.close"
    await waiting[0].send(hello(dev))  # past its hello: no longer pending
    assert isinstance(await recv(waiting[0]), Welcome)
    admitted = await first_message(central, device_headers(dev, secret))
    assert admitted["type"] == "websocket.accept"
    await waiting[1].finish()
    await waiting[0].finish()


def test_real_server_answers_403_json_before_accepting(tmp_path: Path) -> None:
    server = start_central(tmp_path, migrate=False)
    try:
        url = server.url.replace("http://", "ws://") + f"{API}/edge/ws"

        async def attempt() -> InvalidStatus:
            with pytest.raises(InvalidStatus) as info:
                async with connect(url, additional_headers=device_headers("dev_x", "wds_x")):
                    pass
            return info.value

        refused = asyncio.run(attempt())
        assert refused.response.status_code == 403
        body = json.loads(refused.response.body or b"{}")
        assert body["error"]["code"] == "unauthorized"
    finally:
        server.stop()
