"""HTTP building blocks of metald: requests, JSON and Server-Sent Events responses, a router.

Plain data and pure functions only; ``httpd`` runs them on asyncio streams. Nothing here
knows about boards, keys or the ``/v1`` API.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import unquote

import msgspec

JSON_TYPE = "application/json"
TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class HttpError(Exception):
    """A refusal at the HTTP level; becomes ``{"error": {"code", "message", "details"}}``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        headers: Iterable[tuple[str, str]] = (),
        close: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = list(headers)
        self.close = close  # the connection cannot be reused (e.g. an unread body)

    def response(self) -> Response:
        resp = error_response(self.status, self.code, self.message, self.details, self.headers)
        resp.close = self.close
        return resp


class Request(msgspec.Struct):
    """One parsed request. ``headers`` keys are lower case; ``path`` is still %-encoded."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""
    version: str = "HTTP/1.1"
    path_params: dict[str, str] = msgspec.field(default_factory=dict)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def query_value(self, name: str) -> str | None:
        """The last value of a query parameter, or ``None`` when absent."""
        values = self.query.get(name)
        return values[-1] if values else None

    def tokens(self, header: str) -> set[str]:
        """A comma-separated header as a set of lower-case tokens (``Connection``)."""
        value = self.headers.get(header, "")
        return {t.strip().lower() for t in value.split(",") if t.strip()}

    @property
    def wants_keep_alive(self) -> bool:
        conn = self.tokens("connection")
        if self.version == "HTTP/1.0":
            return "keep-alive" in conn
        return "close" not in conn

    def json(self) -> Any:
        """The body as JSON (``None`` when empty); NaN/Infinity and bad UTF-8 are refused."""
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body.decode("utf-8"), parse_constant=_no_constant)
        except UnicodeDecodeError:
            raise HttpError(422, "invalid_request", "request body is not UTF-8") from None
        except (ValueError, RecursionError) as exc:
            raise HttpError(
                422, "invalid_request", f"request body is not valid JSON: {exc}"
            ) from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


class Response(msgspec.Struct):
    """A complete response; ``body`` is sent with a Content-Length."""

    status: int = 200
    body: bytes = b""
    content_type: str | None = JSON_TYPE
    headers: list[tuple[str, str]] = msgspec.field(default_factory=list)
    close: bool = False


class SseEvent(msgspec.Struct, frozen=True):
    """One Server-Sent Event: ``id``, ``event`` (its type) and ``data`` (text, may span lines)."""

    data: str
    event: str | None = None
    id: str | None = None

    def encode(self) -> bytes:
        lines = []
        if self.id is not None:
            lines.append(f"id: {_one_line(self.id)}")
        if self.event is not None:
            lines.append(f"event: {_one_line(self.event)}")
        lines += [f"data: {part}" for part in self.data.splitlines() or [""]]
        return ("\n".join(lines) + "\n\n").encode("utf-8")


def _one_line(text: str) -> str:
    return text.replace("\r", " ").replace("\n", " ")


class EventStream(msgspec.Struct):
    """A ``text/event-stream`` response fed by ``events`` until it ends, the client goes away
    or the server shuts down; the server sends ``: keepalive`` comments in quiet spells."""

    events: AsyncIterator[SseEvent]
    headers: list[tuple[str, str]] = msgspec.field(default_factory=list)


Handler = Callable[[Request], Awaitable[Response | EventStream]]


_JSON_OPTIONS: dict[str, Any] = {"ensure_ascii": False, "separators": (",", ":"), "default": str}


def encode_json(data: Any) -> bytes:
    """Compact UTF-8 JSON; a NaN or infinity that slipped into the data becomes ``null``, and
    a value JSON has no type for (an enum, a path) becomes its string."""
    try:
        text = json.dumps(data, **_JSON_OPTIONS, allow_nan=False)
    except ValueError:
        text = json.dumps(_finite(data), **_JSON_OPTIONS)
    return text.encode("utf-8")


def _finite(data: Any) -> Any:
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_finite(v) for v in data]
    return data


def json_response(
    data: Any, status: int = 200, headers: Iterable[tuple[str, str]] = ()
) -> Response:
    return Response(status, encode_json(data), JSON_TYPE, list(headers))


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: Iterable[tuple[str, str]] = (),
) -> Response:
    return json_response(error_body(code, message, details), status, headers)


# ----------------------------------------------------------------------------- routing


class _Route(msgspec.Struct, frozen=True):
    parts: tuple[str, ...]
    handlers: dict[str, Handler]

    @property
    def params(self) -> int:
        return sum(p.startswith("{") for p in self.parts)

    def match(self, segments: list[str]) -> dict[str, str] | None:
        if len(segments) != len(self.parts):
            return None
        found: dict[str, str] = {}
        for part, seg in zip(self.parts, segments, strict=True):
            if part.startswith("{"):
                if not seg:
                    return None
                found[part[1:-1]] = seg
            elif part != seg:
                return None
        return found


class Router:
    """Maps ``(method, path)`` to a handler; ``{name}`` in a pattern matches one segment."""

    def __init__(self) -> None:
        self._routes: list[_Route] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        if not pattern.startswith("/"):
            raise ValueError(f"route {pattern!r} must start with '/'")
        if not TOKEN.fullmatch(method):
            raise ValueError(f"bad method {method!r}")
        parts = tuple(pattern.split("/")[1:])
        for route in self._routes:
            if route.parts == parts:
                if method in route.handlers:
                    raise ValueError(f"{method} {pattern} is routed twice")
                route.handlers[method] = handler
                return
        self._routes.append(_Route(parts, {method: handler}))
        self._routes.sort(key=lambda r: r.params)  # literal segments win over parameters

    def resolve(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        """The handler and path parameters; ``HttpError`` 404, or 405 with ``Allow``."""
        segments = [unquote(s, errors="replace") for s in path.split("/")[1:]]
        allowed: set[str] = set()
        for route in self._routes:
            params = route.match(segments)
            if params is None:
                continue
            handler = route.handlers.get(method)
            if handler is not None:
                return handler, params
            allowed.update(route.handlers)
        if allowed:
            allow = ", ".join(sorted(allowed))
            raise HttpError(
                405,
                "method_not_allowed",
                f"{method} is not allowed here; allowed: {allow}",
                details={"allow": sorted(allowed)},
                headers=[("Allow", allow)],
            )
        raise HttpError(404, "not_found", f"no such endpoint: {unquote(path, errors='replace')}")


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(when: float | None = None) -> str:
    """``when`` (default now) as an HTTP date (``Sun, 06 Nov 1994 08:49:37 GMT``); not
    email.utils, which costs the board about a MiB of memory for this one line."""
    if when is None:
        when = time.time()
    # whole seconds as datetime rounds them (to the microsecond, half to even), like email.utils
    frac, whole = math.modf(when)
    micros = round(frac * 1e6)
    t = time.gmtime(whole + (1 if micros >= 1_000_000 else -1 if micros < 0 else 0))
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )
