"""Every metric the shipped Grafana dashboards and Prometheus rules (deploy/) query is one a
real exporter exports: a `wrale central` process on PostgreSQL (where the event relay's
counters exist too) and a `wrale metald` on the simulated board, scraped over HTTP."""

from __future__ import annotations

import httpx
import pytest

from tests.deploy.promql import (
    DASHBOARDS,
    RULES,
    dashboard_exprs,
    exported,
    metric_names,
    rule_exprs,
)
from tests.user.lb_procs import PgCentral, fresh_database
from tests.user.metald_proc import Metald

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

# Series Prometheus makes itself for every target, not an exporter's
PROMETHEUS_OWN = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})
# which exporter each shipped file reads
SOURCES = {
    "wrale-central.json": "central",
    "wrale-central.rules.yml": "central",
    "wrale-metald.json": "metald",
    "wrale-boards.rules.yml": "metald",
}


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    tmp = tmp_path_factory.mktemp("exporters")
    metald = Metald(tmp / "metald")
    metald.start()
    try:
        with fresh_database() as url:
            central = PgCentral(tmp / "central", {"WRALE_DATABASE_URL": url})
            central.start()
            try:
                central.headers()  # a login: some requests counted
                text = httpx.get(f"{central.url}/metrics", timeout=10).text
            finally:
                assert central.p is not None
                central.p.stop()
        with metald.client() as c:
            metald_text = c.get("/metrics").text
    finally:
        metald.kill()
    return {"central": exported(text), "metald": exported(metald_text)}


def test_the_exporters_answered(scraped: dict[str, set[str]]) -> None:
    # guards the check below against an empty scrape passing everything
    assert "wrale_telemetry_ingest_lag_seconds_bucket" in scraped["central"]
    assert "wrale_bus_relay_dropped_total" in scraped["central"]  # PostgreSQL's relay
    assert "wrale_cpu_temp_celsius" in scraped["metald"]


def _shipped() -> list[tuple[str, str, str]]:
    """(exporter, where, expression) of every shipped dashboard panel and rule."""
    out = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        out += [(SOURCES[path.name], w, e) for w, e in dashboard_exprs(path)]
    for path in sorted(RULES.glob("*.yml")):
        out += [(SOURCES[path.name], w, e) for w, e in rule_exprs(path)]
    return out


def test_every_shipped_file_is_known() -> None:
    files = {p.name for p in [*DASHBOARDS.glob("*.json"), *RULES.glob("*.yml")]}
    assert files == set(SOURCES), "a new dashboard or rule file: say which exporter it reads"


def test_every_queried_metric_is_exported(scraped: dict[str, set[str]]) -> None:
    shipped = _shipped()
    assert len(shipped) > 40
    unknown = []
    for source, where, expr in shipped:
        names = metric_names(expr)
        assert names, f"{where}: no metric found in {expr!r}"
        unknown += [f"{where}: {n}" for n in sorted(names - scraped[source] - PROMETHEUS_OWN)]
    assert not unknown, "not exported:\n" + "\n".join(unknown)
