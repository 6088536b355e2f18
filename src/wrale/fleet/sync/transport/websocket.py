"""The device channel over a WebSocket: the agent dials ``/api/v1/edge/ws`` on the central
server with its credential in the headers (``X-Wrale-Device``, ``Authorization: Bearer``).

``wss://`` verifies the server certificate (system CAs, or ``ca_file`` for a private fleet);
plain ``ws://`` is used only to loopback or with ``insecure=True``, which logs a warning.
``websockets`` is imported here only, so processes that never dial do not load it.
"""

from __future__ import annotations

import dataclasses
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from wrale.fleet.sync.protocol import MAX_FRAME_BYTES, Goodbye, Hello, Message, Welcome, decode
from wrale.fleet.sync.protocol import encode as encode_frame
from wrale.fleet.sync.transport.base import (
    CLOSE_UNAUTHORIZED,
    Connection,
    ConnectionClosed,
    DialError,
    Refused,
    handshake,
    require_secure,
)
from wrale.shared.errors import ConfigError
from wrale.shared.lean_import import without_modules

# websockets imports these two but, as used here (an explicit proxy only), never uses them
with without_modules("importlib.metadata", "urllib.request"):
    from websockets.asyncio.client import ClientConnection, connect
    from websockets.exceptions import ConnectionClosed as WsClosed
    from websockets.exceptions import InvalidStatus, WebSocketException

EDGE_PATH = "/api/v1/edge/ws"
_SCHEMES = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}


def edge_ws_url(central_url: str) -> str:
    """``https://central.example`` → ``wss://central.example/api/v1/edge/ws`` (an URL that
    already ends with the path is kept)."""
    parts = urlsplit(central_url.strip())
    scheme = _SCHEMES.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise ConfigError(f"central URL {central_url!r} must be https://HOST[:PORT] (or http://)")
    path = parts.path.rstrip("/")
    if not path.endswith(EDGE_PATH):
        path += EDGE_PATH
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def _unauthorized(detail: str) -> Refused:
    return Refused(Goodbye("unauthorized", detail, retry=False))


class WebSocketConnection:
    """A ``Connection`` over an open ``websockets`` client connection."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    @staticmethod
    def _closed(exc: WsClosed) -> ConnectionClosed:
        frame = exc.rcvd or exc.sent
        code = frame.code if frame is not None else None
        reason = (frame.reason if frame is not None else "") or "connection closed"
        return ConnectionClosed(reason, code)

    async def send(self, msg: Message) -> None:
        try:
            await self.ws.send(encode_frame(msg))
        except WsClosed as exc:
            raise self._closed(exc) from None

    async def recv(self) -> Message:
        try:
            frame = await self.ws.recv()
        except WsClosed as exc:
            raise self._closed(exc) from None
        return decode(frame)

    async def close(self) -> None:
        await self.ws.close()


class WebSocketDialer:
    """A ``Dialer`` to the central server over WebSocket, for one device credential."""

    def __init__(
        self,
        central_url: str,
        device_id: str,
        secret: str,
        *,
        ca_file: Path | str | None = None,
        insecure: bool = False,
        open_timeout_s: float = 10.0,
        handshake_timeout_s: float = 10.0,
        ping_interval_s: float | None = 20.0,
        compression: bool = True,
        proxy: str | None = None,
    ) -> None:
        self.url = edge_ws_url(central_url)
        self.tls = require_secure(self.url, insecure=insecure)
        self.device_id = device_id
        self._secret = secret
        self.open_timeout_s = open_timeout_s
        self.handshake_timeout_s = handshake_timeout_s
        self.ping_interval_s = ping_interval_s
        self.compression = compression
        self.proxy = proxy
        self._ssl: ssl.SSLContext | None = None
        if self.tls:
            try:
                self._ssl = ssl.create_default_context(
                    cafile=None if ca_file is None else str(ca_file)
                )
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"CA file {ca_file} cannot be used: {exc}") from None

    async def __call__(self, hello: Hello) -> tuple[Connection, Welcome]:
        """Open the WebSocket, send ``hello`` (without a secret: it is in the headers) and
        return the connection with the server's ``Welcome``."""
        headers = {"X-Wrale-Device": self.device_id, "Authorization": f"Bearer {self._secret}"}
        options: dict[str, Any] = {
            "additional_headers": headers,
            "open_timeout": self.open_timeout_s,
            "max_size": MAX_FRAME_BYTES,
            "compression": "deflate" if self.compression else None,
            "ping_interval": self.ping_interval_s,
            "ping_timeout": self.ping_interval_s,
            "close_timeout": 5.0,
            "user_agent_header": f"wrale-edge/{hello.agent_version}",
            # An explicit proxy only: reading the environment's proxies would load
            # urllib.request and the email parser (about a MiB on the board) for nothing.
            "proxy": self.proxy,
        }
        if self._ssl is not None:
            options["ssl"] = self._ssl
        try:
            ws = await connect(self.url, **options)
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                raise _unauthorized(
                    f"the server refused the device credential (HTTP {status})"
                ) from None
            raise DialError(f"{self.url}: the server answered HTTP {status}") from None
        except (OSError, TimeoutError, WebSocketException) as exc:
            raise DialError(f"{self.url}: {type(exc).__name__}: {exc}") from None
        conn = WebSocketConnection(ws)
        try:
            welcome = await handshake(
                conn, dataclasses.replace(hello, secret=None), self.handshake_timeout_s
            )
        except ConnectionClosed as exc:
            if exc.code == CLOSE_UNAUTHORIZED:
                raise _unauthorized(exc.reason) from None
            raise DialError(f"{self.url}: closed during the handshake: {exc.reason}") from None
        return conn, welcome
