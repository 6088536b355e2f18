"""``/metrics``: Prometheus text that parses, counts requests by route template and status,
and reports fleet counts summed over tenants (no tenant labels), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import re

from tests.conftest import Central
from wrale.fleet.brain.bus import BusEvent
from wrale.fleet.brain.models import Device, Tenant

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> tuple[Samples, dict[str, str]]:
    """Samples by (name, labels) and each family's type; asserts the format is well formed."""
    samples: Samples = {}
    types: dict[str, str] = {}
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert kind in {"counter", "gauge", "histogram"}
            assert name not in types, f"family {name} declared twice"
            types[name] = kind
            continue
        if line.startswith("# HELP ") or not line:
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        name, _, labels, value = m.groups()
        family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
        assert family in types, f"{name} has no TYPE"
        key = (name, frozenset(LABEL.findall(labels or "")))
        assert key not in samples, f"duplicate sample {line!r}"
        samples[key] = float(value)
    return samples, types


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def scrape(central: Central) -> Samples:
    r = await central.http.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(r.text)[0]


async def test_open_without_token_and_well_formed(central: Central) -> None:
    r = await central.http.get("/metrics")
    assert r.status_code == 200
    samples, types = parse(r.text)
    assert types["wrale_http_requests_total"] == "counter"
    assert types["wrale_http_request_duration_seconds"] == "histogram"
    assert types["wrale_devices"] == "gauge"
    assert value(samples, "wrale_telemetry_points_ingested_total") == 0
    labels = {k for _, pairs in samples for k, _ in pairs}
    assert not {"tenant", "tenant_id"} & labels


async def test_counts_requests_by_route_template_and_status(central: Central) -> None:
    for _ in range(3):
        await central.http.get("/healthz")
    await central.http.get("/api/v1/users/0123456789abcdef0123456789abcdef", headers=central.admin)
    await central.http.get("/api/v1/users/ffffffffffffffffffffffffffffffff", headers=central.admin)
    await central.http.get("/no/such/path/42")
    await central.http.request("BREW", "/healthz")  # methods outside HTTP's own are "other"
    samples = await scrape(central)
    total = "wrale_http_requests_total"
    assert value(samples, total, method="GET", route="/healthz", status="200") == 3
    assert value(samples, total, method="GET", route="/api/v1/users/{user_id}", status="404") == 2
    assert value(samples, total, method="GET", route="<unmatched>", status="404") == 1
    assert value(samples, total, method="other", route="/healthz", status="405") == 1
    login = value(samples, total, method="POST", route="/api/v1/auth/login", status="200")
    assert login == 1  # the fixture's own login

    hist = "wrale_http_request_duration_seconds"
    base = {"method": "GET", "route": "/healthz", "status": "200"}
    buckets = sorted(
        (float(dict(labels)["le"]), n)
        for (name, labels), n in samples.items()
        if name == f"{hist}_bucket" and set(base.items()) <= labels
    )
    counts = [n for _, n in buckets]
    assert counts == sorted(counts), "histogram buckets are cumulative"
    assert buckets[-1] == (float("inf"), 3)
    assert value(samples, f"{hist}_count", **base) == 3
    assert (value(samples, f"{hist}_sum", **base) or 0) > 0


async def test_devices_by_status_summed_over_tenants(central: Central) -> None:
    async with central.db.session() as s:
        tenants = [Tenant(name="metrics-a"), Tenant(name="metrics-b")]
        s.add_all(tenants)
        await s.flush()
        for i, (tenant, status) in enumerate(
            [(0, "online"), (1, "online"), (1, "offline"), (0, "maintenance")]
        ):
            s.add(Device(tenant_id=tenants[tenant].id, num=9000 + i, name=f"d{i}", status=status))
    samples = await scrape(central)
    assert value(samples, "wrale_devices", status="online") == 2
    assert value(samples, "wrale_devices", status="offline") == 1
    assert value(samples, "wrale_devices", status="maintenance") == 1


async def test_ingest_counter_and_websockets_gauge(central: Central) -> None:
    metrics = central.app.state.metrics
    metrics.telemetry_points.inc(250)
    metrics.telemetry_points.inc(50)
    samples = await scrape(central)
    assert value(samples, "wrale_telemetry_points_ingested_total") == 300
    assert value(samples, "wrale_websocket_connections") == 0


def test_official_parser_agrees() -> None:
    """The text also parses with prometheus_client's parser, where that is installed."""
    import pytest

    parser = pytest.importorskip("prometheus_client.parser")
    from wrale.user.api.metrics import CentralMetrics, render

    m = CentralMetrics()
    m.observe_request("GET", '/a/"quoted"', 200, 0.02)
    m.observe_request("POST", "/b", 422, 3.0)
    families = {f.name: f for f in parser.text_string_to_metric_families(render(m, []))}
    assert families["wrale_http_request_duration_seconds"].type == "histogram"
    requests = families["wrale_http_requests"]  # the parser strips _total from counters
    routes = {s.labels["route"] for s in requests.samples}
    assert routes == {'/a/"quoted"', "/b"}


async def test_open_alerts_by_severity(central: Central) -> None:
    import pytest

    from wrale.fleet.brain.models import alerts

    alert = getattr(alerts, "Alert", None)
    if alert is None:
        pytest.skip("the alerts models are not there yet")
    async with central.db.session() as s:
        tenant = Tenant(name="metrics-alerts")
        s.add(tenant)
        await s.flush()
        for i, (severity, state) in enumerate(
            [
                ("CRITICAL", "active"),
                ("CRITICAL", "active"),
                ("MAJOR", "acknowledged"),
                ("MAJOR", "cleared"),
            ]
        ):
            s.add(
                alert(
                    tenant_id=tenant.id,
                    rule_name="hot",
                    key=f"k{i}",
                    metric="cpu_temp_c",
                    severity=severity,
                    state=state,
                    message="hot",
                    raised_at=1.0,
                    updated_at=1.0,
                )
            )
    samples = await scrape(central)
    name = "wrale_alerts_open"
    assert value(samples, name, severity="CRITICAL", state="active") == 2
    assert value(samples, name, severity="MAJOR", state="acknowledged") == 1
    assert value(samples, name, severity="MAJOR", state="cleared") is None


async def test_the_replicas_event_relay_is_counted_on_postgresql(central: Central) -> None:
    """PostgreSQL: the LISTEN/NOTIFY relay's counters (events sent, received, dropped,
    missed) are scraped beside the channel's; SQLite has no relay and no such family."""
    relay = central.app.state.relay
    if central.db.is_sqlite:
        assert relay is None
        assert not [k for k in await scrape(central) if k[0].startswith("wrale_bus_relay_")]
        return
    await relay.connected.wait()
    relay.offer(BusEvent("t", "test.relay", {"n": 1}))  # what the bus hands it on publish
    for _ in range(200):
        if relay.stats.sent:
            break
        await asyncio.sleep(0.01)
    samples = await scrape(central)
    assert value(samples, "wrale_bus_relay_sent_total") == relay.stats.sent >= 1
    assert value(samples, "wrale_bus_relay_connects_total") == relay.stats.connects >= 1
    for name in ("received", "dropped", "missed", "malformed"):
        assert value(samples, f"wrale_bus_relay_{name}_total") is not None
