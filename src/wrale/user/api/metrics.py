"""The central server's Prometheus metrics, written by hand in the text format (0.0.4).

Per-process counters (HTTP requests, ingested telemetry points, open WebSockets) live on
``app.state.metrics``; fleet gauges (devices by status, open alerts by severity) are counted
in the database at scrape time and aggregated across tenants (no tenant labels).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Executable, Table, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wrale import __version__
from wrale.fleet.brain.models import Base, Device

log = logging.getLogger("wrale.central.metrics")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "<unmatched>"  # one label for every path no route knows (bounded cardinality)


@dataclass
class Histogram:
    buckets: list[int] = field(default_factory=lambda: [0] * len(BUCKETS_S))
    total_s: float = 0.0
    count: int = 0

    def observe(self, seconds: float) -> None:
        for i, bound in enumerate(BUCKETS_S):
            if seconds <= bound:
                self.buckets[i] += 1
        self.total_s += seconds
        self.count += 1


@dataclass
class Counter:
    """A monotonically increasing count, e.g. ``metrics.telemetry_points.inc(len(batch))``."""

    value: float = 0.0

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        self.value += amount


@dataclass
class CentralMetrics:
    """This process's counters; one per app (no module-level registry)."""

    requests: dict[tuple[str, str, int], Histogram] = field(default_factory=dict)
    telemetry_points: Counter = field(default_factory=Counter)
    websocket_connections: int = 0

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        hist = self.requests.get(key)
        if hist is None:
            hist = self.requests[key] = Histogram()
        hist.observe(seconds)


def metrics_of(conn: HTTPConnection) -> CentralMetrics:
    """The app's metrics from a request or WebSocket: ``metrics_of(request).telemetry_points``."""
    metrics: CentralMetrics = conn.app.state.metrics
    return metrics


def route_template(scope: Scope) -> str:
    """The matched route's full path template (``/api/v1/users/{user_id}``), or UNMATCHED.

    The route object knows its own template without the prefix of the router it was
    included with; the prefix is the part of the request path before the route's own part.
    """
    route = scope.get("route")
    suffix = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not isinstance(suffix, str):
        return UNMATCHED
    rendered = suffix
    for name, value in (scope.get("path_params") or {}).items():
        rendered = rendered.replace("{" + name + "}", str(value))
    path = str(scope.get("path", ""))
    if rendered and path.endswith(rendered):
        return path[: len(path) - len(rendered)] + suffix
    return suffix


class RequestMetricsMiddleware:
    """Counts every HTTP response and its latency by method, route template and status."""

    def __init__(self, app: ASGIApp, metrics: CentralMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            template = route_template(scope)
            method = scope["method"] if scope["method"] in METHODS else "other"
            self.metrics.observe_request(method, template, status, time.perf_counter() - started)


# ----------------------------------------------------------------------------- rendering


def _label(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: object) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_label(v)}"' for k, v in labels.items()) + "}"


def _num(value: float) -> str:
    if isinstance(value, int) or (math.isfinite(value) and value == int(value)):
        return str(int(value))
    return repr(float(value))


def _family(name: str, kind: str, help_text: str) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]


def _requests(metrics: CentralMetrics) -> list[str]:
    counter = "wrale_http_requests_total"
    hist = "wrale_http_request_duration_seconds"
    lines = _family(counter, "counter", "HTTP responses, by method, route template and status.")
    items = sorted(metrics.requests.items())
    for (method, route, status), h in items:
        lines.append(f"{counter}{_labels(method=method, route=route, status=status)} {h.count}")
    lines += _family(hist, "histogram", "HTTP request latency, by method, route and status.")
    for (method, route, status), h in items:
        base = {"method": method, "route": route, "status": status}
        for bound, n in zip(BUCKETS_S, h.buckets, strict=True):
            lines.append(f"{hist}_bucket{_labels(**base, le=repr(bound))} {n}")
        lines.append(f"{hist}_bucket{_labels(**base, le='+Inf')} {h.count}")
        lines.append(f"{hist}_sum{_labels(**base)} {h.total_s!r}")
        lines.append(f"{hist}_count{_labels(**base)} {h.count}")
    return lines


def _gauge(name: str, help_text: str, samples: Iterable[tuple[dict[str, Any], float]]) -> list[str]:
    lines = _family(name, "gauge", help_text)
    lines += [f"{name}{_labels(**labels)} {_num(value)}" for labels, value in samples]
    return lines


def _alerts_table() -> tuple[Table, str] | None:
    """The alerts table and its state column, once the alerts models exist."""
    table = Base.metadata.tables.get("alerts")
    if table is None or "severity" not in table.c:
        return None
    state = next((c for c in ("state", "status") if c in table.c), None)
    return (table, state) if state else None


async def _counts(session: AsyncSession, stmt: Executable) -> list[tuple[Any, ...]] | None:
    """Rows of a COUNT … GROUP BY, or None when the table cannot be read (a schema behind its
    models): one missing family must not fail the whole scrape."""
    try:
        async with session.begin_nested():
            return [tuple(row) for row in (await session.execute(stmt)).all()]
    except SQLAlchemyError as exc:
        log.warning("metrics: cannot count (%s)", str(exc).splitlines()[0])
        return None


async def fleet_gauges(session: AsyncSession) -> list[str]:
    """Devices by status and open alerts by severity, counted now across all tenants."""
    lines: list[str] = []
    rows = await _counts(session, select(Device.status, func.count()).group_by(Device.status))
    if rows is not None:
        devices = sorted((str(status), int(n)) for status, n in rows)
        lines += _gauge(
            "wrale_devices",
            "Registered devices, by status (all tenants).",
            (({"status": s}, n) for s, n in devices),
        )
    found = _alerts_table()
    if found is not None:
        table, state = found
        column = table.c[state]
        rows = await _counts(
            session,
            select(table.c.severity, column, func.count())
            .where(column != "cleared")
            .group_by(table.c.severity, column),
        )
        if rows is not None:
            open_alerts = sorted((str(sev), str(st), int(n)) for sev, st, n in rows)
            lines += _gauge(
                "wrale_alerts_open",
                "Alerts not yet cleared, by severity and state (all tenants).",
                (({"severity": sev, "state": st}, n) for sev, st, n in open_alerts),
            )
    return lines


def render(metrics: CentralMetrics, fleet: list[str]) -> str:
    lines = _gauge(
        "wrale_build_info", "Version of the central server.", [({"version": __version__}, 1)]
    )
    lines += _requests(metrics)
    lines += _family(
        "wrale_telemetry_points_ingested_total",
        "counter",
        "Telemetry points stored by this process (rate() gives the ingest rate).",
    )
    lines.append(f"wrale_telemetry_points_ingested_total {_num(metrics.telemetry_points.value)}")
    lines += _gauge(
        "wrale_websocket_connections",
        "Live event WebSockets open on this process.",
        [({}, metrics.websocket_connections)],
    )
    lines += fleet
    return "\n".join(lines) + "\n"
