"""Reading one HTTP/1.1 request off an asyncio stream, within fixed limits.

Total over its input: it returns a ``Request`` or raises ``HttpError`` (a 4xx/5xx refusal the
server sends back) or its subclass ``IncompleteRequestError`` (the peer went away mid-request).
No sockets, timeouts or application logic here; ``httpd`` drives it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs

import msgspec

from wrale.metal.core.http import TOKEN, HttpError, Request

_VERSION = re.compile(r"HTTP/([0-9])\.([0-9])")
_DIGITS = re.compile(r"[0-9]{1,18}")
MAX_QUERY_FIELDS = 100
_LINE_STARTS = frozenset(
    bytes([c])
    for c in b"\r\n!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)


class HttpLimits(msgspec.Struct, frozen=True):
    """What one client may cost metald; sized for a small board.

    A connection waits at most ``idle_timeout_s`` for the first byte of a request; from that
    byte on it has ``request_timeout_s`` for the whole request (blank lines, head and body),
    so a client that trickles bytes cannot hold a connection slot for long.
    """

    max_connections: int = 32
    max_connections_per_client: int = 16
    max_header_bytes: int = 8 * 1024
    max_header_lines: int = 100
    max_body_bytes: int = 64 * 1024
    idle_timeout_s: float = 30.0
    request_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if not 1 <= self.max_connections_per_client <= self.max_connections:
            raise ValueError("need 1 <= max_connections_per_client <= max_connections")
        if min(self.max_header_bytes, self.max_header_lines, self.max_body_bytes) < 1:
            raise ValueError("HTTP size limits must be positive")
        if min(self.idle_timeout_s, self.request_timeout_s) <= 0:
            raise ValueError("HTTP timeouts must be positive")

    @property
    def stream_limit(self) -> int:
        """The ``StreamReader`` line limit: one header line can never exceed the head."""
        return self.max_header_bytes + 2


class IncompleteRequestError(HttpError):
    """The peer closed its side before a whole request arrived: there is no one to answer."""

    def __init__(self) -> None:
        super().__init__(400, "incomplete_request", "request cut short", close=True)


def _too_large(limits: HttpLimits) -> HttpError:
    return HttpError(
        431,
        "headers_too_large",
        f"request header larger than {limits.max_header_bytes} bytes "
        f"or {limits.max_header_lines} lines",
        close=True,
    )


async def read_line(reader: asyncio.StreamReader, limits: HttpLimits) -> bytes:
    """One line including its ``\\n``; ``b""`` or a partial line at end of stream."""
    try:
        return await reader.readline()
    except ValueError:  # longer than the stream limit
        raise _too_large(limits) from None


async def read_request_line(
    reader: asyncio.StreamReader, limits: HttpLimits, first: bytes = b""
) -> bytes | None:
    """The next request line (``first``: its first byte, already read), skipping blank lines
    between requests (RFC 9112 §2.2); ``None`` when the peer closed the connection first."""
    if first and first not in _LINE_STARTS:  # binary, or a TLS hello: no need to wait
        raise _bad("not an HTTP request (this port speaks plain HTTP/1.1)")
    line = first if first == b"\n" else first + await read_line(reader, limits)
    while line in (b"\r\n", b"\n"):
        line = await read_line(reader, limits)
    if not line:
        return None
    if not line.endswith(b"\n"):
        raise IncompleteRequestError
    return line


async def read_request(
    line: bytes,
    reader: asyncio.StreamReader,
    limits: HttpLimits,
    send_continue: Callable[[], Awaitable[None]] | None = None,
) -> Request:
    """The request that ``line`` starts: its head, then a Content-Length body."""
    method, target, version = _request_line(line)
    headers: dict[str, str] = {}
    size, count = len(line), 0
    while True:
        raw = await read_line(reader, limits)
        size += len(raw)
        count += 1
        if size > limits.max_header_bytes or count > limits.max_header_lines:
            raise _too_large(limits)
        if not raw.endswith(b"\n"):
            raise IncompleteRequestError
        if raw in (b"\r\n", b"\n"):
            break
        name, value = _header_line(raw)
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    length = _content_length(headers, limits)
    if length and send_continue is not None and _expects_continue(headers):
        await send_continue()
    try:
        body = await reader.readexactly(length) if length else b""
    except asyncio.IncompleteReadError:
        raise IncompleteRequestError from None
    path, _, query = target.partition("?")
    return Request(
        method=method,
        path=path,
        query=_query(query.partition("#")[0]),
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
    if not target.startswith("/") or any(c < "!" or c == "\x7f" for c in target):
        raise _bad("request target must be a path starting with '/', without controls")
    return method, target, "HTTP/1.0" if version == "HTTP/1.0" else "HTTP/1.1"


def _header_line(raw: bytes) -> tuple[str, str]:
    text = raw.decode("latin-1").rstrip("\r\n")
    name, sep, value = text.partition(":")
    if not sep or not TOKEN.fullmatch(name):
        raise _bad("malformed header line")
    value = value.strip(" \t")
    if any((c < " " and c != "\t") or c == "\x7f" for c in value):
        raise _bad(f"control character in header {name!r}")
    return name.lower(), value


def _query(text: str) -> dict[str, list[str]]:
    try:
        return parse_qs(text, keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS)
    except ValueError:
        raise HttpError(
            414, "query_too_long", f"more than {MAX_QUERY_FIELDS} query parameters", close=True
        ) from None


def _expects_continue(headers: dict[str, str]) -> bool:
    return headers.get("expect", "").lower() == "100-continue"


def _content_length(headers: dict[str, str], limits: HttpLimits) -> int:
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
    if length > limits.max_body_bytes:
        raise HttpError(
            413,
            "payload_too_large",
            f"request body larger than {limits.max_body_bytes} bytes",
            details={"limit_bytes": limits.max_body_bytes},
            close=True,
        )
    return length
