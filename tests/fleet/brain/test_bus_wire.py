"""The bus's NOTIFY payloads (pure): events round-trip, pack under PostgreSQL's limit,
large ones arrive trimmed to their ids, and anything else on the channel is refused."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wrale.fleet.brain.bus import BusEvent, EventBus
from wrale.fleet.brain.bus_wire import PAYLOAD_MAX, decode, encode, missed, trimmed


def ev(kind: str = "device.status", **data: object) -> BusEvent:
    return BusEvent("t1", kind, dict(data), 1_700_000_000.5)


def test_events_round_trip_marked_remote_in_order() -> None:
    events = [ev(device_id="d1", status="online"), ev("alert.raised", id="a1", severity="major")]
    [payload] = encode("r1", 7, events)
    packet = decode(payload)
    assert (packet.replica, packet.number) == ("r1", 7)
    assert [(e.kind, e.data, e.at, e.remote) for e in packet.events] == [
        (e.kind, e.data, e.at, True) for e in events
    ]


def test_many_events_pack_into_several_numbered_payloads_under_the_limit() -> None:
    events = [ev("telemetry.summary", device_id=f"d{i}", note="x" * 150) for i in range(500)]
    payloads = encode("r1", 0, events)
    assert len(payloads) > 1
    assert all(len(p.encode()) <= PAYLOAD_MAX for p in payloads)
    packets = [decode(p) for p in payloads]
    assert [p.number for p in packets] == list(range(len(payloads)))
    assert [e.data["device_id"] for p in packets for e in p.events] == [f"d{i}" for i in range(500)]


def test_a_large_event_is_sent_trimmed_to_its_key_fields() -> None:
    big = ev("device.enrolled", id="d1", status="online", version=3, doc={"k": "v" * 20_000})
    [payload] = encode("r1", 0, [big, ev(device_id="d2")])
    assert len(payload) <= PAYLOAD_MAX
    first, second = decode(payload).events
    assert first.data == {"trimmed": True, "id": "d1", "status": "online", "version": 3}
    assert second.data == {"device_id": "d2"}


def test_an_event_with_too_many_scalars_keeps_its_key_fields_first() -> None:
    data = {f"f{i:05}": i for i in range(5_000)} | {"device_id": "d9"}
    out = trimmed(data, 500)
    assert out is not None
    assert out["device_id"] == "d9"
    assert out["trimmed"] is True
    assert len(json.dumps(out, separators=(",", ":"))) <= 500


def test_an_event_that_cannot_fit_at_all_is_left_out() -> None:
    assert trimmed({"id": "x"}, 5) is None


def test_non_json_values_travel_as_text_and_non_ascii_within_the_byte_limit() -> None:
    [payload] = encode("r1", 0, [ev(name="Kühlschrank ❄" * 300, when=object)])
    assert len(payload.encode()) == len(payload) <= PAYLOAD_MAX
    (got,) = decode(payload).events
    assert got.data["name"].startswith("Kühlschrank ❄")
    assert isinstance(got.data["when"], str)


@pytest.mark.parametrize(
    "payload",
    [
        "",
        "not json",
        "[1, 2]",
        '{"r": "x"}',
        '{"r": 1, "n": 0, "e": []}',
        '{"r": "x", "n": true, "e": []}',
        '{"r": "x", "n": 0, "e": {}}',
        '{"r": "x", "n": 0, "e": [1]}',
        '{"r": "x", "n": 0, "e": [{"t": "a", "k": "b", "d": [], "a": 1}]}',
        '{"r": "x", "n": 0, "e": [{"t": "a", "k": "b", "d": {}}]}',
        "[" * 100_000,
    ],
)
def test_anything_else_on_the_channel_is_refused(payload: str) -> None:
    with pytest.raises(ValueError, match=r"not|no |lacks"):
        decode(payload)


def test_missed_counts_gaps_but_not_a_first_or_restarted_sender() -> None:
    assert missed(None, 5) == 0
    assert missed(5, 5) == 0
    assert missed(5, 8) == 3
    assert missed(5, 0) == 0


@given(
    st.lists(
        st.dictionaries(
            st.text(max_size=20),
            st.one_of(st.none(), st.integers(), st.text(max_size=3000), st.booleans()),
            max_size=8,
        ),
        max_size=30,
    )
)
def test_every_payload_fits_and_every_event_arrives_once(datas: list[dict[str, object]]) -> None:
    events = [BusEvent("t", "k", d, 1.0) for d in datas]
    payloads = encode("replica", 0, events)
    assert all(len(p.encode()) <= PAYLOAD_MAX for p in payloads)
    got = [e for p in payloads for e in decode(p).events]
    assert len(got) == len(events)
    for sent, back in zip(events, got, strict=True):
        assert back.data == sent.data or back.data.get("trimmed") is True


def test_remote_events_reach_subscribers_but_only_listeners_that_ask() -> None:
    bus = EventBus()
    local: list[BusEvent] = []
    everyone: list[BusEvent] = []
    bus.listen(["device.status"], local.append)
    bus.listen(["device.status"], everyone.append, remote=True)
    relayed: list[BusEvent] = []
    bus.relay_to(relayed.append)
    bus.publish("t1", "device.status", {"device_id": "d1"})
    remote = BusEvent("t1", "device.status", {"device_id": "d2"}, 1.0, remote=True)
    bus.deliver_remote(remote)
    assert [e.data["device_id"] for e in local] == ["d1"]
    assert [e.data["device_id"] for e in everyone] == ["d1", "d2"]
    assert [e.data["device_id"] for e in relayed] == ["d1"]  # a remote event is not relayed


async def test_a_remote_event_reaches_a_subscriber_of_its_tenant_only() -> None:
    bus = EventBus()
    async with bus.subscribe("t1") as mine, bus.subscribe("t2") as theirs:
        bus.deliver_remote(BusEvent("t1", "alert.raised", {"id": "a"}, 1.0, remote=True))
        assert mine.get_nowait().data == {"id": "a"}
        assert theirs.empty()
