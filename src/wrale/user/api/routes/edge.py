"""``/api/v1/edge/ws``: the device channel over WebSocket, and ``/devices/{id}/events``.

A device connects with ``X-Wrale-Device: <id>`` and ``Authorization: Bearer <secret>``;
the socket is refused before it is accepted (HTTP 403, or 429 past
``channel_max_pending_per_address`` sockets of one address still before their hello)
unless the secret is a current credential of that device. It sends ``Hello`` first (at
most ``MAX_HELLO_BYTES``, within ``channel_hello_timeout_s``) and gets ``Welcome`` or a
``Goodbye`` refusal; then frames flow both ways (``fleet.sync.protocol``). The server
caps every message at ``WS_MAX_SIZE`` (uvicorn's ``ws_max_size``). This module is only the
transport: ``DeviceSession`` does the rest.

Per connection, once accepted: an ``EdgeLink`` (``edge_link``: bounded queues, workers
only while frames wait, silence found by one sweep). ``wrale central`` carries the socket
on its own protocol (``edge_wire``, no ASGI call per socket); ``edge`` below is the same
channel on any ASGI server. A malformed frame is counted and ends the session (Goodbye
``protocol``); a device silent for ``offline_after_s`` is dropped.

Close codes after a Goodbye: 4401 unauthorized / revoked, 4403 quarantined / held,
4400 protocol, 4409 replaced, 1012 shutdown (reconnect), 1011 a server error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Annotated, Any

from fastapi import APIRouter, Query, WebSocket
from fastapi.responses import JSONResponse
from pydantic import BaseModel, StringConstraints
from starlette.types import ASGIApp, Receive, Scope
from starlette.types import Send as ASGISend

from wrale.fleet.brain.channel import events as channel_events
from wrale.fleet.brain.channel.hub import ChannelHub
from wrale.fleet.brain.services import registry
from wrale.fleet.sync.protocol import MAX_FRAME_BYTES
from wrale.user.api.deps import PageDep, PrincipalDep, SessionDep
from wrale.user.api.edge_admit import DENIED, TOO_MANY, admission, bearer, denial, settle
from wrale.user.api.edge_link import DONE, SHUTDOWN, EdgeLink
from wrale.user.api.schemas.common import Page, page_of

log = logging.getLogger("wrale.central.edge")
router = APIRouter()

SERVER_RESTART = SHUTDOWN  # uvicorn closes every WebSocket with it when it shuts down
WS_MAX_SIZE = MAX_FRAME_BYTES  # uvicorn's ws_max_size: no WebSocket message is bigger


def hub_of(ws: WebSocket) -> ChannelHub:
    hub: ChannelHub = ws.app.state.hub
    return hub


def _secret_of(ws: WebSocket) -> str | None:
    return bearer(ws.headers.get("authorization", ""))


async def _deny(ws: WebSocket, status: int, code: str, message: str) -> None:
    """Refuse the socket before accepting it: an HTTP answer (403 / 429) where the server
    supports it, else a close, which the server turns into HTTP 403."""
    try:
        await ws.send_denial_response(JSONResponse(denial(code, message), status_code=status))
    except RuntimeError:  # no denial-response extension: close before accept → 403
        with contextlib.suppress(Exception):
            await ws.close(1008)


class _AsgiWire:
    """``Wire`` over an ASGI WebSocket: writes go out in order through one sender task
    (made while there is something to send), the close after them."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.reading = asyncio.Event()
        self.reading.set()
        self.closed = asyncio.get_running_loop().create_future()
        self._out: deque[str | tuple[int, str]] = deque()
        self._sender: asyncio.Task[None] | None = None
        self._broken = False

    def write(self, text: str) -> None:
        if self._broken or self.closed.done():
            raise ConnectionError("the socket is closed")
        self._push(text)

    async def drain(self) -> None:
        sender = self._sender
        if sender is not None:
            await asyncio.shield(sender)
        if self._broken:
            raise ConnectionError("the socket is closed")

    def pause(self) -> None:
        self.reading.clear()

    def resume(self) -> None:
        self.reading.set()

    def close(self, code: int, reason: str) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
            self._push((code, reason))

    def _push(self, item: str | tuple[int, str]) -> None:
        self._out.append(item)
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send())

    async def _send(self) -> None:
        try:
            while self._out:
                item = self._out.popleft()
                if isinstance(item, str):
                    if not self._broken:
                        try:
                            await self.ws.send_text(item)
                        except Exception:  # closed under us: the connection is gone
                            self._broken = True
                    continue
                with contextlib.suppress(Exception):
                    await self.ws.close(*item)
        finally:
            self._sender = None


async def _read(ws: WebSocket, wire: _AsgiWire, link: EdgeLink) -> None:
    """Hand what the socket brings to ``link`` until either end closes it."""
    while link.phase != DONE:
        if not wire.reading.is_set():
            await asyncio.wait(
                [asyncio.ensure_future(wire.reading.wait()), wire.closed],
                return_when=asyncio.FIRST_COMPLETED,
            )
            continue
        receive = asyncio.ensure_future(ws.receive())
        await asyncio.wait([receive, wire.closed], return_when=asyncio.FIRST_COMPLETED)
        if not receive.done():
            receive.cancel()
            return
        try:
            message = receive.result()
        except Exception:  # the server says the socket is over
            link.lost(1006)
            return
        if message["type"] == "websocket.disconnect":
            link.lost(int(message.get("code") or 1006))
            return
        data = message.get("text")
        if data is None:
            data = message.get("bytes") or b""
        link.received(data, len(data))


async def edge(ws: WebSocket) -> None:
    """The device channel on an ASGI server: admit, accept, then feed an ``EdgeLink``."""
    hub = hub_of(ws)
    host = _host(ws)
    device_id = ws.headers.get("x-wrale-device", "")
    status = await admission(hub, host, device_id, _secret_of(ws))
    if status == 429:
        await _deny(ws, 429, "too_many_connections", TOO_MANY)
        return
    if status:
        await _deny(ws, 403, "unauthorized", DENIED)
        return
    hub.pending[host] += 1  # until its hello is read (or the socket goes)
    await ws.accept()
    wire = _AsgiWire(ws)
    pending = True

    def past_hello() -> None:
        nonlocal pending
        if pending:
            pending = False
            settle(hub, host)

    link = EdgeLink(hub, wire, device_id, _secret_of(ws) or "", _remote(ws), on_hello=past_hello)
    try:
        await _read(ws, wire, link)
    except Exception:
        log.exception("device %s: socket failed", device_id[:64])
        link.lost(1006)
    finally:
        link.finish("disconnected")
        past_hello()
        if wire._sender is not None:
            with contextlib.suppress(Exception):
                await wire._sender
        if link.closing is not None:
            with contextlib.suppress(Exception):
                await link.closing


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
