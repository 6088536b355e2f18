"""``/api/v1/edge/ws``: the device channel over WebSocket, and ``/devices/{id}/events``.

A device connects with ``X-Wrale-Device: <id>`` and ``Authorization: Bearer <secret>``;
the socket is refused before it is accepted (HTTP 403, or 429 past
``channel_max_pending_per_address`` sockets of one address still before their hello)
unless the secret is a current credential of that device. It sends ``Hello`` first (at
most ``MAX_HELLO_BYTES``, within ``channel_hello_timeout_s``) and gets ``Welcome`` or a
``Goodbye`` refusal; then frames flow both ways (``fleet.sync.protocol``). The server
caps every message at ``WS_MAX_SIZE`` (uvicorn's ``ws_max_size``). This module is only the
transport: ``DeviceSession`` does the rest.

Per connection: a bounded receive buffer (frames and bytes; a full buffer stops reading the
socket, so a flood slows the sender instead of growing memory) and one worker that handles
up to ``GROUP_MAX`` waiting frames in one transaction. Command results (``frames.urgent``)
have their own small buffer and worker: an operator waits for them, so they do not queue
behind the board's telemetry (a backlog after a reconnect can hold a group commit for
seconds) but take their own urgent writer turn. A malformed frame is counted and ends the
session (Goodbye ``protocol``); a device silent for ``offline_after_s`` is dropped.

Close codes after a Goodbye: 4401 unauthorized / revoked, 4403 quarantined / held,
4400 protocol, 4409 replaced, 1012 shutdown (reconnect), 1011 a server error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Annotated, Any

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse
from pydantic import BaseModel, StringConstraints
from starlette.types import ASGIApp, Receive, Scope
from starlette.types import Send as ASGISend

from wrale.fleet.brain.channel import events as channel_events
from wrale.fleet.brain.channel.frames import urgent
from wrale.fleet.brain.channel.hub import ChannelHub
from wrale.fleet.brain.channel.session import (
    ChannelContext,
    DeviceSession,
    SessionEndedError,
    goodbye,
)
from wrale.fleet.brain.services import registry
from wrale.fleet.sync.protocol import (
    MAX_FRAME_BYTES,
    MAX_HELLO_BYTES,
    Goodbye,
    Hello,
    Message,
    ProtocolError,
    decode,
    encode,
)
from wrale.shared.central_settings import CentralSettings
from wrale.shared.errors import WraleError
from wrale.user.api.deps import PageDep, PrincipalDep, SessionDep
from wrale.user.api.schemas.common import Page, page_of

log = logging.getLogger("wrale.central.edge")
router = APIRouter()

GROUP_MAX = 32  # frames handled in one transaction
BUFFER_FRAMES = 64  # frames received but not handled yet, per connection
BUFFER_BYTES = 8 * 1024 * 1024  # and their bytes (one frame is always let in)
RESULT_FRAMES = 16  # command results received but not handled yet, per connection
RESULT_BYTES = 1024 * 1024
SERVER_RESTART = 1012  # uvicorn closes every WebSocket with it when it shuts down
WS_MAX_SIZE = MAX_FRAME_BYTES  # uvicorn's ws_max_size: no WebSocket message is bigger
CLOSE_CODES = {
    "unauthorized": 4401,
    "revoked": 4401,
    "quarantined": 4403,
    "held": 4403,
    "protocol": 4400,
    "replaced": 4409,
    "shutdown": 1012,
    "error": 1011,
}


def hub_of(ws: WebSocket) -> ChannelHub:
    hub: ChannelHub = ws.app.state.hub
    return hub


class FrameBuffer:
    """Decoded frames waiting for the worker, bounded in count and in raw bytes."""

    def __init__(self, max_frames: int = BUFFER_FRAMES, max_bytes: int = BUFFER_BYTES) -> None:
        self.max_frames, self.max_bytes = max_frames, max_bytes
        self._items: deque[tuple[Message, int]] = deque()
        self._bytes = 0
        self._changed = asyncio.Condition()

    def _full(self, size: int) -> bool:
        if not self._items:
            return False
        return len(self._items) >= self.max_frames or self._bytes + size > self.max_bytes

    async def put(self, msg: Message, size: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: not self._full(size))
            self._items.append((msg, size))
            self._bytes += size
            self._changed.notify_all()

    async def take(self, most: int) -> list[Message]:
        """At least one frame (waits), at most ``most``."""
        async with self._changed:
            await self._changed.wait_for(lambda: bool(self._items))
            out: list[Message] = []
            while self._items and len(out) < most:
                msg, size = self._items.popleft()
                self._bytes -= size
                out.append(msg)
            self._changed.notify_all()
            return out


async def _frame(ws: WebSocket, within_s: float) -> tuple[str | bytes, int]:
    message = await asyncio.wait_for(ws.receive(), within_s)
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    data = message.get("text")
    if data is None:
        data = message.get("bytes") or b""
    return data, len(data)


def _secret_of(ws: WebSocket) -> str | None:
    scheme, _, token = ws.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def _say_goodbye(ws: WebSocket, bye: Goodbye, sent: bool = False) -> None:
    if not sent:
        with contextlib.suppress(Exception):
            await ws.send_text(encode(bye))
    with contextlib.suppress(Exception):
        reason = bye.message.encode()[:120].decode(errors="ignore")
        await ws.close(CLOSE_CODES.get(bye.code, 1008), reason)


class _Link:
    """One accepted WebSocket: the ``send`` a session uses and the serve loop."""

    def __init__(self, ws: WebSocket, ctx: ChannelContext) -> None:
        self.ws = ws
        self.settings: CentralSettings = ctx.settings
        self.counters = ctx.counters
        self.buffer = FrameBuffer()
        self.results = FrameBuffer(RESULT_FRAMES, RESULT_BYTES)  # ahead of the telemetry

    async def send(self, msg: Message) -> None:
        try:
            await self.ws.send_text(encode(msg))
        except Exception as exc:  # closed under us: the connection is gone
            raise ConnectionError(f"cannot send {msg.T}: {exc}") from exc

    async def hello(self) -> Hello:
        raw, size = await _frame(self.ws, self.settings.channel_hello_timeout_s)
        if size > MAX_HELLO_BYTES:
            raise ProtocolError(f"a hello of {size} bytes exceeds {MAX_HELLO_BYTES}")
        msg = decode(raw)
        if not isinstance(msg, Hello):
            raise ProtocolError(f"the first frame must be hello, not {msg.T}")
        return msg

    async def read(self, session: DeviceSession) -> None:
        while True:
            raw, size = await _frame(self.ws, self.settings.offline_after_s)
            msg = decode(raw)
            if session.admit(msg):
                to = self.results if urgent(msg) else self.buffer
                await to.put(msg, size)

    async def work(self, session: DeviceSession, frames: FrameBuffer) -> None:
        while True:
            await session.handle(await frames.take(GROUP_MAX))

    async def serve(self, session: DeviceSession) -> tuple[str, Goodbye | None]:
        """Until the connection ends: (reason for the record, Goodbye to say or None)."""
        ended = asyncio.create_task(session.ended.wait())
        tasks = [
            asyncio.create_task(self.read(session)),
            asyncio.create_task(self.work(session, self.buffer)),
            asyncio.create_task(self.work(session, self.results)),
            asyncio.create_task(session.run_pusher()),
            ended,
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if ended in done and session.goodbye is not None:
            return session.goodbye.code, None  # already said by ``end``
        exc = next((t.exception() for t in done if not t.cancelled() and t.exception()), None)
        if isinstance(exc, WebSocketDisconnect) and exc.code == SERVER_RESTART:
            return "shutdown", None  # the server closes its sockets: devices reconnect
        if exc is None or isinstance(exc, WebSocketDisconnect | ConnectionError):
            return "disconnected", None
        if isinstance(exc, TimeoutError):
            return "silent", None
        if isinstance(exc, ProtocolError):
            self.counters.inc("bad_frames", "ws")
            log.info("device %s: protocol error: %s", session.device_id, exc)
            return "protocol", goodbye("protocol", str(exc), session=session.id)
        if isinstance(exc, SessionEndedError):
            return exc.goodbye.code, exc.goodbye
        if isinstance(exc, WraleError):  # refused by a service: the device must change
            log.warning("device %s: frame refused: %s", session.device_id, exc.message)
            return "protocol", goodbye("protocol", exc.message, session=session.id)
        log.error("device %s: session failed", session.device_id, exc_info=exc)
        return "error", goodbye("shutdown", "server error; reconnect later", session=session.id)


async def _deny(ws: WebSocket, status: int, code: str, message: str) -> None:
    """Refuse the socket before accepting it: an HTTP answer (403 / 429) where the server
    supports it, else a close, which the server turns into HTTP 403."""
    body = {"error": {"code": code, "message": message, "details": {}}}
    try:
        await ws.send_denial_response(JSONResponse(body, status_code=status))
    except RuntimeError:  # no denial-response extension: close before accept → 403
        with contextlib.suppress(Exception):
            await ws.close(1008)


async def _admit(ws: WebSocket, hub: ChannelHub) -> tuple[_Link, Hello] | None:
    """Authenticate from the headers, accept, and read the hello (None: refused, said why)."""
    counters = hub.ctx.counters
    device_id = ws.headers.get("x-wrale-device", "")
    secret = _secret_of(ws)
    ok = False
    if device_id and secret:
        ok = await hub.credentials.ok(device_id, secret)
    if not ok:
        counters.inc("refused_sockets", "ws")
        if hub.ctx.log_gate.ok(f"ws-denied:{_host(ws)}"):
            log.info("device channel: refused a socket from %s: bad credential", _host(ws))
        await _deny(ws, 403, "unauthorized", "X-Wrale-Device and a current device secret needed")
        return None
    link = _Link(ws, hub.ctx)
    await ws.accept()
    try:
        hello = await link.hello()
    except WebSocketDisconnect:
        return None
    except TimeoutError:
        await _say_goodbye(ws, goodbye("protocol", "no hello in time"))
        return None
    except ProtocolError as exc:
        counters.inc("bad_frames", "ws")
        await _say_goodbye(ws, goodbye("protocol", str(exc)))
        return None
    if device_id != hello.device_id:
        mismatch = "X-Wrale-Device and hello.device_id differ"
        await _say_goodbye(ws, goodbye("unauthorized", mismatch, retry=False))
        return None
    return link, hello


async def edge(ws: WebSocket) -> None:
    hub = hub_of(ws)
    host = _host(ws)
    if hub.pending[host] >= hub.ctx.settings.channel_max_pending_per_address:
        hub.ctx.counters.inc("refused_sockets", "ws")
        if hub.ctx.log_gate.ok(f"ws-pending:{host}"):
            log.warning("device channel: %s has too many sockets before hello; refusing", host)
        await _deny(ws, 429, "too_many_connections", "too many connections from this address")
        return
    hub.pending[host] += 1
    try:
        admitted = await _admit(ws, hub)
    finally:
        hub.pending[host] -= 1
        if hub.pending[host] <= 0:
            del hub.pending[host]
    if admitted is None:
        return
    link, hello = admitted
    session = hub.session(link.send)
    try:
        first = await session.open(hello, _secret_of(ws), remote=_remote(ws))
    except Exception:
        log.exception("device %s: could not open a session", hello.device_id[:64])
        await _say_goodbye(ws, goodbye("shutdown", "server error; reconnect later"))
        return
    if isinstance(first, Goodbye):
        await _say_goodbye(ws, first)
        return
    reason: str = "disconnected"
    bye: Goodbye | None = None
    hub.register(session)
    try:
        await link.send(first)
        try:
            await session.deliver(urgent=False)  # shares the next group commit
        except ConnectionError:
            raise
        except Exception:  # logged; the hub's sweep or the next push delivers it
            log.exception("device %s: delivery on connect failed", session.device_id)
        reason, bye = await link.serve(session)
    except ConnectionError:
        reason = "disconnected"
    except Exception:
        log.exception("device %s: session failed", session.device_id)
        reason, bye = "error", goodbye("shutdown", "server error; reconnect later")
    finally:
        hub.unregister(session)
        if bye is not None:
            await _say_goodbye(ws, bye)
        elif session.goodbye is not None:
            await _say_goodbye(ws, session.goodbye, sent=True)
        else:
            with contextlib.suppress(Exception):
                await ws.close(1000 if reason == "disconnected" else 1001)
        await session.close(reason)


class Direct:
    """ASGI middleware, the outermost of the app's own: the device channel's socket goes
    straight to ``edge``. The middlewares and the router between would only pass it on
    (each leaves WebSockets alone), but their frames and the route's exception handlers
    live as long as the socket: 6.5 KiB of a connected board's resident memory
    (``bench/conn_memory.py``, ``docs/central/scaling.md``)."""

    def __init__(self, app: ASGIApp, path: str) -> None:
        self.app, self.path = app, path

    async def __call__(self, scope: Scope, receive: Receive, send: ASGISend) -> None:
        if scope["type"] == "websocket" and scope["path"] == self.path:
            await edge(WebSocket(scope, receive, send))
            return
        await self.app(scope, receive, send)


def _host(ws: WebSocket) -> str:
    return ws.client.host if ws.client else "-"


def _remote(ws: WebSocket) -> str | None:
    return f"{ws.client.host}:{ws.client.port}" if ws.client else None


# ----------------------------------------------------------------------------- events


EventType = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]


class DeviceEventPublic(BaseModel):
    id: str
    device_id: str
    seq: int
    ts: float
    type: str
    severity: str
    message: str
    data: dict[str, Any]
    received_at: float


@router.get("/devices/{device_id}/events", tags=["devices"])
async def device_events(
    device_id: str,
    p: PrincipalDep,
    session: SessionDep,
    page: PageDep,
    type: Annotated[
        list[EventType] | None, Query(description="any of these event types (repeatable)")
    ] = None,
) -> Page[DeviceEventPublic]:
    """The events the board raised, newest first (``next_cursor`` continues to older ones)."""
    device = await registry.get_device(session, p.tenant_id, device_id)
    rows = await channel_events.list_events(
        session, device.id, before_id=page.after, types=type or (), limit=page.limit + 1
    )
    return page_of(
        rows, page, lambda e: DeviceEventPublic.model_validate(channel_events.event_view(e))
    )
