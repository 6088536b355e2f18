"""The device channel's own WebSocket carrier under uvicorn: no ASGI call per socket.

Under uvicorn's ASGI WebSocket a connected board held, for as long as it stayed
connected, uvicorn's protocol object and its receive queue, the ASGI scope and call
chain, and the route's coroutine and tasks: about half of its ~100 KiB in the central
(``docs/central/scaling.md``). Here a board's socket is this protocol (``EdgeWire``: the
transport, websockets' sans-I/O state machine and the ``EdgeLink``) and nothing else.

``central_websockets(app)`` is the class uvicorn gets as ``ws``: it looks at the path of
each upgrade request and hands the device channel's to ``EdgeWire`` and every other
WebSocket (the dashboard's live streams) to uvicorn's own protocol, as before. The
handshake is checked as uvicorn checks it (websockets' ``ServerProtocol``, the same
per-message deflate settings and ``ws_max_size``); the client's address honours
``X-Forwarded-For`` from ``forwarded_allow_ips`` as uvicorn's proxy-headers middleware
does (it is that middleware); refusals are the same HTTP 403 / 429 JSON answers.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, cast

from uvicorn.config import Config
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.server import ServerState
from websockets.datastructures import Headers
from websockets.exceptions import InvalidState
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import Protocol, State
from websockets.server import ServerProtocol

from wrale.fleet.brain.channel.hub import ChannelHub
from wrale.fleet.brain.channel.session import goodbye
from wrale.user.api.edge_admit import DENIED, TOO_MANY, admission, bearer, denial, settle
from wrale.user.api.edge_link import SHUTDOWN, EdgeLink, spawn
from wrale.user.api.ws_protocol import LeanWebSocketProtocol, deflate

EDGE_PATH = "/api/v1/edge/ws"
CLOSE_TIMEOUT_S = 10.0  # a peer that does not answer our close in this long is cut
# websockets logs every opened connection at INFO: 5,000 boards are 5,000 lines
_WIRE_LOG = logging.getLogger("wrale.central.edge.wire")
_WIRE_LOG.setLevel(logging.WARNING)
log = logging.getLogger("wrale.central.edge")
REFUSALS = {  # HTTP status → the JSON error's code and message
    403: ("unauthorized", DENIED),
    429: ("too_many_connections", TOO_MANY),
    503: ("unavailable", "the server cannot check credentials now; retry later"),
}


async def _keep(scope: Any, receive: Any, send: Any) -> None:
    """The proxy-headers middleware's inner app: the scope it rewrote is all we want."""


class EdgeWire(asyncio.Protocol):
    """One device socket: handshake, admission, then frames to and from its ``EdgeLink``."""

    __slots__ = (
        "close_timer",
        "closing",
        "conn",
        "gone",
        "host",
        "hub",
        "link",
        "parts",
        "proxy",
        "state",
        "transport",
        "writable",
    )

    def __init__(
        self,
        hub: ChannelHub,
        config: Config,
        state: ServerState,
        proxy: ProxyHeadersMiddleware | None,
    ) -> None:
        self.hub, self.state, self.proxy = hub, state, proxy
        context = hub.ctx.settings.channel_deflate_context
        extensions = [deflate(context)] if config.ws_per_message_deflate else []
        self.conn = ServerProtocol(
            extensions=extensions, max_size=config.ws_max_size, logger=_WIRE_LOG
        )
        self.transport: asyncio.Transport | None = None
        self.link: EdgeLink | None = None
        self.host = "-"
        self.parts: list[bytes] | None = None  # a fragmented message being put together
        self.writable: asyncio.Future[None] | None = None  # while the peer is behind
        self.close_timer: asyncio.TimerHandle | None = None
        self.closing = False
        self.gone = False

    # ------------------------------------------------------------------ transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)
        self.state.connections.add(cast("Any", self))

    def connection_lost(self, exc: Exception | None) -> None:
        self.gone = True
        self.state.connections.discard(cast("Any", self))
        if self.close_timer is not None:
            self.close_timer.cancel()
            self.close_timer = None
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)
        link, self.link = self.link, None  # no cycle left for the collector
        if link is not None:
            rcvd = self.conn.close_rcvd
            link.lost(rcvd.code if rcvd is not None else 1006)

    def pause_writing(self) -> None:
        if self.writable is None or self.writable.done():
            self.writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        conn.receive_data(data)
        for event in conn.events_received():
            if isinstance(event, Frame):
                self._frame(event)
            elif isinstance(event, Request):
                self._request(event)
        self._flush()
        if conn.parser_exc or conn.close_rcvd or (conn.handshake_exc and self.link is None):
            self._cut()  # a broken frame (close 1002 / 1009 said), the peer's close answered

    def _flush(self) -> None:
        out = self.conn.data_to_send()
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(out))

    def _cut(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def shutdown(self) -> None:
        """uvicorn stops: close 1012 (boards reconnect, to another replica if there is one)."""
        if self.link is None:
            self._cut()
            return
        if not self.closing:
            self.closing = True
            self.conn.send_close(SHUTDOWN, "")
            self._flush()
        self.link.lost(SHUTDOWN)
        self._cut()

    # ------------------------------------------------------------------ handshake

    def _request(self, request: Request) -> None:
        response = self.conn.accept(request)  # a bad handshake gets its 4xx here
        if response.status_code != 101:
            self.conn.send_response(response)
            self._flush()
            self._cut()
            return
        conn = self.conn
        if not conn.reader.buffer:
            # websockets' server parser keeps the parsed request (its headers, ~3 KiB) in
            # its generator's frame for the connection's life; nothing came after it, so a
            # fresh frame parser (what it goes on to run) takes its place, as websockets
            # itself swaps parsers (``discard``)
            conn.parser = Protocol.parse(conn)
            next(conn.parser)
        assert self.transport is not None
        self.transport.pause_reading()  # until admitted: nothing to read before the 101
        spawn(self._admit(request, response), cast("Any", self.state.tasks))

    async def _admit(self, request: Request, response: Response) -> None:
        assert self.transport is not None
        peer = self.transport.get_extra_info("peername")
        client = await self._client(request, peer)
        self.host = client[0] if client else "-"
        remote = f"{client[0]}:{client[1]}" if client else None
        device_id = request.headers.get("X-Wrale-Device", "")
        secret = bearer(request.headers.get("Authorization", "")) or ""
        try:
            status = await admission(self.hub, self.host, device_id, secret or None)
        except Exception:  # the database failed us: the board comes back later
            log.exception("device channel: could not check a socket's credential")
            status = 503
        if self.gone:
            return
        if status:
            code, message = REFUSALS.get(status, ("unauthorized", DENIED))
            body = json.dumps(denial(code, message)).encode()
            headers = Headers(
                [
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(body))),
                    ("Connection", "close"),
                ]
            )
            phrase = {429: "Too Many Requests", 503: "Service Unavailable"}.get(status, "Forbidden")
            self.conn.send_response(Response(status, phrase, headers, body))
            self._flush()
            self._cut()
            return
        self.hub.pending[self.host] += 1  # until its hello is read (or the socket goes)
        self.conn.send_response(response)
        self._flush()
        self.link = EdgeLink(
            self.hub,
            self,
            device_id,
            secret,
            remote,
            on_hello=lambda: settle(self.hub, self.host),
            keep=cast("Any", self.state.tasks),
        )
        self.transport.resume_reading()

    async def _client(
        self, request: Request, peer: tuple[str, int] | None
    ) -> tuple[str, int] | None:
        if self.proxy is None or not peer:
            return peer
        forwarded = [
            (k.lower().encode("latin-1"), v.encode("latin-1"))
            for k, v in request.headers.raw_items()
            if k.lower() in ("x-forwarded-for", "x-forwarded-proto")
        ]
        if not forwarded:
            return peer
        scope: dict[str, Any] = {"type": "websocket", "client": peer, "headers": forwarded}
        await self.proxy(cast("Any", scope), cast("Any", None), cast("Any", None))
        client = scope.get("client")
        return (str(client[0]), int(client[1])) if client else peer

    # ------------------------------------------------------------------ frames

    def _frame(self, frame: Frame) -> None:
        op = frame.opcode
        if op is Opcode.TEXT or op is Opcode.BINARY:
            if frame.fin:
                self._message(frame.data)
            else:
                self.parts = [bytes(frame.data)]
        elif op is Opcode.CONT:
            if self.parts is None:
                return  # the parser refuses a continuation without a start
            self.parts.append(bytes(frame.data))
            if frame.fin:
                data, self.parts = b"".join(self.parts), None
                self._message(data)
        # PING is answered by the protocol itself; PONG needs nothing; CLOSE: data_received

    def _message(self, data: bytes | bytearray | memoryview) -> None:
        if self.link is None:
            return  # frames before the handshake was answered: never from a real board
        raw = data if isinstance(data, bytes) else bytes(data)
        try:
            self.link.received(raw, len(raw))
        except Exception:  # a bug of ours must not take the event loop's callback down
            log.exception("device channel: a frame could not be handled")
            self.link.finish("error", goodbye("shutdown", "server error; reconnect later"))

    # ------------------------------------------------------------------ Wire

    def write(self, text: str) -> None:
        if self.gone or self.closing or self.transport is None:
            raise ConnectionError("the socket is closed")
        try:
            self.conn.send_text(text.encode())
        except InvalidState as exc:  # the peer's close came first
            raise ConnectionError("the socket is closing") from exc
        self._flush()

    async def drain(self) -> None:
        waiting = self.writable
        if waiting is not None and not waiting.done():
            await waiting
        if self.gone:
            raise ConnectionError("the socket is closed")

    def pause(self) -> None:
        if self.transport is not None and not self.gone:
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.transport is not None and not self.gone and not self.transport.is_closing():
            self.transport.resume_reading()

    def close(self, code: int, reason: str) -> None:
        if self.closing or self.gone or self.transport is None:
            return
        self.closing = True
        if self.conn.state is not State.OPEN:  # the peer's close came first: answered
            self._cut()
            return
        self.conn.send_close(code, reason)
        self._flush()
        self.transport.resume_reading()  # to read the peer's answering close
        loop = asyncio.get_running_loop()
        self.close_timer = loop.call_later(CLOSE_TIMEOUT_S, self._cut)


class CentralWebSockets(asyncio.Protocol):
    """uvicorn's ``ws`` protocol for the central: the device channel's sockets go to
    ``EdgeWire``, every other to ``LeanWebSocketProtocol`` (``central_websockets``)."""

    hub: ChannelHub
    proxy: ProxyHeadersMiddleware | None = None
    edge_path = EDGE_PATH.encode()

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.config, self.server_state, self.app_state = config, server_state, app_state
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        """The upgrade request's head, as uvicorn passes it on: choose, then hand over."""
        target = data.split(b"\r\n", 1)[0].split(b" ")
        path = target[1].split(b"?", 1)[0] if len(target) > 2 else b""
        proto: asyncio.Protocol
        if path == self.edge_path:
            proto = EdgeWire(self.hub, self.config, self.server_state, self.proxy)
        else:
            proto = LeanWebSocketProtocol(
                config=self.config, server_state=self.server_state, app_state=self.app_state
            )
        assert self.transport is not None
        proto.connection_made(self.transport)
        self.transport.set_protocol(proto)
        proto.data_received(data)


def central_websockets(hub: ChannelHub, config: Config | None = None) -> type[CentralWebSockets]:
    """The ``ws`` class for uvicorn, bound to this app's channel ``hub``; ``config`` (the
    one uvicorn is given) for its proxy settings (``proxy_headers``,
    ``forwarded_allow_ips``)."""
    proxy = None
    if config is None or config.proxy_headers:
        trusted = config.forwarded_allow_ips if config is not None else None
        proxy = ProxyHeadersMiddleware(_keep, trusted_hosts=trusted or "127.0.0.1")
    return type("CentralWebSockets", (CentralWebSockets,), {"hub": hub, "proxy": proxy})


def use_edge_wire(config: Config, hub: ChannelHub) -> Config:
    """Serve the app's WebSockets with ``central_websockets`` (before ``Server(config)``)."""
    config.ws = central_websockets(hub, config)
    return config
