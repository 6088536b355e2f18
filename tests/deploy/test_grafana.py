"""The Grafana provisioning (deploy/grafana): the dashboards are valid JSON with unique ids,
every panel queries the provisioned Prometheus data source, and the provisioning files point
where the compose file mounts the dashboards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # no PyYAML stubs installed

from tests.deploy.promql import DASHBOARDS, DEPLOY, dashboard_exprs

GRAFANA = DEPLOY / "grafana"


def datasource_uid() -> str:
    doc = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    (source,) = doc["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"  # the compose service
    return str(source["uid"])


def boards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def test_dashboards_parse_with_unique_ids() -> None:
    found = boards()
    assert set(found) == {"wrale-central.json", "wrale-metald.json"}
    uids = [b["uid"] for b in found.values()]
    assert len(set(uids)) == len(uids)
    for name, board in found.items():
        assert board["title"].startswith("Wrale Fleet")
        ids = [p["id"] for p in board["panels"]]
        assert len(set(ids)) == len(ids), name
        assert board["editable"] is False  # provisioned: changes go into the JSON files


def test_every_panel_queries_the_provisioned_datasource() -> None:
    uid = datasource_uid()
    for name, board in boards().items():
        for panel in board["panels"]:
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] == uid, (name, panel["title"])
            assert panel["targets"], (name, panel["title"])
            for t in panel["targets"]:
                assert t["datasource"]["uid"] == uid
                assert t["expr"].strip()
        for var in board["templating"]["list"]:
            assert var["datasource"]["uid"] == uid


def test_panels_do_not_overlap() -> None:
    for name, board in boards().items():
        taken: set[tuple[int, int]] = set()
        for panel in board["panels"]:
            g = panel["gridPos"]
            assert g["x"] >= 0, (name, panel["title"])
            assert g["x"] + g["w"] <= 24, (name, panel["title"])
            cells = {(g["x"] + dx, g["y"] + dy) for dx in range(g["w"]) for dy in range(g["h"])}
            assert not cells & taken, (name, panel["title"])
            taken |= cells


def test_every_dashboard_has_queries() -> None:
    for path in sorted(DASHBOARDS.glob("*.json")):
        assert len(dashboard_exprs(path)) >= 10, path.name


def test_provisioning_points_at_the_mounted_folder() -> None:
    doc = yaml.safe_load((GRAFANA / "provisioning/dashboards/wrale.yml").read_text())
    (provider,) = doc["providers"]
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in mounts
    home = compose["services"]["grafana"]["environment"][
        "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"
    ]
    assert Path(home).name in {p.name for p in DASHBOARDS.glob("*.json")}
