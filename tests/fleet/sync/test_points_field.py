"""The ``points`` field of a telemetry frame (``fleet.sync.fields.points``): what a board
sends is checked point by point (each failure names its point), and a decoded batch holds
one name string per metric and one timestamp object per sample, whatever the board sent."""

from __future__ import annotations

import json

import pytest

from wrale.fleet.sync.fields import points
from wrale.fleet.sync.protocol import ProtocolError

METRICS = ("cpu_temp_c", "fan_rpm", "power_w")


def test_points_of_one_metric_share_its_name_and_of_one_sample_their_timestamp() -> None:
    raw = [[m, 1.8e9 + t, float(t)] for t in range(10) for m in METRICS]
    got = points(json.loads(json.dumps(raw)))  # fresh strings and floats, as off the wire
    assert got == [tuple(p) for p in raw]
    assert len({id(name) for name, _, _ in got}) == len(METRICS)
    assert len({id(ts) for _, ts, _ in got}) == 10


@pytest.mark.parametrize(
    ("bad", "where"),
    [
        ([["cpu_temp_c", 1.0, 2.0], ["x", 1.0]], "points[1]"),
        ([["cpu_temp_c", 1.0, 2.0], [7, 1.0, 2.0]], "points[1][0]"),
        ([["a" * 65, 1.0, 2.0]], "points[0][0]"),
        ([["cpu_temp_c", 1.0, 2.0], ["cpu_temp_c", "soon", 2.0]], "points[1][1]"),
        ([["cpu_temp_c", 1.0, True]], "points[0][2]"),
        ([["cpu_temp_c", 1.0, float("nan")]], "points[0][2]"),
        ([[["cpu_temp_c"], 1.0, 2.0]], "points[0][0]"),  # not hashable: still a clear error
    ],
)
def test_a_bad_point_is_a_protocol_error_naming_it(bad: list[object], where: str) -> None:
    with pytest.raises(ProtocolError) as err:
        points(bad)
    assert str(err.value).startswith(f"{where} ")
