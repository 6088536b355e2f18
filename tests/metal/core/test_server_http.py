"""The HTTP/1.1 layer under metald: limits, keep-alive, malformed input, streams, shutdown.

Raw sockets say exactly what goes over the wire; nothing here may produce a 500.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.metal.core.server_harness import (
    API_KEY,
    TIMEOUT_S,
    Metald,
    raw_exchange,
    read_response,
    running_metald,
    status_of,
)
from wrale.metal.core.http import (
    EventStream,
    HttpError,
    Request,
    Response,
    Router,
    SseEvent,
    json_response,
)
from wrale.metal.core.httpd import HttpServer
from wrale.metal.core.request_parser import HttpLimits

MAX_BODY_BYTES = HttpLimits().max_body_bytes

AUTH = f"Authorization: Bearer {API_KEY}\r\n".encode()


def get(path: str, extra: bytes = b"", version: bytes = b"HTTP/1.1") -> bytes:
    return b"GET " + path.encode() + b" " + version + b"\r\nHost: x\r\n" + AUTH + extra + b"\r\n"


def put_json(path: str, body: bytes, extra: bytes = b"") -> bytes:
    head = f"PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n".encode()
    return head + AUTH + extra + b"\r\n" + body


@pytest.fixture
async def metald() -> AsyncIterator[Metald]:
    async with running_metald() as m:
        yield m


async def still_serves(m: Metald) -> None:
    resp = await m.client().get("/v1/state")
    assert resp.status_code == 200


# ----------------------------------------------------------------------------- routing


async def test_unknown_path_is_404(metald: Metald) -> None:
    c = metald.client()
    for path in ("/nope", "/v1/state/", "/v1", "/v1/gpio/led/extra", "/"):
        resp = await c.get(path)
        assert resp.status_code == 404, path
        assert resp.json()["error"]["code"] == "not_found"
    assert (await c.get("/v1/%73tate")).status_code == 200  # %-encoded segments are decoded


async def test_wrong_method_is_405_with_allow(metald: Metald) -> None:
    c = metald.client()
    resp = await c.post("/v1/state")
    assert resp.status_code == 405
    assert resp.headers["allow"] == "GET"
    resp = await c.delete("/v1/gpio/led")
    assert resp.status_code == 405
    assert resp.headers["allow"] == "GET, PUT"
    assert resp.json()["error"]["code"] == "method_not_allowed"


def test_router_refuses_duplicate_and_bad_routes() -> None:
    async def h(request: Request) -> Response:
        return json_response({})

    r = Router()
    r.add("GET", "/a/{x}", h)
    with pytest.raises(ValueError, match="twice"):
        r.add("GET", "/a/{x}", h)
    with pytest.raises(ValueError, match="start with"):
        r.add("GET", "a", h)
    r.add("GET", "/a/b", h)
    assert r.resolve("GET", "/a/b")[1] == {}  # the literal route wins
    assert r.resolve("GET", "/a/c%2Fd")[1] == {"x": "c/d"}
    with pytest.raises(HttpError) as err:
        r.resolve("GET", "/a/")
    assert err.value.status == 404


# ----------------------------------------------------------------------------- limits


async def test_body_over_the_limit_is_413(metald: Metald) -> None:
    raw = await raw_exchange(
        metald.host,
        metald.port,
        f"PUT /v1/thermal/fan HTTP/1.1\r\nContent-Length: {MAX_BODY_BYTES + 1}\r\n".encode()
        + AUTH
        + b"\r\n",
    )
    assert status_of(raw) == 413
    assert b"Connection: close" in raw
    assert b'"payload_too_large"' in raw
    await still_serves(metald)


async def test_body_at_the_limit_is_read(metald: Metald) -> None:
    body = b'{"percent": 50' + b" " * (MAX_BODY_BYTES - 15) + b"}"
    assert len(body) == MAX_BODY_BYTES
    raw = await raw_exchange(
        metald.host, metald.port, put_json("/v1/thermal/fan", body, b"Connection: close\r\n")
    )
    assert status_of(raw) == 200


@pytest.mark.parametrize(
    "headers",
    [
        b"X-Big: " + b"a" * 9000 + b"\r\n",
        b"".join(b"X-H%d: %s\r\n" % (i, b"b" * 100) for i in range(90)),
        b"".join(b"X-H%d: 1\r\n" % i for i in range(150)),
    ],
    ids=["one-long-line", "many-lines", "too-many-headers"],
)
async def test_header_over_the_limit_is_431(metald: Metald, headers: bytes) -> None:
    raw = await raw_exchange(metald.host, metald.port, get("/v1/state", headers))
    assert status_of(raw) == 431
    assert b'"headers_too_large"' in raw
    await still_serves(metald)


async def test_chunked_request_body_is_411(metald: Metald) -> None:
    raw = await raw_exchange(
        metald.host,
        metald.port,
        b"PUT /v1/thermal/fan HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
        + AUTH
        + b"\r\n3\r\n{}\n\r\n0\r\n\r\n",
    )
    assert status_of(raw) == 411
    body = json.loads(raw.split(b"\r\n\r\n", 1)[1])
    assert body["error"]["code"] == "length_required"


@pytest.mark.parametrize("length", [b"abc", b"-1", b"5, 6", b"\xc2\xb2", b"9" * 30])
async def test_malformed_content_length_is_400(metald: Metald, length: bytes) -> None:
    raw = await raw_exchange(
        metald.host,
        metald.port,
        b"PUT /v1/thermal/fan HTTP/1.1\r\nContent-Length: " + length + b"\r\n" + AUTH + b"\r\n",
    )
    assert status_of(raw) == 400


async def test_expect_100_continue(metald: Metald) -> None:
    body = b'{"percent": 60}'
    raw = await raw_exchange(
        metald.host,
        metald.port,
        put_json("/v1/thermal/fan", body, b"Expect: 100-continue\r\nConnection: close\r\n"),
    )
    assert raw.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")


# ----------------------------------------------------------------------------- bodies


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"{", "not valid JSON"),
        (b'{"percent": 50,}', "not valid JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[" * 5000 + b"]" * 5000, "not valid JSON"),
        (b'{"percent": ' + b"9" * 5000 + b"}", "not valid JSON"),
    ],
)
async def test_malformed_json_is_422(metald: Metald, body: bytes, words: str) -> None:
    resp = await metald.client().put(
        "/v1/thermal/fan", content=body, headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 422
    assert resp.json()["error"]["code"] == "invalid_request"
    assert words in resp.json()["error"]["message"]


# ----------------------------------------------------------------------------- malformed


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"\x00\xff\xfe garbage\r\n\r\n", 400),
        (b"GET\r\n\r\n", 400),
        (b"GET /v1/state\r\n\r\n", 400),
        (b"GET /v1/state HTTP/1.1 extra\r\n\r\n", 400),
        (b"GET http://x/v1/state HTTP/1.1\r\n\r\n", 400),
        (b"GET /v1/state HTTP/2.0\r\n\r\n", 505),
        (b"GET /v1/state FTP/1.1\r\n\r\n", 400),
        (b"G(T /v1/state HTTP/1.1\r\n\r\n", 400),
        (b"GET /v1/state HTTP/1.1\r\nNo colon here\r\n\r\n", 400),
        (b"GET /v1/state HTTP/1.1\r\nBad Name: x\r\n\r\n", 400),
        (b"GET /v1/state HTTP/1.1\r\n folded: x\r\n\r\n", 400),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 431),
    ],
)
async def test_malformed_requests_get_4xx_and_the_server_lives_on(
    metald: Metald, data: bytes, status: int
) -> None:
    raw = await raw_exchange(metald.host, metald.port, data)
    assert status_of(raw) == status
    assert b"Connection: close" in raw
    await still_serves(metald)


@pytest.mark.parametrize("data", [b"", b"GET /v1/sta", b"GET /v1/state HTTP/1.1\r\nHost"])
async def test_a_request_cut_short_is_dropped_quietly(metald: Metald, data: bytes) -> None:
    reader, writer = await asyncio.open_connection(metald.host, metald.port)
    writer.write(data)
    writer.write_eof()
    assert await asyncio.wait_for(reader.read(), TIMEOUT_S) == b""
    writer.close()
    await still_serves(metald)


async def test_fuzzed_requests_never_get_a_500(metald: Metald) -> None:
    rng = random.Random(7)
    seeds = [
        get("/v1/state"),
        put_json("/v1/thermal/fan", b'{"percent": 70, "duration_s": 10}'),
        put_json("/v1/gpio/led", b'{"value": 1}'),
        b"POST /v1/sim/faults HTTP/1.1\r\nContent-Length: 24\r\n" + AUTH + b"\r\n"
        b'{"fault": "heat_spike"} ',
        get("/v1/events?since_id=1&limit=5&type=TAMPER,ARMED&min_severity=info"),
    ]
    for _ in range(300):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 6)):
            if not data:
                break
            i = rng.randrange(len(data))
            match rng.randrange(4):
                case 0:
                    data[i] = rng.randrange(256)
                case 1:
                    del data[i]
                case 2:
                    data[i:i] = rng.choice([b"\r\n", b":", b" ", b"%", b"{", b"\x00", b"?"])
                case _:
                    data = data[:i]
        reader, writer = await asyncio.open_connection(metald.host, metald.port)
        writer.write(bytes(data))
        writer.write_eof()
        raw = await asyncio.wait_for(reader.read(), TIMEOUT_S)
        writer.close()
        for chunk in raw.split(b"HTTP/1.1 ")[1:]:
            assert not chunk.startswith(b"500"), bytes(data)
    await still_serves(metald)
    assert not metald.server_errors()


# ----------------------------------------------------------------------------- connections


async def test_keep_alive_serves_two_requests_on_one_connection(metald: Metald) -> None:
    reader, writer = await asyncio.open_connection(metald.host, metald.port)
    try:
        writer.write(get("/v1/thermal"))
        status, headers, body = await read_response(reader)
        assert status == 200
        assert "connection" not in headers
        assert "cpu_temp_c" in json.loads(body)

        writer.write(put_json("/v1/thermal/fan", b'{"percent": 90}'))
        status, _, body = await read_response(reader)
        assert status == 200
        assert json.loads(body)["fan_percent"] == 90.0

        writer.write(get("/v1/power", b"Connection: close\r\n"))
        status, headers, _ = await read_response(reader)
        assert status == 200
        assert headers["connection"] == "close"
        assert await asyncio.wait_for(reader.read(), TIMEOUT_S) == b""  # server hung up
    finally:
        writer.close()


async def test_pipelined_requests_are_answered_in_order(metald: Metald) -> None:
    reader, writer = await asyncio.open_connection(metald.host, metald.port)
    writer.write(get("/v1/power") + get("/nope") + get("/v1/security"))
    assert (await read_response(reader))[0] == 200
    assert (await read_response(reader))[0] == 404
    status, _, body = await read_response(reader)
    assert status == 200
    assert "armed" in json.loads(body)
    writer.close()


async def test_http_1_0_closes_unless_asked_to_keep_alive(metald: Metald) -> None:
    raw = await raw_exchange(metald.host, metald.port, get("/v1/power", version=b"HTTP/1.0"))
    assert status_of(raw) == 200
    assert b"Connection: close" in raw

    reader, writer = await asyncio.open_connection(metald.host, metald.port)
    writer.write(get("/v1/power", b"Connection: keep-alive\r\n", version=b"HTTP/1.0"))
    _, headers, _ = await read_response(reader)
    assert headers["connection"] == "keep-alive"
    writer.write(get("/v1/power", version=b"HTTP/1.0"))
    assert (await read_response(reader))[0] == 200
    writer.close()


async def test_idle_connections_are_closed() -> None:
    async with running_metald(idle_timeout_s=0.05) as m:
        reader, writer = await asyncio.open_connection(m.host, m.port)
        writer.write(get("/v1/power"))
        assert (await read_response(reader))[0] == 200
        assert await asyncio.wait_for(reader.read(), TIMEOUT_S) == b""
        writer.close()


# ----------------------------------------------------------------------------- HttpServer


async def _tiny_app(request: Request) -> Response | EventStream:
    if request.path == "/stream":

        async def ticks() -> AsyncIterator[SseEvent]:
            yield SseEvent("first\nsecond", event="tick", id="1")
            await asyncio.Event().wait()  # then silence: only keepalives
            yield SseEvent("never")  # pragma: no cover

        return EventStream(ticks())
    if request.path == "/finite":

        async def two() -> AsyncIterator[SseEvent]:
            yield SseEvent("{}", event="a", id="1")
            yield SseEvent("", event="b")

        return EventStream(two())
    if request.path == "/boom":
        raise RuntimeError("boom")
    return json_response({"path": request.path, "query": request.query})


@pytest.fixture
async def tiny() -> AsyncIterator[tuple[HttpServer, str]]:
    server = HttpServer(_tiny_app, keepalive_s=0.02, limits=HttpLimits(request_timeout_s=0.05))
    host, port = await server.start("127.0.0.1", 0)
    yield server, f"http://{host}:{port}"
    await server.close()


async def test_a_slow_request_is_408(tiny: tuple[HttpServer, str]) -> None:
    _, url = tiny
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # ... and the blank line never comes
    raw = await asyncio.wait_for(reader.read(), TIMEOUT_S)
    assert status_of(raw) == 408
    writer.close()


async def test_a_failing_handler_is_a_500_and_the_server_lives_on(
    tiny: tuple[HttpServer, str], caplog: pytest.LogCaptureFixture
) -> None:
    server, url = tiny
    async with httpx.AsyncClient(base_url=url) as c:
        resp = await c.get("/boom")
        assert resp.status_code == 500
        assert resp.json()["error"]["code"] == "internal_error"
        assert (await c.get("/ok?a=1&a=2&b=")).json()["query"] == {"a": ["1", "2"], "b": [""]}
    assert any(r.exc_info and r.exc_info[0] is RuntimeError for r in caplog.records)
    assert server.requests[("GET", 500)] == 1


async def test_event_stream_keepalives_and_shutdown(tiny: tuple[HttpServer, str]) -> None:
    server, url = tiny
    lines: list[str] = []
    async with (
        httpx.AsyncClient(base_url=url) as c,
        c.stream("GET", "/stream") as resp,
    ):
        assert resp.headers["content-type"] == "text/event-stream; charset=utf-8"
        it = resp.aiter_lines()
        while ": keepalive" not in lines:
            lines.append(await asyncio.wait_for(anext(it), TIMEOUT_S))
        assert lines[:4] == ["id: 1", "event: tick", "data: first", "data: second"]
        closing = asyncio.create_task(server.close())
        rest = [line async for line in it]  # ends cleanly: the terminating chunk arrives
        await asyncio.wait_for(closing, TIMEOUT_S)
    assert all(line in ("", ": keepalive") for line in rest)


async def test_an_event_stream_that_ends_ends_the_response(
    tiny: tuple[HttpServer, str], caplog: pytest.LogCaptureFixture
) -> None:
    _, url = tiny
    async with httpx.AsyncClient(base_url=url) as c:
        resp = await c.get("/finite", headers={"Accept": "text/event-stream"})
    assert resp.status_code == 200
    assert (
        resp.text.replace(": keepalive\n\n", "")
        == "id: 1\nevent: a\ndata: {}\n\nevent: b\ndata: \n\n"
    )
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


async def test_close_ends_idle_keep_alive_connections(tiny: tuple[HttpServer, str]) -> None:
    server, url = tiny
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await read_response(reader))[0] == 200
    await asyncio.wait_for(server.close(), TIMEOUT_S)
    assert await asyncio.wait_for(reader.read(), TIMEOUT_S) == b""
    writer.close()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(host, int(port))
