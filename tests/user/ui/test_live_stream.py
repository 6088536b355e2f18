"""Which bus events the dashboard's live stream passes to a page, and their frame."""

from __future__ import annotations

import json

from wrale.fleet.brain.bus import BusEvent
from wrale.user.ui.live import frame, wanted

DEV = "a" * 32


def _ev(kind: str, **data: object) -> BusEvent:
    return BusEvent("t1", kind, dict(data))


def test_every_page_hears_alerts_status_events_twins_and_commands() -> None:
    for kind in (
        "alert.raised",
        "alert.cleared",
        "device.status",
        "device.event",
        "device.enrolled",
        "twin.reported",
        "command.updated",
    ):
        assert wanted(_ev(kind, device_id=DEV), None), kind


def test_heartbeats_and_telemetry_only_reach_the_page_of_their_device() -> None:
    for kind in ("device.live", "telemetry.summary"):
        assert not wanted(_ev(kind, device_id=DEV), None)
        assert not wanted(_ev(kind, device_id="b" * 32), DEV)
        assert wanted(_ev(kind, device_id=DEV), DEV)


def test_other_kinds_are_not_sent() -> None:
    assert not wanted(_ev("tenant.updated"), DEV)


def test_a_frame_is_one_server_sent_event_of_json() -> None:
    raw = frame("alert.raised", {"severity": "critical", "value": 91.5}).decode()
    assert raw.startswith("data: ")
    assert raw.endswith("\n\n")
    assert json.loads(raw[len("data: ") :]) == {
        "kind": "alert.raised",
        "data": {"severity": "critical", "value": 91.5},
    }
