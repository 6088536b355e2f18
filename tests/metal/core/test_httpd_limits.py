"""What one client may cost metald: the connection cap, per-client share, slow clients.

Real sockets against a real metald on a loopback port; the limits are set small so that
each test opens a handful of connections, and the timeouts short so that none waits long.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import pytest

from tests.metal.core.server_harness import (
    API_KEY,
    TIMEOUT_S,
    Metald,
    eventually,
    read_response,
    running_metald,
    status_of,
)
from wrale.metal.core.request_parser import HttpLimits

GET_STATE = f"GET /v1/state HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n\r\n"

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def open_conns(m: Metald, n: int, source: str = "127.0.0.1") -> list[Conn]:
    conns = [
        await asyncio.open_connection(m.host, m.port, local_addr=(source, 0)) for _ in range(n)
    ]
    await eventually(lambda: m.server.http.connections >= n)
    return conns


async def close_all(conns: list[Conn]) -> None:
    for _, writer in conns:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


async def served(m: Metald, source: str = "127.0.0.1") -> int:
    reader, writer = await asyncio.open_connection(m.host, m.port, local_addr=(source, 0))
    try:
        writer.write(GET_STATE.encode())
        return (await read_response(reader))[0]
    finally:
        writer.close()


@pytest.fixture
async def capped() -> AsyncIterator[Metald]:
    limits = HttpLimits(max_connections=4, max_connections_per_client=3)
    async with running_metald(limits=limits) as m:
        yield m


def test_default_limits_suit_a_board() -> None:
    limits = HttpLimits()
    assert limits.max_connections == 32
    assert limits.max_connections_per_client == 16
    with pytest.raises(ValueError, match="per_client"):
        HttpLimits(max_connections=4, max_connections_per_client=5)
    with pytest.raises(ValueError, match="timeouts"):
        HttpLimits(request_timeout_s=0)


async def test_connections_past_the_cap_get_503_at_once(capped: Metald) -> None:
    m = capped
    mine = await open_conns(m, 3) + await open_conns(m, 1, source="127.0.0.2")
    try:
        reader, writer = await asyncio.open_connection(m.host, m.port)
        raw = await asyncio.wait_for(reader.read(), TIMEOUT_S)  # answered and closed unasked
        writer.close()
        assert status_of(raw) == 503
        assert b"Retry-After: 1" in raw
        body = json.loads(raw.partition(b"\r\n\r\n")[2])
        assert body["error"]["code"] == "too_many_connections"
        assert m.server.http.connections == 4  # the refused one took no slot
        assert m.server.http.requests[("other", 503)] == 1
    finally:
        await close_all(mine)
    await eventually(lambda: m.server.http.connections == 0)
    assert await served(m) == 200  # slots come back when clients leave


async def test_one_client_address_cannot_take_every_slot(capped: Metald) -> None:
    m = capped
    mine = await open_conns(m, 3)
    try:
        reader, writer = await asyncio.open_connection(m.host, m.port)
        assert status_of(await asyncio.wait_for(reader.read(), TIMEOUT_S)) == 503
        writer.close()
        assert await served(m, source="127.0.0.2") == 200  # another address still gets in
    finally:
        await close_all(mine)


async def test_idle_connections_free_their_slot() -> None:
    limits = HttpLimits(max_connections=2, max_connections_per_client=2, idle_timeout_s=0.1)
    async with running_metald(limits=limits) as m:
        mine = await open_conns(m, 2)
        for reader, _ in mine:  # the server hangs up on clients that never send a byte
            assert await asyncio.wait_for(reader.read(), TIMEOUT_S) == b""
        await close_all(mine)
        await eventually(lambda: m.server.http.connections == 0)
        assert await served(m) == 200


async def _trickle(writer: asyncio.StreamWriter, data: bytes) -> None:
    """Sends ``data`` a byte at a time, then keeps sending blank lines, until hung up on."""
    with contextlib.suppress(ConnectionError, OSError):
        for i in range(len(data)):
            writer.write(data[i : i + 1])
            await writer.drain()
            await asyncio.sleep(0.01)
        while not writer.is_closing():
            writer.write(b"\r\n")
            await writer.drain()
            await asyncio.sleep(0.01)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="blank-lines-only"),
        pytest.param(b"GET /v1/state HTTP/1.1\r\nHost: x\r\n", id="slow-headers"),
        pytest.param(b"GET /v1/state HTTP/1.1\r\nX-Pad: " + b"a" * 4000, id="slow-header-line"),
    ],
)
async def test_a_slowloris_client_is_cut_off_with_408(data: bytes) -> None:
    limits = HttpLimits(idle_timeout_s=0.3, request_timeout_s=0.3)
    async with running_metald(limits=limits) as m:
        reader, writer = await asyncio.open_connection(m.host, m.port)
        trickle = asyncio.create_task(_trickle(writer, data))
        try:
            raw = await asyncio.wait_for(reader.read(), TIMEOUT_S)
        finally:
            writer.close()
            trickle.cancel()
            await asyncio.gather(trickle, return_exceptions=True)
        assert status_of(raw) == 408
        await eventually(lambda: m.server.http.connections == 0)
        assert await served(m) == 200


async def test_a_slow_body_is_cut_off_with_408() -> None:
    limits = HttpLimits(request_timeout_s=0.3)
    async with running_metald(limits=limits) as m:
        reader, writer = await asyncio.open_connection(m.host, m.port)
        head = (
            "PUT /v1/thermal/fan HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
            f"Authorization: Bearer {API_KEY}\r\n\r\n"
        )
        trickle = asyncio.create_task(_trickle(writer, head.encode() + b" " * 999))
        try:
            raw = await asyncio.wait_for(reader.read(), TIMEOUT_S)
        finally:
            writer.close()
            trickle.cancel()
            await asyncio.gather(trickle, return_exceptions=True)
        assert status_of(raw) == 408


async def test_header_count_limit_is_431() -> None:
    limits = HttpLimits(max_header_lines=5)
    async with running_metald(limits=limits) as m:
        reader, writer = await asyncio.open_connection(m.host, m.port)
        writer.write(b"GET /healthz HTTP/1.1\r\n" + b"X-A: 1\r\n" * 6 + b"\r\n")
        raw = await asyncio.wait_for(reader.read(), TIMEOUT_S)
        writer.close()
        assert status_of(raw) == 431
        assert await served(m) == 200


async def test_body_limit_is_a_setting() -> None:
    async with running_metald(limits=HttpLimits(max_body_bytes=10)) as m:
        resp = await m.client().put("/v1/thermal/fan", content=b'{"percent": 70}')
        assert resp.status_code == 413
        assert resp.json()["error"]["details"] == {"limit_bytes": 10}
