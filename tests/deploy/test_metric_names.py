"""Every metric the shipped Grafana dashboards and Prometheus rules (deploy/) query is one a
real exporter exports: a `wrale central` process on PostgreSQL (where the event relay's
counters exist too) and a `wrale metald` on the simulated board, scraped over HTTP. Then a
real Prometheus scrapes both with the shipped rules loaded and runs every panel's query."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import yaml  # type: ignore[import-untyped]  # no PyYAML stubs installed

from tests.deploy.promql import (
    DASHBOARDS,
    DEPLOY,
    RULES,
    dashboard_exprs,
    exported,
    metric_names,
    rule_exprs,
)
from tests.deploy.tools import need
from tests.user.fleet_procs import wait_for
from tests.user.lb_procs import PgCentral, fresh_database
from tests.user.metald_proc import Metald, free_port

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


@dataclass
class Exporters:
    central: PgCentral
    metald: Metald


@pytest.fixture(scope="module")
def exporters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exporters]:
    """A central on a fresh PostgreSQL database (an admin logged in: requests counted) and
    a metald on the simulated board, running for the module's tests."""
    tmp = tmp_path_factory.mktemp("exporters")
    metald = Metald(tmp / "metald")
    metald.start()
    try:
        with fresh_database() as url:
            central = PgCentral(tmp / "central", {"WRALE_DATABASE_URL": url})
            central.start()
            try:
                central.headers()
                yield Exporters(central, metald)
            finally:
                assert central.p is not None
                central.p.stop()
    finally:
        metald.kill()


@pytest.fixture(scope="module")
def scraped(exporters: Exporters) -> dict[str, set[str]]:
    text = httpx.get(f"{exporters.central.url}/metrics", timeout=10).text
    with exporters.metald.client() as c:
        metald_text = c.get("/metrics").text
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


# ----------------------------------------------------------------------------- Prometheus

GRAFANA_VARS = {"$__rate_interval": "1m", "$instance": ".*"}


@pytest.fixture(scope="module")
def prometheus(exporters: Exporters, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus (Debian's) with the shipped rule files, scraping the two exporters
    every second under the shipped job names; its HTTP API's URL."""
    binary = need("prometheus", "apt-get install prometheus")
    tmp = tmp_path_factory.mktemp("prometheus")
    key = DEPLOY / "prometheus" / "metald.key"  # the dev key the sim metald accepts
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in sorted(RULES.glob("*.yml"))],
        "scrape_configs": [
            {
                "job_name": "wrale-central",
                "static_configs": [{"targets": [f"127.0.0.1:{exporters.central.port}"]}],
            },
            {
                "job_name": "wrale-metald",
                "authorization": {"type": "Bearer", "credentials_file": str(key)},
                "static_configs": [{"targets": [f"127.0.0.1:{exporters.metald.port}"]}],
            },
        ],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (tmp / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    try:

        def both_up() -> bool:
            assert proc.poll() is None, (tmp / "prometheus.log").read_text()
            try:
                r = httpx.get(f"{url}/api/v1/query", params={"query": "up == 1"}, timeout=2)
            except httpx.TransportError:
                return False
            return r.status_code == 200 and len(r.json()["data"]["result"]) == 2

        wait_for("Prometheus scraping both exporters", both_up, 60)
        yield url
    finally:
        proc.terminate()
        proc.wait(20)


def test_prometheus_scrapes_both_exporters_and_loads_the_rules(prometheus: str) -> None:
    targets = httpx.get(f"{prometheus}/api/v1/targets", timeout=10).json()["data"]
    health = {t["labels"]["job"]: (t["health"], t["lastError"]) for t in targets["activeTargets"]}
    assert health == {"wrale-central": ("up", ""), "wrale-metald": ("up", "")}

    def evaluated() -> list[dict[str, Any]]:
        groups = httpx.get(f"{prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        return rules if all(r.get("lastEvaluation", "").startswith("2") for r in rules) else []

    rules = wait_for("every rule evaluated once", evaluated, 30)
    assert len(rules) == sum(len(rule_exprs(p)) for p in RULES.glob("*.yml"))
    bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not bad


def test_every_dashboard_query_runs_on_prometheus(prometheus: str) -> None:
    """Each panel's query (Grafana's variables given values) is valid PromQL that
    Prometheus evaluates over what it scraped."""
    failed = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        for where, expr in dashboard_exprs(path):
            query = expr
            for var, value in GRAFANA_VARS.items():
                query = query.replace(var, value)
            r = httpx.get(f"{prometheus}/api/v1/query", params={"query": query}, timeout=10)
            if r.status_code != 200 or r.json()["status"] != "success":
                failed.append(f"{where}: {r.text}")
    assert not failed, "\n".join(failed)
    # and what a replica always exports shows up in the central dashboard's figures
    r = httpx.get(
        f"{prometheus}/api/v1/query",
        params={"query": 'sum(wrale_board_outbox_rows{job="wrale-central"})'},
        timeout=10,
    )
    assert r.json()["data"]["result"][0]["value"][1] == "0"
