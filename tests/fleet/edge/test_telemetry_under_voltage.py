"""The edge telemetry's ``under_voltage`` flag from metald's firmware throttle flags: 1 when
under-voltage now or newly latched since the agent's last sample; the latch alone is not
counted again, nor on the agent's first sample (it may have been sent before a restart)."""

from __future__ import annotations

from typing import Any

import pytest

from wrale.fleet.edge.telemetry import points


def _state(now: bool, occurred: bool, ts: float = 1_700_000_000.0) -> dict[str, Any]:
    flags = {"under_voltage_now": now, "under_voltage_occurred": occurred}
    return {"updated_at": ts, "thermal": {"firmware_throttle": flags}}


def _uv(state: dict[str, Any], previous: dict[str, Any] | None) -> float | None:
    got = {m: v for m, _, v in points(state, previous)}
    return got.get("under_voltage")


@pytest.mark.parametrize(
    ("now", "occurred", "previous", "value"),
    [
        (False, False, None, 0.0),
        (True, True, None, 1.0),
        (False, True, None, 0.0),  # first sample: the latch may have been sent already
        (False, True, _state(False, False), 1.0),  # a dip between two samples
        (False, True, _state(False, True), 0.0),  # latched long ago
        (True, True, _state(True, True), 1.0),
        (False, False, _state(False, True), 0.0),  # rebooted: the latch was cleared
    ],
)
def test_under_voltage_now_or_newly_latched(
    now: bool, occurred: bool, previous: dict[str, Any] | None, value: float
) -> None:
    assert _uv(_state(now, occurred), previous) == value


def test_no_flags_no_point() -> None:
    assert _uv({"updated_at": 1_700_000_000.0, "thermal": {}}, None) is None
    broken = {"updated_at": 1.7e9, "thermal": {"firmware_throttle": {"under_voltage_now": 1}}}
    assert _uv(broken, None) is None
