"""Fuzzing metald's HTTP request parser and its write routes (hypothesis, fixed budget).

The parser must be total: any bytes give a ``Request`` or the parser's own ``HttpError``,
never another exception; every refusal is a 4xx (505 for an HTTP major version it does not
speak). Parsed requests then go through the real routes of a metald over a simulated
board, in process: no answer may be a 500. A socket test shows that a bad client never
stops the server.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.metal.core.server_harness import API_KEY, LINES, read_response, running_metald
from wrale.metal.core.api_models import (
    AmbientBody,
    ArmBody,
    DiagRunBody,
    FanOverrideBody,
    FaultBody,
    FreqCapBody,
    GpioBody,
    LoadBody,
    PwmBody,
)
from wrale.metal.core.engine import MetalCore
from wrale.metal.core.http import HttpError, Request, Response
from wrale.metal.core.request_parser import (
    HttpLimits,
    IncompleteRequestError,
    read_request,
    read_request_line,
)
from wrale.metal.core.server import MetaldServer
from wrale.metal.core.store import DeviceStore
from wrale.metal.hw.sim import SimBoard
from wrale.shared.clock import FakeClock
from wrale.shared.config import SimSettings
from wrale.shared.policy import PowerPolicy, SecurityPolicy, ThermalPolicy
from wrale.shared.structs import to_builtins

LIMITS = HttpLimits()
BUDGET = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
AUTH = f"Authorization: Bearer {API_KEY}\r\n".encode()


async def parse(data: bytes, limits: HttpLimits = LIMITS) -> Request | None:
    """What the server does with ``data`` as everything a client sends: ``None`` when it
    holds no request at all."""
    reader = asyncio.StreamReader(limit=limits.stream_limit)
    reader.feed_data(data)
    reader.feed_eof()
    first = await reader.read(1)
    if not first:
        return None
    line = await read_request_line(reader, limits, first)
    if line is None:
        return None
    return await read_request(line, reader, limits)


def parse_outcome(data: bytes) -> Request | HttpError | None:
    try:
        return asyncio.run(parse(data))
    except HttpError as exc:  # the parser's own error, and nothing else, may escape
        return exc


def check_parsed(data: bytes) -> Request | None:
    out = parse_outcome(data)
    if isinstance(out, HttpError):
        assert 400 <= out.status < 500 or out.status == 505, out.status
        assert out.close
        body = json.loads(out.response().body)
        assert set(body["error"]) == {"code", "message", "details"}
        return None
    if out is not None:
        assert out.path.startswith("/")
        assert all(k == k.lower() for k in out.headers)
        assert len(out.body) <= LIMITS.max_body_bytes
        assert len(out.body) == int(out.headers.get("content-length", "0").split(",")[0] or 0)
    return out


def request(method: str, target: bytes, headers: bytes = b"", body: bytes = b"") -> bytes:
    head = method.encode() + b" " + target + b" HTTP/1.1\r\nHost: board\r\n" + AUTH + headers
    if body:
        head += b"Content-Length: " + str(len(body)).encode() + b"\r\n"
    return head + b"\r\n" + body


SEEDS = [
    request("GET", b"/v1/state"),
    request("GET", b"/v1/events?since_id=1&limit=5&type=TAMPER,ARMED&min_severity=info"),
    request("PUT", b"/v1/thermal/fan", body=b'{"percent": 70, "duration_s": 10}'),
    request("PUT", b"/v1/gpio/led", body=b'{"value": 1}'),
    request("PUT", b"/v1/policies", body=b'{"thermal": {"fan_min_percent": 10}}'),
    request("POST", b"/v1/sim/faults", body=b'{"fault": "heat_spike"}'),
    request("GET", b"/healthz", b"Connection: close\r\nExpect: 100-continue\r\n"),
]
INSERTS = [b"\r\n", b"\n", b":", b" ", b"%", b"%ff", b"{", b"\x00", b"?", b"\xc3\x28", b"\t"]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        match draw(st.integers(0, 4)):
            case 0:
                data[i] = draw(st.integers(0, 255))
            case 1:
                del data[i]
            case 2:
                data[i:i] = draw(st.sampled_from(INSERTS))
            case 3:
                data = data[:i]
            case _:
                data[i:i] = data[i : i + draw(st.integers(1, 64))] * draw(st.integers(2, 50))
    return bytes(data)


PATH_BYTES = st.binary(max_size=200).filter(lambda b: not (set(b) & {0x20, 0x0D, 0x0A}))
CONTENT_LENGTHS = st.one_of(
    st.integers(-10, 10**30).map(lambda n: str(n).encode()),
    st.sampled_from([b"", b" ", b"0x10", b"1e3", b"5, 6", b"5,5", b"+5", b"\xff", b"5 5"]),
    st.binary(max_size=20),
)
TRANSFER_ENCODINGS = st.sampled_from([b"chunked", b"gzip, chunked", b"identity", b"CHUNKED", b""])


# ----------------------------------------------------------------------------- the parser


@BUDGET
@given(st.binary(max_size=4096))
def test_random_bytes(data: bytes) -> None:
    check_parsed(data)


@BUDGET
@given(mutated())
def test_mutated_valid_requests(data: bytes) -> None:
    check_parsed(data)


@BUDGET
@given(
    count=st.integers(0, 160),
    size=st.integers(0, 12_000),
    name=st.sampled_from([b"X-Pad", b"Cookie", b"Bad Name", b"", b"X\x00"]),
)
def test_huge_headers(count: int, size: int, name: bytes) -> None:
    data = b"GET /v1/state HTTP/1.1\r\n" + (name + b": v\r\n") * count
    data += b"X-Big: " + b"a" * size + b"\r\n\r\n"
    out = parse_outcome(data)
    if 9 + count * (len(name) + 5) + size > LIMITS.max_header_bytes:
        assert isinstance(out, HttpError)
        assert out.status in (400, 431)


@BUDGET
@given(length=CONTENT_LENGTHS, body=st.binary(max_size=300))
def test_bad_content_length(length: bytes, body: bytes) -> None:
    data = b"PUT /v1/thermal/fan HTTP/1.1\r\nContent-Length: " + length + b"\r\n\r\n" + body
    out = check_parsed(data)
    if out is not None:
        assert out.body == body[: len(out.body)]


@BUDGET
@given(te=TRANSFER_ENCODINGS, chunks=st.lists(st.binary(min_size=1, max_size=50), max_size=5))
def test_chunked_bodies_are_refused_with_411(te: bytes, chunks: list[bytes]) -> None:
    body = b"".join(f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in chunks) + b"0\r\n\r\n"
    data = b"PUT /v1/gpio/led HTTP/1.1\r\nTransfer-Encoding: " + te + b"\r\n\r\n" + body
    out = parse_outcome(data)
    assert isinstance(out, HttpError)
    assert out.status == 411


@BUDGET
@given(path=PATH_BYTES, query=PATH_BYTES)
def test_invalid_utf8_paths_and_queries(path: bytes, query: bytes) -> None:
    check_parsed(b"GET /" + path + b"?" + query + b" HTTP/1.1\r\n\r\n")


def test_a_cut_request_is_the_parsers_own_error() -> None:
    with pytest.raises(IncompleteRequestError):
        asyncio.run(parse(SEEDS[2][:-3]))
    with pytest.raises(HttpError) as info:
        asyncio.run(parse(b"GET /?" + b"a&" * 200 + b" HTTP/1.1\r\n\r\n"))
    assert info.value.status == 414


# ----------------------------------------------------------------------------- the routes

JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
JSON = st.recursive(
    JSON_LEAF,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=12), c, max_size=4),
    max_leaves=12,
)
NUMBERS = st.one_of(
    st.integers(-10, 1000), st.floats(-1e6, 1e6), st.sampled_from([0, 1, 100, 1e308, -0.0])
)
BODY_MODELS: list[type[msgspec.Struct]] = [
    *(FanOverrideBody, FreqCapBody, GpioBody, PwmBody, ArmBody, AmbientBody, LoadBody),
    *(FaultBody, DiagRunBody, ThermalPolicy, PowerPolicy, SecurityPolicy),
]
FIELDS = sorted({name for model in BODY_MODELS for name in model.__struct_fields__})
POLICIES = {"thermal": ThermalPolicy(), "power": PowerPolicy(), "security": SecurityPolicy()}


@st.composite
def near_valid_policies(draw: st.DrawFn) -> dict[str, Any]:
    """The running defaults with a few fields replaced: bodies that get past most checks."""
    section = draw(st.sampled_from(sorted(POLICIES)))
    doc = to_builtins(POLICIES[section])
    for name in draw(st.lists(st.sampled_from(sorted(doc)), min_size=1, max_size=3)):
        doc[name] = draw(JSON)
    return {section: doc}


BODIES = st.one_of(
    JSON,
    st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=4),
    st.dictionaries(
        st.sampled_from(["thermal", "power", "security"]),
        st.dictionaries(st.text(max_size=30), JSON, max_size=6),
        max_size=3,
    ),
    near_valid_policies(),
    st.dictionaries(st.sampled_from(FIELDS), NUMBERS, min_size=1, max_size=3),
    st.builds(lambda f, d: {"pwm": {"frequency_hz": f, "duty_percent": d}}, NUMBERS, NUMBERS),
    st.integers(1, 30_000).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 30_000).map(lambda n: '{"a":' * n + "1" + "}" * n),
)
WRITE_ROUTES: dict[tuple[str, str], type[msgspec.Struct] | None] = {
    ("PUT", "/v1/thermal/fan"): FanOverrideBody,
    ("PUT", "/v1/thermal/throttle"): FreqCapBody,
    ("PUT", "/v1/gpio/led"): GpioBody,
    ("PUT", "/v1/gpio/button"): GpioBody,
    ("PUT", "/v1/gpio/nope"): GpioBody,
    ("PUT", "/v1/policies"): None,
    ("POST", "/v1/security/arm"): ArmBody,
    ("POST", "/v1/diag/run"): DiagRunBody,
    ("PUT", "/v1/sim/ambient"): AmbientBody,
    ("PUT", "/v1/sim/load"): LoadBody,
    ("POST", "/v1/sim/faults"): FaultBody,
}


def route_bodies(model: type[msgspec.Struct] | None) -> st.SearchStrategy[Any]:
    """Bodies aimed at one route: its own fields with numbers or any JSON, or anything."""
    if model is None:
        return st.one_of(near_valid_policies(), BODIES)
    own = st.dictionaries(
        st.sampled_from(sorted(model.__struct_fields__)), NUMBERS | JSON, min_size=1, max_size=4
    )
    return st.one_of(own, own, BODIES)


class InProcessMetald:
    """metald's real app over a simulated board, called without sockets."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.board = board = SimBoard(SimSettings(seed=1), clock=FakeClock(), gpio_lines=LINES)
        self.store = DeviceStore(":memory:")
        self.core = MetalCore(board, store=self.store, clock=board.clock, gpio_lines=LINES)
        self.loop.run_until_complete(self.core.start())
        self.server = MetaldServer(self.core, api_key=API_KEY, diagnostics=None)

    def answer(self, data: bytes) -> Response | None:
        async def go() -> Response | None:
            try:
                req = await parse(data)
            except HttpError as exc:
                return exc.response()
            if req is None:
                return None
            result = await self.server.http._call(req)  # as the server does: errors mapped
            assert isinstance(result, Response)  # no event streams asked for here
            return result

        return self.loop.run_until_complete(go())

    def tick(self) -> None:
        self.board.advance(1.0)
        self.loop.run_until_complete(self.core.tick())

    def close(self) -> None:
        self.store.close()
        self.loop.close()


@pytest.fixture(scope="module")
def metald_app() -> Iterator[InProcessMetald]:
    app = InProcessMetald()
    yield app
    app.close()


def no_5xx(resp: Response | None, data: bytes) -> None:
    if resp is None:
        return
    assert resp.status < 500 or resp.status in (503, 505), (resp.status, resp.body, data[:300])
    if resp.status >= 400:
        assert set(json.loads(resp.body)["error"]) == {"code", "message", "details"}


@settings(BUDGET, max_examples=300)
@given(data=st.data())
def test_write_routes_never_answer_5xx(metald_app: InProcessMetald, data: st.DataObject) -> None:
    route = data.draw(st.sampled_from(sorted(WRITE_ROUTES)))
    body = data.draw(route_bodies(WRITE_ROUTES[route]))
    text = body if isinstance(body, str) else json.dumps(body)
    raw = request(route[0], route[1].encode(), body=text.encode())
    resp = metald_app.answer(raw)
    no_5xx(resp, raw)
    assert resp is not None
    event(f"{route[1]} -> {resp.status}")
    metald_app.tick()  # whatever was accepted, the safety loop keeps running
    if isinstance(body, str) and body.startswith("["):
        assert resp.status in (413, 422)


@BUDGET
@given(data=st.one_of(mutated(), st.binary(max_size=1024)))
def test_fuzzed_requests_through_the_routes_never_answer_5xx(
    metald_app: InProcessMetald, data: bytes
) -> None:
    no_5xx(metald_app.answer(data), data)


# ----------------------------------------------------------------------------- over sockets


async def test_a_bad_client_never_stops_the_server() -> None:
    bad = [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS hello to a plain port
        b"GET /" + b"\xff" * 20 + b" HTTP/1.1\r\n\r\n",
        b"PUT /v1/thermal/fan HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n",
        b"PUT /v1/gpio/led HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"GET /v1/state HTTP/1.1\r\n" + b"X: y\r\n" * 500 + b"\r\n",
        request("PUT", b"/v1/thermal/fan", body=b"[" * 20_000 + b"]" * 20_000),
        request("PUT", b"/v1/policies", body=b'{"thermal": {"curve": [[1e999, -1]]}}'),
    ]
    async with running_metald() as m:
        for data in bad:
            reader, writer = await asyncio.open_connection(m.host, m.port)
            writer.write(data)
            await writer.drain()
            status, _, body = await read_response(reader)  # at once, whatever was sent
            writer.close()
            assert 400 <= status < 500, (status, data[:80])
            assert json.loads(body)["error"]["code"]
            resp = await m.client().get("/v1/state")  # the next client, a new connection
            assert resp.status_code == 200
