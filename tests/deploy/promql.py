"""The metric names a PromQL expression reads, and every expression of the shipped Grafana
dashboards and Prometheus rule files (deploy/), for checking them against real exporters.

A small scanner rather than a PromQL parser: it drops strings, label matchers, ranges and
the label lists of ``by``/``without``/``on``/``ignoring``/``group_*``, then takes every
identifier that is not a function call, a keyword or a number."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # no PyYAML stubs installed

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARDS = DEPLOY / "grafana" / "dashboards"
RULES = DEPLOY / "prometheus" / "rules"

KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless"}
    | {"offset", "bool", "inf", "nan", "atan2"}
)
STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
MATCHERS = re.compile(r"\{[^{}]*\}")
RANGE = re.compile(r"\[[^\[\]]*\]")
LABEL_LIST = re.compile(
    r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
IDENT = re.compile(r"(?<![\w:.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?")
GRAFANA_VAR = re.compile(r"\$(__\w+|\{[^}]*\}|\w+)")
EXPOSITION_TYPE = re.compile(r"^# TYPE (\S+) (\S+)$", re.MULTILINE)
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", re.MULTILINE)


def exported(text: str) -> set[str]:
    """The names a scrape of ``text`` gives Prometheus: every sample's name, and each
    declared family's (a histogram's with _bucket, _sum and _count), so a family that has
    no sample yet (no device registered, no request of that kind) still counts."""
    names = set(SAMPLE.findall(text))
    for name, kind in EXPOSITION_TYPE.findall(text):
        names.add(name)
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names ``expr`` selects, e.g. ``{"wrale_devices"}`` for
    ``max by (status) (wrale_devices{job="wrale-central"})``."""
    text = GRAFANA_VAR.sub("1", STRING.sub('""', expr))
    text = MATCHERS.sub("", text)
    text = RANGE.sub("", text)
    text = LABEL_LIST.sub("", text)
    names: set[str] = set()
    for m in IDENT.finditer(text):
        name, call = m.group(1), m.group(2)
        if call or name.lower() in KEYWORDS:
            continue
        names.add(name)
    return names


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for p in panels:
        yield p
        yield from _panels(p.get("panels", []))


def dashboard_exprs(path: Path) -> list[tuple[str, str]]:
    """(where, expression) of every panel target and query variable of a dashboard."""
    board = json.loads(path.read_text())
    out: list[tuple[str, str]] = []
    for panel in _panels(board["panels"]):
        for t in panel.get("targets", []):
            out.append((f"{path.name}: {panel['title']} {t['refId']}", t["expr"]))
    for var in board.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            q = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            m = re.fullmatch(r"label_values\((.*),\s*\w+\)", q)  # label_values(selector, label)
            assert m, f"{path.name}: variable {var['name']}: unexpected query {q!r}"
            out.append((f"{path.name}: variable {var['name']}", m.group(1)))
    return out


def rule_exprs(path: Path) -> list[tuple[str, str]]:
    """(where, expression) of every rule of a rule file."""
    doc = yaml.safe_load(path.read_text())
    return [
        (f"{path.name}: {rule.get('alert') or rule.get('record')}", str(rule["expr"]))
        for group in doc["groups"]
        for rule in group["rules"]
    ]
