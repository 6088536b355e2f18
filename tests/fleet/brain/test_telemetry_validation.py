"""What ``validate_points`` refuses, and with which message, now that each metric's name and
bounds are checked once per batch: hostile types and values anywhere in a batch, the
first bad point named by its index; ints, bools and float subclasses still numbers."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from wrale.fleet.brain.services.telemetry import validate_points
from wrale.shared.errors import InvalidRequestError

NOW = 1_790_000_000.0
GOOD = ("cpu_temp_c", NOW, 40.0)


@pytest.mark.parametrize(
    ("point", "message"),
    [
        (("cpu_temp_c", "1790000000", 40.0), "points[2]: timestamp '1790000000' is outside"),
        (("cpu_temp_c", None, 40.0), "points[2]: timestamp None"),
        (("cpu_temp_c", math.nan, 40.0), "points[2]: timestamp nan"),
        (("cpu_temp_c", NOW, "40"), "points[2]: value '40' is not a finite number"),
        (("cpu_temp_c", NOW, None), "points[2]: value None"),
        (("cpu_temp_c", NOW, -math.inf), "points[2]: value -inf"),
        (("cpu_temp_c", NOW, math.nan), "points[2]: value nan is not a finite number"),
        (("spin_x", NOW, math.inf), "points[2]: value inf is not a finite number"),
        (("cpu_temp_c", NOW, 1e6), "points[2]: cpu_temp_c = 1000000.0 is outside its physical"),
        (
            ("battery_pct", NOW, 101),
            "battery_pct = 101 is outside its physical bounds [0.0, 100.0]",
        ),
        ((None, NOW, 1.0), "points[2]: metric None must match"),
        (("Cpu_c", NOW, 1.0), "points[2]: metric 'Cpu_c' must match"),
    ],
)
def test_a_bad_point_anywhere_is_named(point: tuple[Any, Any, Any], message: str) -> None:
    batch = [GOOD, ("power_w", NOW - 1, 3.0), point, GOOD]
    with pytest.raises(InvalidRequestError, match=re.escape(message)):
        validate_points(batch, NOW)


def test_a_known_metric_is_checked_against_its_bounds_every_time() -> None:
    ok = [("cpu_temp_c", NOW, 40.0)] * 3
    validate_points(ok, NOW)
    with pytest.raises(InvalidRequestError, match=r"points\[3\]"):
        validate_points([*ok, ("cpu_temp_c", NOW, 400.0)], NOW)


class _Float(float):
    """A float subclass (as numpy's float64 is): not ``float`` itself, still a number."""


def test_ints_bools_and_float_subclasses_are_numbers() -> None:
    validate_points(
        [
            ("cpu_temp_c", int(NOW), 40),
            ("cpu_temp_c", NOW, True),
            ("fan_rpm", _Float(NOW), _Float(1)),
        ],
        NOW,
    )
