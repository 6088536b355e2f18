"""The live event WebSocket ``/api/v1/ws``: authentication, subscriptions, filters, tenant
isolation, protocol errors and slow clients, on SQLite and PostgreSQL.

The socket is driven over ASGI in the test's own event loop (no thread, no server), so the
app shares the ``central`` fixture's database; a client can be stalled to look slow.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.conftest import SQLITE_ONLY, Central
from wrale.user.api.routes import ws as ws_routes

TIMEOUT_S = 10.0  # a safety bound for a frame that should come at once, never a wait


class ClosedError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class AsgiSocket:
    """A WebSocket client speaking ASGI to the app directly."""

    def __init__(self, app: Any, path: str, headers: dict[str, str] | None = None) -> None:
        raw_path, _, query = path.partition("?")
        self.scope = {
            "type": "websocket",
            "asgi": {"version": "3.0"},
            "scheme": "ws",
            "http_version": "1.1",
            "path": raw_path,
            "raw_path": raw_path.encode(),
            "root_path": "",
            "query_string": query.encode(),
            "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
            "client": ("127.0.0.1", 50000),
            "server": ("central", 80),
            "subprotocols": [],
            "state": {},
        }
        self.app = app
        self.to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.stalled = asyncio.Event()  # while set, event frames are not taken (a slow client)
        self.resume = asyncio.Event()
        self.close_code: int | None = None
        self.task: asyncio.Task[None] | None = None

    async def _receive(self) -> dict[str, Any]:
        return await self.to_app.get()

    async def _send(self, message: dict[str, Any]) -> None:
        if message["type"] == "websocket.send" and self.stalled.is_set():
            await self.resume.wait()
        await self.from_app.put(message)

    async def connect(self) -> dict[str, Any]:
        await self.to_app.put({"type": "websocket.connect"})
        self.task = asyncio.create_task(self.app(self.scope, self._receive, self._send))
        first = await asyncio.wait_for(self.from_app.get(), TIMEOUT_S)
        assert first["type"] == "websocket.accept", first
        return first

    async def send(self, message: dict[str, Any] | str) -> None:
        text = message if isinstance(message, str) else json.dumps(message)
        await self.to_app.put({"type": "websocket.receive", "text": text})

    async def receive(self) -> dict[str, Any]:
        message = await asyncio.wait_for(self.from_app.get(), TIMEOUT_S)
        if message["type"] == "websocket.close":
            self.close_code = message.get("code", 1000)
            raise ClosedError(self.close_code)
        assert message["type"] == "websocket.send", message
        frame: dict[str, Any] = json.loads(message["text"])
        return frame

    async def expect_close(self) -> tuple[list[dict[str, Any]], int]:
        """Frames sent before the server closed, and its close code."""
        frames = []
        while True:
            try:
                frames.append(await self.receive())
            except ClosedError as closed:
                await self.finish()
                return frames, closed.code

    async def finish(self) -> None:
        if self.task is not None and not self.task.done():
            await self.to_app.put({"type": "websocket.disconnect", "code": 1000})
        if self.task is not None:
            await asyncio.wait_for(self.task, TIMEOUT_S)


def token_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


async def open_socket(central: Central, headers: dict[str, str]) -> AsgiSocket:
    sock = AsgiSocket(central.app, "/api/v1/ws", headers)
    await sock.connect()
    ready = await sock.receive()
    assert ready["type"] == "ready"
    return sock


async def subscribe(sock: AsgiSocket, sid: str, kinds: list[str], **filters: Any) -> None:
    msg: dict[str, Any] = {"type": "subscribe", "id": sid, "kinds": kinds}
    if filters:
        msg["filters"] = filters
    await sock.send(msg)
    assert await sock.receive() == {"type": "subscribed", "id": sid}


async def round_trip(sock: AsgiSocket) -> list[dict[str, Any]]:
    """Every frame the server sent before it answered a ping (so: nothing more is coming)."""
    await sock.send({"type": "ping"})
    frames = []
    while (frame := await sock.receive()) != {"type": "pong"}:
        frames.append(frame)
    return frames


async def tenant_of(central: Central, headers: dict[str, str]) -> str:
    r = await central.http.get("/api/v1/auth/me", headers=headers)
    assert r.status_code == 200, r.text
    return str(r.json()["tenant_id"])


# ----------------------------------------------------------------------------- auth


async def test_header_token_then_ping(central: Central) -> None:
    sock = await open_socket(central, central.admin)
    await sock.send({"type": "ping"})
    assert await sock.receive() == {"type": "pong"}
    await sock.finish()


async def test_query_token_and_first_message_token(central: Central) -> None:
    token = token_of(central.admin)
    sock = AsgiSocket(central.app, f"/api/v1/ws?token={token}")
    await sock.connect()
    assert (await sock.receive())["type"] == "ready"
    await sock.finish()

    sock = AsgiSocket(central.app, "/api/v1/ws")
    await sock.connect()
    await sock.send({"type": "auth", "token": token})
    ready = await sock.receive()
    assert ready == {"type": "ready", "user": "admin", "role": "admin"}
    await sock.finish()


@pytest.mark.parametrize(
    ("path", "headers", "first"),
    [
        ("/api/v1/ws", {"Authorization": "Bearer not-a-token"}, None),
        ("/api/v1/ws?token=wrong", {}, None),
        ("/api/v1/ws", {}, {"type": "auth", "token": "wrong"}),
        ("/api/v1/ws", {}, {"type": "subscribe", "id": "s1", "kinds": ["*"]}),
        ("/api/v1/ws", {}, "not json"),
    ],
)
async def test_bad_auth_closes_4401(
    central: Central, path: str, headers: dict[str, str], first: Any
) -> None:
    sock = AsgiSocket(central.app, path, headers)
    await sock.connect()
    if first is not None:
        await sock.send(first)
    frames, code = await sock.expect_close()
    assert code == 4401
    assert frames[0]["type"] == "error"
    assert frames[0]["message"]


async def test_fresh_token_of_other_tenant_is_refused(central: Central) -> None:
    sock = await open_socket(central, central.admin)
    await sock.send({"type": "auth", "token": token_of(await central.other_tenant_admin())})
    frames, code = await sock.expect_close()
    assert code == 4401
    assert "another organisation" in frames[-1]["message"]


async def test_fresh_token_of_same_tenant_is_accepted(central: Central) -> None:
    sock = await open_socket(central, central.admin)
    await sock.send({"type": "auth", "token": token_of(await central.user("viewer"))})
    assert await sock.receive() == {"type": "authenticated", "role": "viewer"}
    await sock.finish()


# ----------------------------------------------------------------------------- events


async def test_subscription_receives_matching_events(central: Central) -> None:
    viewer = await central.user("viewer")
    tenant = await tenant_of(central, viewer)
    sock = await open_socket(central, viewer)
    await subscribe(sock, "s1", ["device.status", "alert.*"])
    bus = central.app.state.wrale.bus
    bus.publish(tenant, "device.status", {"device_id": "d1", "status": "online"})
    bus.publish(tenant, "telemetry.summary", {"device_id": "d1"})  # not subscribed
    bus.publish(tenant, "alert.raised", {"device_id": "d2", "severity": "MAJOR"})
    frames = await round_trip(sock)
    assert [(f["type"], f["subscription"], f["kind"]) for f in frames] == [
        ("event", "s1", "device.status"),
        ("event", "s1", "alert.raised"),
    ]
    assert frames[0]["data"] == {"device_id": "d1", "status": "online"}
    assert isinstance(frames[0]["at"], float)

    await sock.send({"type": "unsubscribe", "id": "s1"})
    assert await sock.receive() == {"type": "unsubscribed", "id": "s1"}
    bus.publish(tenant, "device.status", {"device_id": "d1", "status": "offline"})
    assert await round_trip(sock) == []
    await sock.finish()


async def test_a_pong_follows_every_event_published_before_the_ping(
    central: Central, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even when the connection's pump has not had a turn since the events were published
    (here: never), the events go out before the pong."""

    async def idle_pump(self: ws_routes.Connection, events: asyncio.Queue[Any]) -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(ws_routes.Connection, "pump", idle_pump)
    viewer = await central.user("viewer")
    tenant = await tenant_of(central, viewer)
    sock = await open_socket(central, viewer)
    await subscribe(sock, "s1", ["device.status"])
    bus = central.app.state.wrale.bus
    for status in ("online", "offline"):
        bus.publish(tenant, "device.status", {"device_id": "d1", "status": status})
    frames = await round_trip(sock)
    assert [f["data"]["status"] for f in frames] == ["online", "offline"]
    await sock.finish()


async def test_filters(central: Central) -> None:
    tenant = await tenant_of(central, central.admin)
    sock = await open_socket(central, central.admin)
    await subscribe(sock, "dev", ["*"], device_ids=["d1"])
    await subscribe(sock, "crit", ["alert.*"], severity=["critical", "MAJOR"])
    bus = central.app.state.wrale.bus
    bus.publish(tenant, "device.status", {"device_id": "d2", "status": "online"})  # none
    bus.publish(tenant, "alert.raised", {"device_id": "d1", "severity": "CRITICAL"})  # dev, crit
    bus.publish(tenant, "alert.raised", {"device_id": "d3", "severity": "MINOR"})  # none
    bus.publish(tenant, "telemetry.summary", {"device_id": "d1"})  # dev
    frames = await round_trip(sock)
    got = [(f["subscription"], f["kind"], f["data"].get("device_id")) for f in frames]
    assert got == [
        ("dev", "alert.raised", "d1"),
        ("crit", "alert.raised", "d1"),
        ("dev", "telemetry.summary", "d1"),
    ]
    await sock.finish()


async def test_other_tenants_events_are_not_delivered(central: Central) -> None:
    other = await central.other_tenant_admin()
    mine, theirs = await tenant_of(central, central.admin), await tenant_of(central, other)
    sock = await open_socket(central, central.admin)
    await subscribe(sock, "all", ["*"])
    bus = central.app.state.wrale.bus
    bus.publish(theirs, "device.status", {"device_id": "x", "status": "online"})
    bus.publish(mine, "device.status", {"device_id": "y", "status": "online"})
    frames = await round_trip(sock)
    assert [f["data"]["device_id"] for f in frames] == ["y"]
    await sock.finish()


@SQLITE_ONLY  # the messages are refused before any SQL; the stream runs on both above
@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("not json", "invalid message"),
        ({"type": "dance"}, "type"),
        ({"type": "subscribe", "id": "s1"}, "kinds"),
        ({"type": "subscribe", "id": "s1", "kinds": []}, "kinds"),
        ({"type": "subscribe", "id": "", "kinds": ["*"]}, "id"),
        ({"type": "subscribe", "id": "s1", "kinds": ["*"], "extra": 1}, "extra"),
        (
            {"type": "subscribe", "id": "s1", "kinds": ["*"], "filters": {"severity": ["hot"]}},
            "unknown severity",
        ),
        ({"type": "unsubscribe", "id": "nope"}, "no subscription"),
        ([1, 2], "invalid message"),
    ],
)
async def test_invalid_messages_keep_the_connection(
    central: Central, message: Any, expected: str
) -> None:
    sock = await open_socket(central, central.admin)
    await sock.send(message)
    frame = await sock.receive()
    assert frame["type"] == "error"
    assert expected in frame["message"]
    await sock.send({"type": "ping"})
    assert await sock.receive() == {"type": "pong"}
    await sock.finish()


async def test_slow_client_is_disconnected(
    central: Central, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ws_routes, "OUTBOUND_SIZE", 4)
    tenant = await tenant_of(central, central.admin)
    sock = await open_socket(central, central.admin)
    await subscribe(sock, "all", ["*"])
    sock.stalled.set()
    bus = central.app.state.wrale.bus
    for i in range(20):
        bus.publish(tenant, "device.status", {"device_id": f"d{i}"})
    message = await asyncio.wait_for(sock.from_app.get(), TIMEOUT_S)
    assert message["type"] == "websocket.close"
    assert message["code"] == 1013
    await sock.finish()
    assert central.app.state.metrics.websocket_connections == 0


async def test_client_leaving_ends_the_handler(central: Central) -> None:
    sock = await open_socket(central, central.admin)
    assert central.app.state.metrics.websocket_connections == 1
    await sock.finish()
    assert sock.task is not None
    assert sock.task.done()
    assert central.app.state.metrics.websocket_connections == 0


async def test_group_filter_follows_membership_and_real_status_changes(central: Central) -> None:
    """A dynamic group's devices, resolved when subscribing; the event comes from the API."""
    h = central.admin

    async def device(name: str, tags: list[str]) -> str:
        r = await central.http.post("/api/v1/devices", headers=h, json={"name": name, "tags": tags})
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    inside, outside = await device("rack-a-1", ["lab"]), await device("rack-b-1", ["prod"])
    r = await central.http.post(
        "/api/v1/groups",
        headers=h,
        json={"name": "lab", "kind": "dynamic", "selector": {"tags_all": ["lab"]}},
    )
    assert r.status_code == 201, r.text
    group_id = r.json()["id"]
    sock = await open_socket(central, h)
    await subscribe(sock, "lab", ["device.status"], group_id=group_id)
    for device_id in (outside, inside):
        r = await central.http.post(
            f"/api/v1/devices/{device_id}/status", headers=h, json={"status": "maintenance"}
        )
        assert r.status_code == 200, r.text
    # an event naming the group itself matches too
    tenant = await tenant_of(central, h)
    central.app.state.wrale.bus.publish(
        tenant, "device.status", {"device_id": "x", "status": "online", "group_ids": [group_id]}
    )
    frames = await round_trip(sock)
    assert [(f["kind"], f["data"]["device_id"], f["data"]["status"]) for f in frames] == [
        ("device.status", inside, "maintenance"),
        ("device.status", "x", "online"),
    ]
    await sock.send(
        {"type": "subscribe", "id": "x", "kinds": ["*"], "filters": {"group_id": "f" * 32}}
    )
    frame = await sock.receive()
    assert frame["type"] == "error"
    assert "group" in frame["message"]
    await sock.finish()
