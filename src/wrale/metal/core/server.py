"""metald's HTTP API: routes, bearer-key auth and the one domain → HTTP error translation.

Handlers only parse, call ``wrale.metal.core.api`` and wrap the answer; the same operations
serve the in-process MetalClient. ``/healthz`` is open, everything else needs the key.
"""

from __future__ import annotations

import hmac
import logging
import ssl
from collections.abc import Callable
from typing import Any

from wrale.metal.core import api, metrics
from wrale.metal.core.api_models import (
    AmbientBody,
    ArmBody,
    ClearFaultsQuery,
    DiagRunBody,
    EventQuery,
    FanOverrideBody,
    FaultBody,
    FreqCapBody,
    GpioBody,
    HistoryQuery,
    LoadBody,
    PoliciesBody,
    parse,
)
from wrale.metal.core.engine import MetalCore
from wrale.metal.core.http import (
    EventStream,
    Handler,
    HttpError,
    Request,
    Response,
    Router,
    SseEvent,
    encode_json,
    error_body,
    error_response,
    json_response,
)
from wrale.metal.core.httpd import HttpServer
from wrale.metal.core.ports import Diagnostics
from wrale.metal.core.request_parser import HttpLimits
from wrale.shared.errors import (
    AuthError,
    ConflictError,
    HardwareError,
    InvalidRequestError,
    NotFoundError,
    UnavailableError,
    UnsupportedError,
    WraleError,
)

log = logging.getLogger(__name__)

# Most specific first: UnsupportedError is a HardwareError, Unsafe/Lockdown are conflicts.
# A capability the hardware lacks is 422, not 501: a 5xx means a bug or an outage.
ERROR_STATUS: tuple[tuple[type[WraleError], int], ...] = (
    (NotFoundError, 404),
    (InvalidRequestError, 422),
    (ConflictError, 409),
    (AuthError, 401),
    (UnavailableError, 503),
    (UnsupportedError, 422),
    (HardwareError, 503),
)
AUTH_CHALLENGE = ("WWW-Authenticate", 'Bearer realm="metald"')
OPEN_PATHS = frozenset({"/healthz"})


def status_for(exc: WraleError) -> int | None:
    """HTTP status of a domain error; ``None`` for errors that are bugs at request time."""
    for cls, status in ERROR_STATUS:
        if isinstance(exc, cls):
            return status
    return None


def error_to_response(exc: WraleError) -> Response:
    status = status_for(exc)
    if status is None:
        log.error("unexpected %s at request time", type(exc).__name__, exc_info=exc)
        return error_response(500, "internal_error", "internal error (this is a bug)")
    if status >= 500:
        log.warning("%s: %s", exc.code, exc.message)
    headers = [AUTH_CHALLENGE] if isinstance(exc, AuthError) else []
    return error_response(status, exc.code, exc.message, exc.details, headers)


def _ok(data: Any, status: int = 200) -> Response:
    return json_response(data, status)


class MetaldServer:
    """The metald API over a ``MetalCore`` (and diagnostics, when the board has them)."""

    def __init__(
        self,
        core: MetalCore,
        *,
        api_key: str,
        diagnostics: Diagnostics | None,
        keepalive_s: float = 15.0,
        limits: HttpLimits | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("metald needs a non-empty API key")
        self.core = core
        self.diagnostics = diagnostics
        self._key = api_key.encode("utf-8")
        self.http = HttpServer(self._app, limits=limits, tls=tls, keepalive_s=keepalive_s)
        self.routes = self._routes()

    async def start(
        self, host: str, port: int, *, insecure_listen: bool = False
    ) -> tuple[str, int]:
        """Listen on ``host:port`` (0: any free port); returns the bound address. Plain HTTP
        beyond loopback needs ``insecure_listen`` (see ``HttpServer.start``)."""
        return await self.http.start(host, port, insecure_listen=insecure_listen)

    async def close(self) -> None:
        """Stop accepting, end event streams, let requests in flight finish."""
        await self.http.close()

    # ------------------------------------------------------------------ dispatch

    async def _app(self, request: Request) -> Response | EventStream:
        try:
            if request.path not in OPEN_PATHS:
                self._authorise(request)
            handler, params = self.routes.resolve(request.method, request.path)
            request.path_params = params
            return await handler(request)
        except WraleError as exc:
            return error_to_response(exc)

    def _authorise(self, request: Request) -> None:
        scheme, _, key = (request.header("authorization") or "").partition(" ")
        given = key.strip().encode("latin-1")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given, self._key):
            raise AuthError("missing or wrong API key (use 'Authorization: Bearer <key>')")

    def _routes(self) -> Router:
        r = Router()
        table: list[tuple[str, str, Handler]] = [
            ("GET", "/healthz", self.healthz),
            ("GET", "/metrics", self.metrics),
            ("GET", "/v1/state", self.get(api.state)),
            ("GET", "/v1/thermal", self.get(api.thermal)),
            ("GET", "/v1/power", self.get(api.power)),
            ("GET", "/v1/security", self.get(api.security)),
            ("GET", "/v1/gpio", self.get(api.gpio)),
            ("PUT", "/v1/thermal/fan", self.put_fan),
            ("DELETE", "/v1/thermal/fan", self.delete_fan),
            ("PUT", "/v1/thermal/throttle", self.put_throttle),
            ("GET", "/v1/policies", self.get(api.policies)),
            ("PUT", "/v1/policies", self.put_policies),
            ("POST", "/v1/security/arm", self.arm),
            ("POST", "/v1/security/disarm", self.disarm),
            ("GET", "/v1/gpio/{line}", self.get_line),
            ("PUT", "/v1/gpio/{line}", self.put_line),
            ("GET", "/v1/diag", self.diag_tests),
            ("POST", "/v1/diag/run", self.run_diag),
            ("GET", "/v1/diag/history", self.diag_history),
            ("GET", "/v1/events", self.events),
            ("GET", "/v1/sim", self.sim_status),
            ("PUT", "/v1/sim/ambient", self.sim_ambient),
            ("PUT", "/v1/sim/load", self.sim_load),
            ("PUT", "/v1/sim/job_load", self.sim_job_load),
            ("POST", "/v1/sim/faults", self.sim_fault),
            ("DELETE", "/v1/sim/faults", self.sim_clear),
        ]
        for method, path, handler in table:
            r.add(method, path, handler)
        return r

    # ------------------------------------------------------------------ handlers

    async def healthz(self, request: Request) -> Response:
        try:
            body = api.health(self.core)
        except UnavailableError as exc:
            body = {"status": "starting", **error_body(exc.code, exc.message)}
            return _ok(body, 503)
        return _ok(body, 200 if body["status"] == "ok" else 503)

    async def metrics(self, request: Request) -> Response:
        text = metrics.render(self.core.snapshot, self.http.requests)
        return Response(200, text.encode("utf-8"), metrics.CONTENT_TYPE)

    def get(self, view: Callable[[MetalCore], dict[str, Any]]) -> Handler:
        async def handler(request: Request) -> Response:
            return _ok(view(self.core))

        return handler

    async def put_fan(self, request: Request) -> Response:
        return _ok(await api.set_fan(self.core, parse(FanOverrideBody, request.json())))

    async def delete_fan(self, request: Request) -> Response:
        return _ok(await api.clear_fan(self.core))

    async def put_throttle(self, request: Request) -> Response:
        return _ok(await api.set_freq_cap(self.core, parse(FreqCapBody, request.json())))

    async def put_policies(self, request: Request) -> Response:
        return _ok(await api.update_policies(self.core, parse(PoliciesBody, request.json())))

    async def arm(self, request: Request) -> Response:
        return _ok(await api.arm(self.core, parse(ArmBody, request.json())))

    async def disarm(self, request: Request) -> Response:
        return _ok(await api.disarm(self.core))

    async def get_line(self, request: Request) -> Response:
        return _ok(await api.gpio_line(self.core, request.path_params["line"]))

    async def put_line(self, request: Request) -> Response:
        body = parse(GpioBody, request.json())
        return _ok(await api.gpio_set(self.core, request.path_params["line"], body))

    async def diag_tests(self, request: Request) -> Response:
        return _ok(api.diag_tests(self.diagnostics))

    async def run_diag(self, request: Request) -> Response:
        body = parse(DiagRunBody, request.json())
        return _ok(await api.run_diag(self.diagnostics, body))

    async def diag_history(self, request: Request) -> Response:
        q = parse(HistoryQuery, _query(request, "limit"))
        return _ok(await api.diag_history(self.diagnostics, q.limit))

    async def events(self, request: Request) -> Response | EventStream:
        raw = _query(request, "since_id", "limit", "min_severity", "stream")
        types = [t.strip().upper() for v in request.query.get("type", []) for t in v.split(",")]
        raw["type"] = [t for t in types if t] or None
        streaming = _truthy(raw.pop("stream", None)) or "text/event-stream" in (
            request.header("accept") or ""
        )
        if streaming and "since_id" not in raw and request.header("last-event-id"):
            raw["since_id"] = request.header("last-event-id")
        q = parse(EventQuery, raw)
        if not streaming:
            return _ok(await api.events(self.core, q))
        return EventStream(_SseFeed(await api.EventFeed(self.core, q).open()))

    async def sim_status(self, request: Request) -> Response:
        return _ok(api.sim_status(self.core))

    async def sim_ambient(self, request: Request) -> Response:
        return _ok(await api.sim_set_ambient(self.core, parse(AmbientBody, request.json())))

    async def sim_load(self, request: Request) -> Response:
        return _ok(await api.sim_set_load(self.core, parse(LoadBody, request.json())))

    async def sim_job_load(self, request: Request) -> Response:
        return _ok(await api.sim_set_job_load(self.core, parse(LoadBody, request.json())))

    async def sim_fault(self, request: Request) -> Response:
        return _ok(await api.sim_inject_fault(self.core, parse(FaultBody, request.json())))

    async def sim_clear(self, request: Request) -> Response:
        q = parse(ClearFaultsQuery, _query(request, "fault"))
        return _ok(await api.sim_clear_faults(self.core, q))


def _query(request: Request, *names: str) -> dict[str, Any]:
    return {n: v for n in names if (v := request.query_value(n)) is not None}


def _truthy(value: str | None) -> bool:
    if value is None:
        return False
    if value.lower() in ("", "1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise HttpError(422, "invalid_request", "stream: expected true or false")


class _SseFeed:
    """The board's events as Server-Sent Events (``id``, ``event`` = type, ``data`` = JSON)."""

    def __init__(self, feed: api.EventFeed) -> None:
        self._feed = feed

    def __aiter__(self) -> _SseFeed:
        return self

    async def __anext__(self) -> SseEvent:
        e = await anext(self._feed)
        return SseEvent(encode_json(e.to_dict()).decode("utf-8"), e.type.value, str(e.id))

    async def aclose(self) -> None:
        await self._feed.aclose()


def create_metald_server(
    core: MetalCore,
    *,
    api_key: str,
    diagnostics: Diagnostics | None,
    limits: HttpLimits | None = None,
    tls: ssl.SSLContext | None = None,
) -> MetaldServer:
    """The metald API server for ``core``; call ``start(host, port)`` to listen."""
    return MetaldServer(core, api_key=api_key, diagnostics=diagnostics, limits=limits, tls=tls)
