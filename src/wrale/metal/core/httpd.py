"""A minimal HTTP/1.1 server on asyncio streams (metald must stay lean: no ASGI stack).

Caps connections (in all and per client address), reads requests within ``HttpLimits``,
optionally over TLS, keeps connections alive, streams Server-Sent Events, and never lets a
malformed request or a failing handler take it down (a 500 is a bug).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from http import HTTPStatus
from typing import Any

import msgspec

from wrale.metal.core.http import (
    EventStream,
    HttpError,
    Request,
    Response,
    SseEvent,
    error_response,
    http_date,
)
from wrale.metal.core.request_parser import (
    HttpLimits,
    IncompleteRequestError,
    read_request,
    read_request_line,
)
from wrale.shared.config import is_loopback_host

log = logging.getLogger(__name__)

COUNTED_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
BUSY_RETRY_AFTER_S = 1
LINGER_S = 1.0  # how long a refused client's remaining input is read and dropped
LINGER_MAX_BYTES = 256 * 1024

App = Callable[[Request], Awaitable[Response | EventStream]]


class _Connection(msgspec.Struct, eq=False):
    writer: asyncio.StreamWriter
    task: asyncio.Task[Any] | None
    peer: str
    idle: bool = True


class HttpServer:
    """Serves ``app`` over HTTP/1.1 (HTTPS with ``tls``). ``requests`` counts responses by
    (method, status); connections refused at the cap count as ``("other", 503)``."""

    def __init__(
        self,
        app: App,
        *,
        limits: HttpLimits | None = None,
        tls: ssl.SSLContext | None = None,
        keepalive_s: float = 15.0,
        shutdown_grace_s: float = 5.0,
    ) -> None:
        self.app = app
        self.limits = limits or HttpLimits()
        self.tls = tls
        self.keepalive_s = keepalive_s
        self.shutdown_grace_s = shutdown_grace_s
        self.requests: Counter[tuple[str, int]] = Counter()
        self._server: asyncio.Server | None = None
        self._closing = asyncio.Event()
        self._conns: set[_Connection] = set()
        self._per_peer: Counter[str] = Counter()

    @property
    def connections(self) -> int:
        """Connections open now (each holds a slot of ``limits.max_connections``)."""
        return len(self._conns)

    async def start(
        self, host: str, port: int, *, insecure_listen: bool = False
    ) -> tuple[str, int]:
        """Listen on ``host:port`` (port 0: any free port); returns the bound address.

        Plain HTTP beyond loopback is refused (``ValueError``) unless ``insecure_listen``,
        and then logged as a warning: the bearer key would cross the network in clear."""
        if self.tls is None and not is_loopback_host(host):
            if not insecure_listen:
                raise ValueError(f"refusing plain HTTP on non-loopback address {host!r}")
            log.warning(
                "serving plain HTTP on %s (insecure listen): anyone on that network can read "
                "the API key and the traffic; use TLS or listen on 127.0.0.1",
                host or "every address",
            )
        self._server = await asyncio.start_server(
            self._on_connection, host, port, limit=self.limits.stream_limit
        )
        sockname = self._server.sockets[0].getsockname()
        return str(sockname[0]), int(sockname[1])

    async def close(self) -> None:
        """Stop accepting, end event streams and idle connections, let requests finish."""
        if self._server is None:
            return
        self._closing.set()
        self._server.close()
        for conn in list(self._conns):
            if conn.idle:
                conn.writer.close()
        tasks = [c.task for c in self._conns if c.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.shutdown_grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    # ------------------------------------------------------------------ connections

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peername = writer.get_extra_info("peername")
        peer = str(peername[0]) if isinstance(peername, tuple) and peername else "?"
        if (
            len(self._conns) >= self.limits.max_connections
            or self._per_peer[peer] >= self.limits.max_connections_per_client
        ):
            self._refuse(writer)
            return
        conn = _Connection(writer, asyncio.current_task(), peer)
        self._conns.add(conn)
        self._per_peer[peer] += 1
        try:
            if self.tls is not None:
                tls_streams = await self._start_tls(writer.transport, self.tls)
                if tls_streams is None:
                    writer.transport.abort()
                    return
                reader, conn.writer = tls_streams
            await self._serve(conn, reader, conn.writer)
        except (ConnectionError, TimeoutError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        except Exception:
            log.exception("HTTP connection failed")
        finally:
            try:
                if self.tls is None or conn.writer is not writer:
                    await self._hang_up(conn.writer)
            finally:
                self._conns.discard(conn)
                self._per_peer[peer] -= 1
                if self._per_peer[peer] <= 0:
                    del self._per_peer[peer]

    async def _start_tls(
        self, raw: asyncio.BaseTransport, tls: ssl.SSLContext
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """The TLS handshake, only once the connection holds a slot and within the request
        deadline; new streams over it, or ``None`` when it failed or the peer left.

        ``StreamWriter.start_tls`` is not used: on CPython 3.11 it fails with an
        AttributeError, and leaves the writer unclosable, when the peer leaves mid-handshake.
        """
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=self.limits.stream_limit, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        try:
            transport = await loop.start_tls(
                raw,  # type: ignore[arg-type]  # a socket transport, as start_tls needs
                protocol,
                tls,
                server_side=True,
                ssl_handshake_timeout=self.limits.request_timeout_s,
            )
        except (ConnectionError, TimeoutError, ssl.SSLError, OSError):
            return None
        if transport is None:
            return None
        protocol.connection_made(transport)
        return reader, asyncio.StreamWriter(transport, protocol, reader, loop)

    def _refuse(self, writer: asyncio.StreamWriter) -> None:
        """Over the cap: a plain-HTTP client gets a 503 at once, a TLS client a closed
        socket; nothing is read or buffered."""
        self.requests[("other", 503)] += 1
        if self.tls is None:
            resp = error_response(
                503, "too_many_connections", "metald is serving as many clients as it may"
            )
            headers = [
                ("Content-Length", str(len(resp.body))),
                ("Content-Type", "application/json"),
                ("Connection", "close"),
                ("Retry-After", str(BUSY_RETRY_AFTER_S)),
            ]
            with contextlib.suppress(ConnectionError, OSError):
                writer.write(_head(503, headers) + resp.body)
        writer.close()  # flushes what fits in the socket buffer, then closes

    async def _linger(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """After refusing a request whose rest may still be arriving: stop sending, then
        read and drop input for a moment, so that closing with unread data does not reset
        the connection before the client has read the refusal. Bounded in time and bytes."""
        with contextlib.suppress(ConnectionError, OSError, TimeoutError):
            if writer.can_write_eof():
                writer.write_eof()
            left = LINGER_MAX_BYTES
            async with asyncio.timeout(min(LINGER_S, self.limits.request_timeout_s)):
                while left > 0 and (chunk := await reader.read(min(left, 16 * 1024))):
                    left -= len(chunk)

    async def _hang_up(self, writer: asyncio.StreamWriter) -> None:
        writer.close()
        try:
            async with asyncio.timeout(self.shutdown_grace_s):
                await writer.wait_closed()
        except TimeoutError:  # the peer does not read what is left: drop it
            writer.transport.abort()
        except (ConnectionError, OSError):
            pass

    async def _serve(
        self, conn: _Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        async def send_continue() -> None:
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await writer.drain()

        while not self._closing.is_set():
            conn.idle = True
            try:
                async with asyncio.timeout(self.limits.idle_timeout_s):
                    first = await reader.read(1)
                if not first:
                    return  # the client closed the connection between requests
                conn.idle = False
                async with asyncio.timeout(self.limits.request_timeout_s):
                    line = await read_request_line(reader, self.limits, first)
                    if line is None:
                        return
                    request = await read_request(line, reader, self.limits, send_continue)
            except IncompleteRequestError:
                return  # half a request, then EOF: nobody left to answer
            except HttpError as exc:
                await self._send(writer, "other", "HTTP/1.1", exc.response(), keep_alive=False)
                await self._linger(reader, writer)
                return
            except TimeoutError:
                if not conn.idle:
                    resp = error_response(408, "timeout", "request not received in time")
                    await self._send(writer, "other", "HTTP/1.1", resp, keep_alive=False)
                    await self._linger(reader, writer)
                return
            method = request.method if request.method in COUNTED_METHODS else "other"
            result = await self._call(request)
            if isinstance(result, EventStream):
                self.requests[(method, 200)] += 1
                await self._stream(reader, writer, request, result)
                return
            keep = request.wants_keep_alive and not result.close and not self._closing.is_set()
            await self._send(writer, method, request.version, result, keep_alive=keep)
            if not keep:
                return

    async def _call(self, request: Request) -> Response | EventStream:
        try:
            return await self.app(request)
        except HttpError as exc:
            return exc.response()
        except Exception:
            log.exception("unhandled error in %s %s", request.method, request.path)
            return error_response(500, "internal_error", "internal error (this is a bug)")

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        method: str,
        version: str,
        resp: Response,
        *,
        keep_alive: bool,
    ) -> None:
        self.requests[(method, resp.status)] += 1
        headers = [("Content-Length", str(len(resp.body)))]
        if resp.content_type:
            headers.append(("Content-Type", resp.content_type))
        if not keep_alive:
            headers.append(("Connection", "close"))
        elif version == "HTTP/1.0":
            headers.append(("Connection", "keep-alive"))
        writer.write(_head(resp.status, headers + resp.headers) + resp.body)
        await writer.drain()

    # ------------------------------------------------------------------ event streams

    async def _stream(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        request: Request,
        stream: EventStream,
    ) -> None:
        chunked = request.version != "HTTP/1.0"
        headers = [
            ("Content-Type", "text/event-stream; charset=utf-8"),
            ("Cache-Control", "no-cache"),
            ("Connection", "close"),
            ("X-Accel-Buffering", "no"),
            *stream.headers,
        ]
        if chunked:
            headers.append(("Transfer-Encoding", "chunked"))

        def frame(data: bytes) -> bytes:
            return f"{len(data):x}\r\n".encode() + data + b"\r\n" if chunked else data

        events = stream.events
        gone = asyncio.create_task(_wait_eof(reader))
        closing = asyncio.create_task(self._closing.wait())
        nxt: asyncio.Task[SseEvent] | None = None
        try:
            writer.write(_head(200, headers))
            await writer.drain()
            while True:
                if nxt is None:
                    nxt = asyncio.create_task(_next(events))
                done, _ = await asyncio.wait(
                    {nxt, gone, closing},
                    timeout=self.keepalive_s,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if gone in done:
                    return
                if nxt in done:
                    finished, nxt = nxt, None
                    try:
                        event = finished.result()
                    except StopAsyncIteration:
                        break
                    writer.write(frame(event.encode()))
                elif closing in done:
                    break
                else:
                    writer.write(frame(b": keepalive\n\n"))
                await writer.drain()
            if chunked:
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        except Exception:
            log.exception("event stream of %s failed", request.path)
        finally:
            for task in (nxt, gone, closing):
                if task is not None:
                    task.cancel()
            await asyncio.gather(
                *(t for t in (nxt, gone, closing) if t is not None), return_exceptions=True
            )
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()


async def _next(events: AsyncIterator[SseEvent]) -> SseEvent:
    return await anext(events)


async def _wait_eof(reader: asyncio.StreamReader) -> None:
    """Returns when the client closes its side (anything it sends meanwhile is ignored)."""
    with contextlib.suppress(ConnectionError, OSError):
        while await reader.read(4096):
            pass


def _head(status: int, headers: list[tuple[str, str]]) -> bytes:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {status} {reason}", f"Date: {http_date()}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
