"""``protocol.decode`` is total: whatever bytes a board or the network sends, it returns a
message or raises ``ProtocolError`` (never another exception), and every valid message
survives ``decode(encode(m))``. Hypothesis with a fixed budget (seconds, not minutes)."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wrale.fleet.sync.protocol import (
    MAX_DEPTH,
    Ack,
    Command,
    CommandResult,
    Desired,
    EventsBatch,
    Goodbye,
    Hello,
    Message,
    ProtocolError,
    Reported,
    Status,
    TelemetryBatch,
    Welcome,
    decode,
    encode,
)

BUDGET = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ids = st.text(st.characters(codec="utf-8"), min_size=1, max_size=32)
short = st.text(st.characters(codec="utf-8"), max_size=40)
seqs = st.integers(min_value=0, max_value=2**63 - 1)
finite = st.floats(allow_nan=False, allow_infinity=False)
json_leaf = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | finite | short
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(short, inner, max_size=4),
    max_leaves=20,
)
json_doc = st.dictionaries(short, json_value, max_size=5)
int_map = st.dictionaries(st.text(max_size=32), seqs, max_size=4)


@st.composite
def batch_seqs(draw: st.DrawFn) -> tuple[int, int]:
    seq = draw(st.integers(min_value=1, max_value=2**63 - 1))
    return seq, draw(st.integers(min_value=0, max_value=seq - 1))


def _telemetry(s: tuple[int, int], pts: list[tuple[str, float, float]]) -> TelemetryBatch:
    return TelemetryBatch(seq=s[0], prev=s[1], points=pts)


def _events(s: tuple[int, int], evs: list[dict[str, Any]]) -> EventsBatch:
    return EventsBatch(seq=s[0], prev=s[1], events=evs)


event = st.fixed_dictionaries(
    {"ts": finite, "type": st.text(max_size=64), "severity": st.text(max_size=16)},
    optional={"message": short, "data": json_doc},
)
messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(
        Hello,
        device_id=ids,
        agent_version=st.text(max_size=32),
        acked=int_map,
        desired_version=seqs,
        reported_version=seqs,
        mode=st.text(max_size=16),
        secret=st.none() | st.text(max_size=200),
        session=st.text(max_size=64),
    ),
    st.builds(
        _telemetry,
        batch_seqs(),
        st.lists(st.tuples(st.text(max_size=64), finite, finite), max_size=5),
    ),
    st.builds(_events, batch_seqs(), st.lists(event, max_size=3)),
    st.builds(
        Reported,
        version=seqs,
        doc=json_doc,
        applied_desired_version=seqs,
        rejected=st.dictionaries(st.text(max_size=200), st.text(max_size=100), max_size=3),
    ),
    st.builds(
        CommandResult,
        id=st.text(max_size=64),
        status=st.sampled_from(["succeeded", "failed", "refused"]),
        reason=short,
        result=json_doc,
    ),
    st.builds(
        Status,
        ts=finite,
        mode=st.text(max_size=16),
        outbox=int_map,
        dropped=int_map,
        live=st.dictionaries(st.text(max_size=64), finite, max_size=4),
    ),
    st.builds(
        Welcome,
        device_id=ids,
        server_version=st.text(max_size=32),
        acked=int_map,
        heartbeat_s=finite,
        session=st.text(max_size=64),
    ),
    st.builds(
        Ack,
        stream=st.sampled_from(["telemetry", "events"]),
        seq=seqs,
        gap=st.booleans(),
        session=st.text(max_size=64),
    ),
    st.builds(Desired, version=seqs, doc=json_doc),
    st.builds(
        Command, id=st.text(max_size=64), op=st.text(max_size=32), args=json_doc, deadline=finite
    ),
    st.builds(
        Goodbye,
        code=st.text(max_size=32),
        message=short,
        retry=st.booleans(),
        session=st.text(max_size=64),
    ),
)


def decodes_or_refuses(frame: str | bytes) -> Message | None:
    """The only two outcomes ``decode`` may have."""
    try:
        return decode(frame)
    except ProtocolError:
        return None


@BUDGET
@given(messages)
def test_valid_messages_round_trip(msg: Message) -> None:
    frame = encode(msg)
    assert decode(frame) == msg
    assert decode(frame.encode()) == msg


@BUDGET
@given(st.binary(max_size=512))
def test_random_bytes(data: bytes) -> None:
    decodes_or_refuses(data)


@BUDGET
@given(json_value | json_doc)
def test_random_json(value: Any) -> None:
    decodes_or_refuses(json.dumps(value))


def _mutations(obj: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    hostile = st.one_of(
        json_value,
        st.just(float("nan")),
        st.just(float("inf")),
        st.just(1e300),
        st.just(-1e300),
        st.just(10**30),
        st.just(-(10**30)),
        st.just(True),
        st.just("\x00"),
        st.just([[[]]]),
    )
    keys = st.sampled_from(sorted(obj)) | short
    return st.dictionaries(keys, hostile, min_size=1, max_size=3).map(
        lambda changes: {**obj, **changes}
    )


@BUDGET
@given(messages.flatmap(lambda m: _mutations(m.to_json())))
def test_mutated_valid_frames(obj: dict[str, Any]) -> None:
    frame = json.dumps(obj)  # NaN / Infinity literals included: a board may send them
    msg = decodes_or_refuses(frame)
    if msg is not None:  # whatever got through is a clean message: it encodes again
        assert decode(encode(msg)) == msg


@BUDGET
@given(
    messages.map(lambda m: m.to_json()),
    st.integers(min_value=MAX_DEPTH + 1, max_value=5000),
    st.sampled_from(["[", "{", '{"a":']),
)
def test_deep_nesting(obj: dict[str, Any], depth: int, opener: str) -> None:
    closer = {"[": "]", "{": "}", '{"a":': "}"}[opener]
    inner = "1" if opener == '{"a":' else ""
    deep = opener * depth + inner + closer * depth
    for key in list(obj)[:3] or ["t"]:
        text = json.dumps({**obj, key: "@"}).replace('"@"', deep)
        assert decodes_or_refuses(text) is None  # no field takes a value this deep
    assert decodes_or_refuses(deep) is None


def test_edge_cases_are_protocol_errors() -> None:
    """The cases found by hand, kept as examples."""
    cases: list[str | bytes] = [
        "[" * 1200 + "]" * 1200,
        "{" * 100_000,
        b"\xff\xfe\xfd",
        '{"t":"status","ts":NaN}',
        '{"t":"status","ts":Infinity}',
        '{"t":"status","ts":1e400}',
        '{"t":"status","ts":' + "9" * 5000 + "}",
        '{"t":"desired","version":1,"doc":{"x":' + "9" * 5000 + "}}",
        '{"t":"desired","version":1,"doc":{"x":1e400}}',
        '{"t":"ack","stream":"events","seq":1,"gap":"yes"}',
        '{"t":"telemetry","seq":2,"prev":1,"points":[["m",1e309,1]]}',
        '{"t":["status"]}',
        "",
        "null",
        "\x00",
    ]
    for frame in cases:
        assert decodes_or_refuses(frame) is None, frame[:60]
    assert math.isfinite(1e300)  # 1e300 itself is a finite number: ingest bounds it
