"""The shipped Prometheus files (deploy/prometheus): the rule files pass `promtool check
rules` and their unit tests `promtool test rules`, the scrape config passes `promtool check
config`, and every rule has what an operator needs (severity, summary, description).
promtool comes from Debian's `prometheus` package (.ci/run installs it)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]  # no PyYAML stubs installed

from tests.deploy.promql import DEPLOY, RULES
from tests.deploy.tools import need, run

PROMETHEUS = DEPLOY / "prometheus"
SEVERITIES = {"critical", "warning", "info"}
INSTALL = "apt-get install prometheus"


def test_promtool_checks_the_rule_files() -> None:
    promtool = need("promtool", INSTALL)
    files = sorted(str(p) for p in RULES.glob("*.yml"))
    assert len(files) == 2
    out = run(promtool, "check", "rules", *files)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("SUCCESS") == len(files)


def test_the_rules_unit_tests_pass() -> None:
    promtool = need("promtool", INSTALL)
    tests = sorted(p.name for p in (PROMETHEUS / "tests").glob("*.test.yml"))
    assert tests == ["wrale-boards.test.yml", "wrale-central.test.yml"]
    out = run(promtool, "test", "rules", *tests, cwd=str(PROMETHEUS / "tests"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("SUCCESS") == len(tests)


def test_every_central_alert_has_a_unit_test_or_is_listed() -> None:
    """The alerts the brief asks for (replica down, ingest lag, boards' backlog and drops)
    are unit-tested; the rest are listed here on purpose."""
    tested = set(
        re.findall(
            r"alertname: (\w+)",
            (PROMETHEUS / "tests").joinpath("wrale-central.test.yml").read_text(),
        )
    )
    untested = {
        "WraleCentralServerErrors",
        "WraleCentralSlowRequests",
        "WraleEventRelayDropping",
        "WraleTelemetryPointsRefused",
        "WraleDeviceFramesRateLimited",
        "WraleDevicesOffline",
        "WraleCriticalAlertsOpen",
    }
    doc = yaml.safe_load((RULES / "wrale-central.rules.yml").read_text())
    alerts = {r["alert"] for g in doc["groups"] for r in g["rules"]}
    assert alerts == tested | untested
    assert not tested & untested


def test_the_scrape_config_passes_promtool(tmp_path: Path) -> None:
    """The config names container paths (/etc/prometheus/…): checked with those mapped to
    the repository's files, as the compose file mounts them."""
    promtool = need("promtool", INSTALL)
    text = (PROMETHEUS / "prometheus.yml").read_text()
    mounts = {
        "/etc/prometheus/rules/": f"{PROMETHEUS}/rules/",
        "/etc/prometheus/boards/": f"{PROMETHEUS}/boards/",
        "/etc/prometheus/metald.key": f"{PROMETHEUS}/metald.key",
    }
    for container, here in mounts.items():
        assert container in text
        text = text.replace(container, here)
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(text)
    out = run(promtool, "check", "config", str(cfg))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 rules files found" in out.stdout or "rule files found" in out.stdout, out.stdout


def test_every_rule_is_complete() -> None:
    """Structure, checked in Python too: unique names, a known severity, an expression, a
    summary and a description."""
    names: list[str] = []
    for path in sorted(RULES.glob("*.yml")):
        doc = yaml.safe_load(path.read_text())
        assert set(doc) == {"groups"}, path.name
        for group in doc["groups"]:
            assert group["name"].startswith("wrale-")
            for rule in group["rules"]:
                where = f"{path.name}: {rule.get('alert')}"
                assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, where
                assert re.fullmatch(r"Wrale[A-Z]\w+", rule["alert"]), where
                assert rule["labels"]["severity"] in SEVERITIES, where
                assert set(rule["annotations"]) == {"summary", "description"}, where
                assert str(rule["expr"]).strip(), where
                if "for" in rule:
                    assert re.fullmatch(r"\d+[smh]", rule["for"]), where
                names.append(rule["alert"])
    assert len(names) == len(set(names)), "an alert name is used twice"


@pytest.mark.parametrize("name", ["demo.json"])
def test_board_targets_file(name: str) -> None:
    """file_sd targets: a list of {targets, labels}, each target host:port."""
    doc = json.loads((PROMETHEUS / "boards" / name).read_text())
    for group in doc:
        assert set(group) <= {"targets", "labels"}
        assert all(re.fullmatch(r"[\w.-]+:\d+", t) for t in group["targets"])
