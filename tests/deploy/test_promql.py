"""The scanner that finds metric names in PromQL (tests/deploy/promql.py), and the names an
exposition text gives Prometheus."""

from __future__ import annotations

import pytest

from tests.deploy.promql import exported, metric_names


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('max by (status) (wrale_devices{job="wrale-central"})', {"wrale_devices"}),
        (
            'histogram_quantile(0.9, sum by (le) (rate(x_bucket{a=~"b|c"}[$__rate_interval])))',
            {"x_bucket"},
        ),
        ("sum(up{job='a'}) == 0 or absent(up{job=\"a\"})", {"up"}),
        ("a / on(instance) group_left(version) b offset 5m > bool 1e3", {"a", "b"}),
        ('wrale_cpu_temp_celsius{instance=~"$instance"} > 80', {"wrale_cpu_temp_celsius"}),
    ],
)
def test_metric_names_of_an_expression(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_exported_reads_families_without_samples() -> None:
    text = "# HELP a_seconds x\n# TYPE a_seconds histogram\n# HELP b x\n# TYPE b gauge\nc_total 3\n"
    assert exported(text) == {
        "a_seconds",
        "a_seconds_bucket",
        "a_seconds_sum",
        "a_seconds_count",
        "b",
        "c_total",
    }
