"""``/api/v1/edge/ws``, the device channel over WebSocket: a real uvicorn server spoken to
with the ``websockets`` client (hello, desired on connect, a flood of batches acked in
order, a bad frame, a wrong secret), and, on SQLite and PostgreSQL through ASGI,
quarantine (live session ended, refused until released, audited), replaced sessions and
the device's events. Frames are made with ``fleet.sync.protocol`` like a real agent's."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import Central
from tests.user.api.central_server import start_central
from tests.user.api.test_ws import AsgiSocket, ClosedError
from wrale.fleet.sync.protocol import (
    Ack,
    Desired,
    EventsBatch,
    Goodbye,
    Hello,
    Message,
    TelemetryBatch,
    Welcome,
    decode,
    encode,
)

API = "/api/v1"
SAFETY_S = 10.0  # bound on a frame that should come at once, never a timing


def hello(device_id: str, **kw: Any) -> str:
    return encode(Hello(device_id=device_id, agent_version="0.4.0", **kw))


def device_headers(device_id: str, secret: str) -> dict[str, str]:
    return {"X-Wrale-Device": device_id, "Authorization": f"Bearer {secret}"}


# ----------------------------------------------------------------------------- real server


def test_real_server_speaks_the_protocol(tmp_path: Path) -> None:
    server = start_central(tmp_path, migrate=False)
    try:
        admin = {"Authorization": f"Bearer {server.login()}"}
        r = httpx.post(
            f"{server.url}{API}/enroll/bulk",
            headers=admin,
            json={"devices": [{"name": "ws-1"}]},
            timeout=10,
        )
        assert r.status_code == 201, r.text
        item = r.json()["items"][0]
        dev, secret = item["device_id"], item["device_secret"]
        url = server.url.replace("http://", "ws://") + f"{API}/edge/ws"
        asyncio.run(_speak(url, dev, secret))
        r = httpx.get(f"{server.url}{API}/devices/{dev}", headers=admin, timeout=10)
        assert r.json()["status"] == "offline"  # the protocol error ended its session
        assert r.json()["agent_version"] == "0.4.0"
    finally:
        server.stop()


async def _speak(url: str, dev: str, secret: str) -> None:
    async def recv(ws: Any) -> Message:
        return decode(await asyncio.wait_for(ws.recv(), SAFETY_S))

    async with connect(url, additional_headers=device_headers(dev, secret)) as ws:
        await ws.send(hello(dev))
        welcome = await recv(ws)
        assert isinstance(welcome, Welcome)
        assert welcome.acked == {"telemetry": 0, "events": 0}
        desired = await recv(ws)
        assert isinstance(desired, Desired)
        assert desired.version >= 1
        t0 = time.time() - 300
        n = 200  # sent without waiting: the server reads, groups and acks each in order
        for seq in range(1, n + 1):
            points = [("cpu_temp_c", t0 + seq, 45.0), ("power_w", t0 + seq, 4.2)]
            await ws.send(encode(TelemetryBatch(seq=seq, prev=seq - 1, points=points)))
        acks = [await recv(ws) for _ in range(n)]
        assert [(a.stream, a.seq, a.gap) for a in acks if isinstance(a, Ack)] == [
            ("telemetry", s, False) for s in range(1, n + 1)
        ]
        await ws.send("{not json")
        bye = await recv(ws)
        assert isinstance(bye, Goodbye)
        assert bye.code == "protocol"
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), SAFETY_S)
        assert ws.close_code == 4400

    with pytest.raises(InvalidStatus) as refused:  # refused before the socket is accepted
        async with connect(url, additional_headers=device_headers(dev, "wds_wrong")):
            pass
    assert refused.value.response.status_code == 403

    async with connect(url, additional_headers=device_headers(dev, secret)) as ws:
        await ws.send(hello(dev, desired_version=1_000))
        welcome = await recv(ws)
        assert isinstance(welcome, Welcome)
        assert welcome.acked["telemetry"] == 200


# ----------------------------------------------------------------------------- over ASGI


async def enroll(central: Central, name: str) -> tuple[str, str]:
    r = await central.http.post(
        f"{API}/enroll/bulk", headers=central.admin, json={"devices": [{"name": name}]}
    )
    assert r.status_code == 201, r.text
    item = r.json()["items"][0]
    return item["device_id"], item["device_secret"]


async def recv(sock: AsgiSocket) -> Message:
    return decode(json.dumps(await sock.receive()))


async def dial(central: Central, dev: str, secret: str, **kw: Any) -> tuple[AsgiSocket, Message]:
    sock = AsgiSocket(central.app, f"{API}/edge/ws", device_headers(dev, secret))
    await sock.connect()
    await sock.send(hello(dev, **kw))
    return sock, await recv(sock)


async def closed(sock: AsgiSocket) -> tuple[list[Message], int]:
    frames, code = await sock.expect_close()
    return [decode(json.dumps(f)) for f in frames], code


async def test_quarantine_replaced_and_events(central: Central) -> None:
    dev, secret = await enroll(central, "edge-1")
    first, welcome = await dial(central, dev, secret, desired_version=1_000)
    assert isinstance(welcome, Welcome)

    # a second connection of the same device replaces the first
    second, welcome2 = await dial(central, dev, secret, desired_version=1_000)
    assert isinstance(welcome2, Welcome)
    assert welcome2.session != welcome.session
    frames, code = await closed(first)
    assert [f.code for f in frames if isinstance(f, Goodbye)] == ["replaced"]
    assert code == 4409

    # events over the socket, read back through the API
    t = time.time()
    batch = EventsBatch(
        seq=1,
        prev=0,
        events=[
            {"ts": t, "type": "ARMED", "severity": "info", "message": "armed"},
            {"ts": t, "type": "LOCKDOWN", "severity": "critical", "message": "locked"},
        ],
    )
    await second.send(encode(batch))
    ack = await recv(second)
    assert isinstance(ack, Ack)
    assert (ack.stream, ack.seq) == ("events", 1)
    events = f"{API}/devices/{dev}/events"
    page = (await central.http.get(events, headers=central.admin, params={"limit": 1})).json()
    assert [e["type"] for e in page["items"]] == ["LOCKDOWN"]  # newest first
    params = {"limit": 1, "cursor": page["next_cursor"]}
    page = (await central.http.get(events, headers=central.admin, params=params)).json()
    assert [e["type"] for e in page["items"]] == ["ARMED"]
    r = await central.http.get(events, headers=central.admin, params={"type": "ARMED"})
    assert [e["type"] for e in r.json()["items"]] == ["ARMED"]
    r = await central.http.get(f"{API}/alerts", headers=central.admin)
    assert any(a["metric"] == "event:LOCKDOWN" for a in r.json()["items"])

    # quarantine: admin only; the live session ends at once
    operator = await central.user("operator")
    path = f"{API}/devices/{dev}/quarantine"
    r = await central.http.post(path, headers=operator, json={"reason": "lockdown"})
    assert r.status_code == 403
    r = await central.http.post(path, headers=central.admin, json={"reason": "tamper lockdown"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "quarantined"
    frames, code = await closed(second)
    bye = [f for f in frames if isinstance(f, Goodbye)]
    assert [(b.code, b.retry) for b in bye] == [("quarantined", True)]
    assert code == 4403
    assert (
        await central.http.post(path, headers=central.admin, json={"reason": "x"})
    ).status_code == 409
    # operators cannot lift it through the status endpoint either
    r = await central.http.post(
        f"{API}/devices/{dev}/status", headers=operator, json={"status": "unknown"}
    )
    assert r.status_code == 409

    refused, bye2 = await dial(central, dev, secret)
    assert isinstance(bye2, Goodbye)
    assert bye2.code == "quarantined"
    assert "tamper lockdown" in bye2.message
    with pytest.raises(ClosedError):
        await refused.receive()
    await refused.finish()

    release = f"{API}/devices/{dev}/release"
    r = await central.http.post(release, headers=central.admin, json={"note": "case inspected"})
    assert r.status_code == 200
    assert r.json()["status"] == "unknown"
    assert (await central.http.post(release, headers=central.admin)).status_code == 409
    back, welcome3 = await dial(central, dev, secret, desired_version=1_000)
    assert isinstance(welcome3, Welcome)
    assert welcome3.acked["events"] == 1
    r = await central.http.get(f"{API}/devices/{dev}", headers=central.admin)
    assert r.json()["status"] == "online"
    audit = await central.http.get(
        f"{API}/audit?resource_id={dev}&limit=100", headers=central.admin
    )
    actions = {e["action"] for e in audit.json()["items"]}
    assert {"device.quarantine", "device.release"} <= actions
    await back.finish()
