"""The alert rule language (pure): expressions, durations, per-metric threshold ranges."""

from __future__ import annotations

import pytest

from wrale.fleet.brain.services.alert_rules import (
    Condition,
    describe,
    parse_duration,
    parse_expression,
)
from wrale.shared.errors import InvalidRequestError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5m", 300),
        ("30s", 30),
        ("1h30m", 5400),
        ("90", 90),
        ("2h", 7200),
        ("1.5m", 90),
        ("1d", 86400),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5x", "m", "-5m", "5 m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(InvalidRequestError, match="duration"):
        parse_duration(text)


def test_expressions() -> None:
    assert parse_expression("cpu_temp_c > 70 for 5m") == Condition("cpu_temp_c", ">", 70.0, 300)
    assert parse_expression("battery_pct<=10") == Condition("battery_pct", "<=", 10.0, 0)
    assert parse_expression("rack power_w > budget") == Condition(
        "power_w", ">", None, 0, "rack_sum"
    )
    assert parse_expression("rack power_w >= 1500 for 1m").threshold == 1500


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("cpu_temp_c >> 70", "cannot parse"),
        ("cpu_temp_c > seventy", "cannot parse"),
        ("> 70", "cannot parse"),
        ("cpu_temp_c > 70 for ever", "not a duration"),
        ("cpu_temp_c > 200", "outside -40..150"),
        ("battery_pct < 120", "range of a percentage"),
        ("input_v > 75", "voltage"),
        ("cpu_temp_c > 70 for 2s", "too short"),
        ("cpu_temp_c > 70 for 30d", "at most 7 days"),
        ("cpu_temp_c > 70 for 200h", "at most 7 days"),
        ("cpu_temp_c > budget", "budget"),
        ("CPU_temp > 1", "metric"),
    ],
)
def test_bad_expressions(expression: str, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        parse_expression(expression)


def test_unknown_metrics_only_need_finite_thresholds() -> None:
    assert parse_expression("queue_depth > 1e6").threshold == 1e6
    with pytest.raises(InvalidRequestError, match="finite"):
        parse_expression("queue_depth > 1e300")


def test_describe_round_trips() -> None:
    for text in ("cpu_temp_c > 70 for 300s", "rack power_w > budget", "fan_rpm < 300"):
        assert describe(parse_expression(text)) == text
