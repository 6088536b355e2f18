"""The ``points`` field of a telemetry frame (``fleet.sync.fields.points``): what a board
sends is checked point by point (each failure names its point), and a decoded batch holds
its points in columns (``fleet.sync.points.Points``): the same ``(metric, ts, value)``
sequence, the same JSON, a fraction of the memory of tuples while it waits to be stored."""

from __future__ import annotations

import gc
import json
import tracemalloc

import pytest

from wrale.fleet.sync.fields import points
from wrale.fleet.sync.points import Points
from wrale.fleet.sync.protocol import ProtocolError, TelemetryBatch, decode, encode

METRICS = ("cpu_temp_c", "fan_rpm", "power_w")


def _report(samples: int = 10) -> list[list[object]]:
    return [[m, 1.8e9 + t, float(t) + 0.25] for t in range(samples) for m in METRICS]


def test_points_read_as_the_tuples_the_board_sent() -> None:
    raw = _report()
    got = points(json.loads(json.dumps(raw)))  # fresh strings and floats, as off the wire
    assert isinstance(got, Points)
    assert got == [tuple(p) for p in raw]
    assert list(got) == [tuple(p) for p in raw]
    assert len(got) == 30
    assert got[4] == ("fan_rpm", 1.8e9 + 1, 1.25)
    assert got[-1] == got[29]
    assert got[3:6] == [tuple(p) for p in raw[3:6]]
    assert isinstance(got[3:6], Points)
    assert list(got.names) == list(METRICS)
    assert got != [tuple(p) for p in raw[:-1]]
    assert got != raw
    with pytest.raises(TypeError):
        hash(got)


def test_a_decoded_batch_encodes_to_the_frame_it_came_from() -> None:
    frame = encode(TelemetryBatch(seq=2, prev=1, points=[tuple(p) for p in _report()]))
    msg = decode(frame)
    assert isinstance(msg, TelemetryBatch)
    assert isinstance(msg.points, Points)
    assert encode(msg) == frame
    assert msg == TelemetryBatch(seq=2, prev=1, points=[tuple(p) for p in _report()])


def test_a_waiting_batch_holds_a_third_of_the_memory_of_tuples() -> None:
    """A board's report (17 metrics × 10 samples) as the central holds it until stored."""
    raw = [[f"m{i}_c", 1.8e9 + t, 40.0 + t / 7 + i] for t in range(10) for i in range(17)]

    def held(make: object) -> int:
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            kept = make()  # type: ignore[operator]
            gc.collect()
            size = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert kept
        return size

    def as_tuples() -> list[tuple[str, float, float]]:
        """The decoder's old shape: tuples sharing one name per metric, one ts per sample."""
        names: dict[str, str] = {}
        stamps: dict[float, float] = {}
        return [
            (names.setdefault(m, m), stamps.setdefault(t, t), float(v))
            for m, t, v in json.loads(json.dumps(raw))
        ]

    columns = held(lambda: points(json.loads(json.dumps(raw))))
    tuples = held(as_tuples)
    assert columns * 3 < tuples, (columns, tuples)  # measured: 4.4 KiB against 17.1
    assert columns < 170 * 17 + 2048, columns  # 17 bytes a point, and the 17 names


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
