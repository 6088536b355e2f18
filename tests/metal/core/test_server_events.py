"""``GET /v1/events``: the stored list with its filters, and the live Server-Sent Events stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from tests.metal.core.server_harness import TIMEOUT_S, Metald, eventually, running_metald


@pytest.fixture
async def metald() -> AsyncIterator[Metald]:
    async with running_metald(keepalive_s=0.05) as m:
        yield m


@pytest.fixture
def client(metald: Metald) -> httpx.AsyncClient:
    return metald.client()


async def sse_events(lines: AsyncIterator[str]) -> AsyncIterator[dict[str, Any]]:
    """Parse an event stream into ``{"id", "event", "data"}`` dicts (comments kept apart)."""
    fields: dict[str, Any] = {}
    async for line in lines:
        if line.startswith(":"):
            yield {"comment": line[1:].strip()}
        elif line:
            name, _, value = line.partition(": ")
            if name == "data":
                fields["data"] = fields.get("data", "") + value
            else:
                fields[name] = value
        elif fields:
            fields["data"] = json.loads(fields["data"])
            yield fields
            fields = {}


async def next_event(
    events: AsyncIterator[dict[str, Any]], want: Callable[[dict[str, Any]], bool] = bool
) -> dict[str, Any]:
    async def find() -> dict[str, Any]:
        async for e in events:
            if "comment" not in e and want(e):
                return e
        raise AssertionError("the stream ended")

    return await asyncio.wait_for(find(), TIMEOUT_S)


# ----------------------------------------------------------------------------- the list


async def test_events_list(client: httpx.AsyncClient) -> None:
    await client.post("/v1/security/arm", json={"level": "low"})
    await client.put("/v1/thermal/fan", json={"percent": 70})
    resp = await client.get("/v1/events")
    assert resp.status_code == 200
    events = resp.json()
    assert isinstance(events, list)
    assert events[0]["type"] == "METALD_STARTED"
    for e in events:
        assert {"id", "type", "severity", "at", "message"} <= set(e)
    types = [e["type"] for e in events]
    assert "ARMED" in types
    assert "FAN_OVERRIDE" in types
    ids = [e["id"] for e in events]
    assert ids == sorted(ids)

    after = (await client.get("/v1/events", params={"since_id": ids[0]})).json()
    assert [e["id"] for e in after] == ids[1:]
    latest = (await client.get("/v1/events", params={"limit": 1})).json()
    assert [e["id"] for e in latest] == ids[-1:]


async def test_events_filters(client: httpx.AsyncClient) -> None:
    await client.post("/v1/security/arm", json={"level": "low"})
    await client.post("/v1/security/disarm")
    armed = (await client.get("/v1/events", params={"type": "ARMED"})).json()
    assert [e["type"] for e in armed] == ["ARMED"]
    both = (await client.get("/v1/events", params={"type": "armed,disarmed"})).json()
    assert [e["type"] for e in both] == ["ARMED", "DISARMED"]
    both = (await client.get("/v1/events?type=ARMED&type=DISARMED")).json()
    assert len(both) == 2
    warnings = (await client.get("/v1/events", params={"min_severity": "warning"})).json()
    assert warnings
    assert {e["severity"] for e in warnings} <= {"warning", "critical"}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"since_id": -1}, "since_id"),
        ({"type": "EXPLOSION"}, "type.0"),
        ({"min_severity": "apocalyptic"}, "min_severity"),
        ({"stream": "maybe"}, "stream"),
    ],
)
async def test_events_query_validation(
    client: httpx.AsyncClient, params: dict[str, Any], field: str
) -> None:
    resp = await client.get("/v1/events", params=params)
    assert resp.status_code == 422
    assert resp.json()["error"]["message"].startswith(f"{field}: ")


# ----------------------------------------------------------------------------- the stream


async def test_stream_receives_events_raised_after_subscribing(
    metald: Metald, client: httpx.AsyncClient
) -> None:
    async with client.stream("GET", "/v1/events", params={"stream": "true"}) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = sse_events(resp.aiter_lines())
        # The response head comes only once the stream is subscribed: nothing is missed.
        await metald.client().post("/v1/security/arm", json={"level": "high"})
        e = await next_event(events)
        assert e["event"] == "ARMED"
        assert e["data"]["type"] == "ARMED"
        assert e["data"]["data"] == {"level": "high"}
        assert int(e["id"]) == e["data"]["id"]
        assert {"id", "type", "severity", "at", "message"} <= set(e["data"])
        await metald.client().put("/v1/thermal/fan", json={"percent": 90})
        assert (await next_event(events))["event"] == "FAN_OVERRIDE"


async def test_stream_by_accept_header_sends_keepalives(
    metald: Metald, client: httpx.AsyncClient
) -> None:
    headers = {"Accept": "text/event-stream"}
    async with client.stream("GET", "/v1/events", headers=headers) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        lines = resp.aiter_lines()
        line = await asyncio.wait_for(anext(lines), TIMEOUT_S)
        assert line == ": keepalive"


@pytest.mark.parametrize("how", ["last-event-id", "since_id"])
async def test_stream_resumes_after_an_id_without_duplicates(
    metald: Metald, client: httpx.AsyncClient, how: str
) -> None:
    await client.post("/v1/security/arm", json={"level": "low"})
    stored = (await client.get("/v1/events")).json()
    resume_from = stored[0]["id"]
    headers = {"Last-Event-ID": str(resume_from)} if how == "last-event-id" else {}
    params = {"stream": "1"} if how == "last-event-id" else {"stream": "1", "since_id": resume_from}
    async with client.stream("GET", "/v1/events", params=params, headers=headers) as resp:
        events = sse_events(resp.aiter_lines())
        backlog = [await next_event(events) for _ in stored[1:]]
        assert [int(e["id"]) for e in backlog] == [e["id"] for e in stored[1:]]
        await metald.client().post("/v1/security/disarm")
        live = await next_event(events)
        assert live["event"] == "DISARMED"
        assert int(live["id"]) > stored[-1]["id"]


async def test_stream_applies_the_filters(metald: Metald, client: httpx.AsyncClient) -> None:
    params = {"stream": "true", "type": "DISARMED"}
    async with client.stream("GET", "/v1/events", params=params) as resp:
        events = sse_events(resp.aiter_lines())
        other = metald.client()
        await other.post("/v1/security/arm", json={"level": "low"})
        await other.post("/v1/security/disarm")
        assert (await next_event(events))["event"] == "DISARMED"


async def test_a_stream_that_ends_releases_its_subscription(metald: Metald) -> None:
    subscribers = metald.core._subscribers  # the engine's subscriber set
    async with (
        httpx.AsyncClient(base_url=metald.url, headers=metald.client().headers) as c,
        c.stream("GET", "/v1/events?stream=true") as resp,
    ):
        assert resp.status_code == 200
        assert len(subscribers) == 1
    await eventually(lambda: not subscribers)  # the client went away


async def test_server_close_ends_streams_cleanly() -> None:
    async with running_metald(keepalive_s=0.05) as m:
        subscribers = m.core._subscribers
        async with m.client().stream("GET", "/v1/events?stream=true") as resp:
            lines = resp.aiter_lines()
            assert await asyncio.wait_for(anext(lines), TIMEOUT_S) == ": keepalive"
            closing = asyncio.create_task(m.server.close())
            rest = [line async for line in lines]
            await asyncio.wait_for(closing, TIMEOUT_S)
        assert set(rest) <= {"", ": keepalive"}
        assert not subscribers
