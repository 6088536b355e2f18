"""A minimal HTTP/1.1 server on asyncio streams (metald must stay lean: no ASGI stack).

Parses requests within fixed limits, keeps connections alive, streams Server-Sent Events,
and never lets a malformed request or a failing handler take it down (a 500 is a bug).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

from wrale.metal.core.http import (
    TOKEN,
    EventStream,
    HttpError,
    Request,
    Response,
    SseEvent,
    error_response,
)

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 8 * 1024
MAX_HEADER_LINES = 100
MAX_BODY_BYTES = 64 * 1024
COUNTED_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
_VERSION = re.compile(r"HTTP/([0-9])\.([0-9])")
_DIGITS = re.compile(r"[0-9]{1,18}")

App = Callable[[Request], Awaitable[Response | EventStream]]


@dataclass(eq=False, slots=True)
class _Connection:
    writer: asyncio.StreamWriter
    task: asyncio.Task[Any] | None
    idle: bool = True


class HttpServer:
    """Serves ``app`` over HTTP/1.1. ``requests`` counts responses by (method, status)."""

    def __init__(
        self,
        app: App,
        *,
        idle_timeout_s: float = 30.0,
        request_timeout_s: float = 10.0,
        keepalive_s: float = 15.0,
        shutdown_grace_s: float = 5.0,
    ) -> None:
        self.app = app
        self.idle_timeout_s = idle_timeout_s
        self.request_timeout_s = request_timeout_s
        self.keepalive_s = keepalive_s
        self.shutdown_grace_s = shutdown_grace_s
        self.requests: Counter[tuple[str, int]] = Counter()
        self._server: asyncio.Server | None = None
        self._closing = asyncio.Event()
        self._conns: set[_Connection] = set()

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen on ``host:port`` (port 0: any free port); returns the bound address."""
        self._server = await asyncio.start_server(
            self._on_connection, host, port, limit=MAX_HEADER_BYTES + 2
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
        conn = _Connection(writer, asyncio.current_task())
        self._conns.add(conn)
        try:
            await self._serve(conn, reader, writer)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass
        except Exception:
            log.exception("HTTP connection failed")
        finally:
            try:
                await self._hang_up(writer)
            finally:
                self._conns.discard(conn)

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
        while not self._closing.is_set():
            conn.idle = True
            try:
                async with asyncio.timeout(self.idle_timeout_s):
                    line = await _read_line(reader)
                while line in (b"\r\n", b"\n"):  # stray CRLF between requests is allowed
                    async with asyncio.timeout(self.idle_timeout_s):
                        line = await _read_line(reader)
                if not line.endswith(b"\n"):
                    return  # EOF (or half a request line): nothing to answer
                conn.idle = False
                async with asyncio.timeout(self.request_timeout_s):
                    request = await _read_request(line, reader, writer)
            except HttpError as exc:
                await self._send(writer, "other", "HTTP/1.1", exc.response(), keep_alive=False)
                return
            except TimeoutError:
                if not conn.idle:
                    resp = error_response(408, "timeout", "request not received in time")
                    await self._send(writer, "other", "HTTP/1.1", resp, keep_alive=False)
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


# ----------------------------------------------------------------------------- parsing


async def _read_line(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readline()
    except ValueError:  # longer than the stream limit
        raise HttpError(431, "headers_too_large", "request header too large", close=True) from None


async def _read_request(
    line: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> Request:
    method, target, version = _request_line(line)
    headers: dict[str, str] = {}
    size, count = len(line), 0
    while True:
        raw = await _read_line(reader)
        size += len(raw)
        count += 1
        if size > MAX_HEADER_BYTES or count > MAX_HEADER_LINES:
            raise HttpError(
                431,
                "headers_too_large",
                f"request header larger than {MAX_HEADER_BYTES} bytes",
                close=True,
            )
        if not raw.endswith(b"\n"):
            raise asyncio.IncompleteReadError(raw, None)
        if raw in (b"\r\n", b"\n"):
            break
        name, value = _header_line(raw)
        if name in headers:
            headers[name] = f"{headers[name]}, {value}"
        else:
            headers[name] = value
    length = _content_length(headers)
    if length and headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await writer.drain()
    body = await reader.readexactly(length) if length else b""
    path, _, query = target.partition("?")
    return Request(
        method=method,
        path=path,
        query=parse_qs(query.partition("#")[0], keep_blank_values=True),
        headers=headers,
        body=body,
        version=version,
    )


def _bad(message: str) -> HttpError:
    return HttpError(400, "bad_request", message, close=True)


def _request_line(line: bytes) -> tuple[str, str, str]:
    parts = line.decode("latin-1").rstrip("\r\n").split(" ")
    if len(parts) != 3:
        raise _bad("malformed request line")
    method, target, version = parts
    if not TOKEN.fullmatch(method):
        raise _bad("malformed request method")
    match = _VERSION.fullmatch(version)
    if match is None:
        raise _bad("malformed HTTP version")
    if match.group(1) != "1":
        raise HttpError(505, "version_not_supported", "only HTTP/1.x is served", close=True)
    if not target.startswith("/"):
        raise _bad("request target must be a path starting with '/'")
    return method, target, "HTTP/1.0" if version == "HTTP/1.0" else "HTTP/1.1"


def _header_line(raw: bytes) -> tuple[str, str]:
    text = raw.decode("latin-1").rstrip("\r\n")
    name, sep, value = text.partition(":")
    if not sep or not TOKEN.fullmatch(name):
        raise _bad("malformed header line")
    return name.lower(), value.strip(" \t")


def _content_length(headers: dict[str, str]) -> int:
    if "transfer-encoding" in headers:
        raise HttpError(
            411,
            "length_required",
            "chunked request bodies are not accepted; send a Content-Length",
            close=True,
        )
    raw = headers.get("content-length")
    if raw is None:
        return 0
    values = {v.strip() for v in raw.split(",")}
    if len(values) != 1 or not _DIGITS.fullmatch(next(iter(values))):
        raise _bad("malformed Content-Length")
    length = int(values.pop())
    if length > MAX_BODY_BYTES:
        raise HttpError(
            413,
            "payload_too_large",
            f"request body larger than {MAX_BODY_BYTES} bytes",
            details={"limit_bytes": MAX_BODY_BYTES},
            close=True,
        )
    return length


def _head(status: int, headers: list[tuple[str, str]]) -> bytes:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {status} {reason}", f"Date: {formatdate(usegmt=True)}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
