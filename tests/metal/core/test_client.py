"""MetalClient: the in-process and the HTTP implementation give the same answers and errors."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.metal.core.server_harness import (
    API_KEY,
    TIMEOUT_S,
    Metald,
    eventually,
    make_hot,
    running_metald,
)
from wrale.metal.core.client import (
    HttpMetalClient,
    InProcessMetalClient,
    MetalClient,
    error_from_response,
)
from wrale.shared.errors import (
    AuthError,
    ConflictError,
    InvalidRequestError,
    LockdownError,
    NotFoundError,
    UnavailableError,
    UnsafeOperationError,
    UnsupportedError,
    WraleError,
)

KINDS = ["in-process", "http"]


def make_client(kind: str, m: Metald) -> MetalClient:
    if kind == "http":
        return HttpMetalClient(m.url, API_KEY, timeout=TIMEOUT_S)
    return InProcessMetalClient(m.core, m.diagnostics)


@pytest.fixture(params=KINDS)
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Metald, MetalClient]]:
    async with running_metald() as m, make_client(request.param, m) as c:
        yield m, c


async def scenario(m: Metald, c: MetalClient) -> dict[str, Any]:
    """Every operation once, in an order a real operator might use them."""
    out: dict[str, Any] = {
        "health": await c.health(),
        "state": await c.state(),
        "thermal": await c.thermal(),
        "power": await c.power(),
        "security": await c.security(),
        "gpio": await c.gpio(),
        "set_fan": await c.set_fan(75, duration_s=60),
        "clear_fan": await c.clear_fan(),
        "arm": await c.arm("high"),
        "disarm": await c.disarm(),
        "arm_again": await c.arm(),
        "gpio_write": await c.gpio_write("led", 1),
        "gpio_pwm": await c.gpio_pwm("fan_pwm", 25_000, 30),
        "diag_tests": await c.diag_tests(),
        "run_diag": await c.run_diag(),
        "run_one": await c.run_diag(["sensor_sanity"]),
        "diag_history": await c.diag_history(limit=2),
        "sim_status": await c.sim_status(),
        "sim_load": await c.sim_set_load(80),
        "sim_ambient": await c.sim_set_ambient(30.5),
        "sim_fault": await c.sim_inject_fault("heat_spike", duration_s=30, watts=3),
        "sim_fault_2": await c.sim_inject_fault("fan_failure", mode="degraded"),
        "sim_clear_one": await c.sim_clear_faults("heat_spike"),
        "sim_clear": await c.sim_clear_faults(),
    }
    out["events"] = await c.events()
    out["events_since"] = await c.events(since_id=out["events"][0]["id"], limit=3)
    out["events_filtered"] = await c.events(types=["ARMED"], min_severity="info")
    return out


def shape(value: Any) -> Any:
    """The structure of a JSON value: keys and value kinds (numbers are one kind)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [shape(v) for v in value]
    if isinstance(value, bool) or value is None:
        return type(value).__name__
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "str"
    raise AssertionError(f"not a JSON value: {value!r}")


async def test_both_clients_give_the_same_shapes() -> None:
    results = {}
    for kind in KINDS:
        async with running_metald() as m, make_client(kind, m) as c:
            results[kind] = await scenario(m, c)
    local, remote = results["in-process"], results["http"]
    assert shape(local) == shape(remote)
    # Same seed, same fake clock, same operations: the same board, whichever the client.
    for key in ("state", "set_fan", "arm", "gpio_write", "gpio_pwm", "run_one", "events"):
        assert local[key] == remote[key], key
    assert local["set_fan"]["override"] == {"percent": 75.0, "remaining_s": 60.0}
    assert local["arm"]["level"] == "high"
    assert local["disarm"]["armed"] is False
    assert local["gpio_pwm"]["pwm"] == {"frequency_hz": 25000.0, "duty_percent": 30.0}
    assert local["diag_tests"] == ["fan_spin_up", "sensor_sanity"]
    assert [r["name"] for r in local["diag_history"]] == ["sensor_sanity", "sensor_sanity"]
    assert local["sim_load"]["sim"]["load_pct"] == 80.0
    assert local["sim_clear_one"]["cleared"] == 1
    assert local["sim_clear"]["cleared"] == 1
    assert [e["type"] for e in local["events_filtered"]] == ["ARMED", "ARMED"]
    assert len(local["events_since"]) == 3


# ----------------------------------------------------------------------------- errors


async def test_unsafe_override_is_refused(pair: tuple[Metald, MetalClient]) -> None:
    m, c = pair
    await make_hot(m)
    with pytest.raises(UnsafeOperationError, match="may not go below") as err:
        await c.set_fan(0)
    assert err.value.details["floor_pct"] > 0


async def test_lockdown_is_refused(pair: tuple[Metald, MetalClient]) -> None:
    m, c = pair
    await c.arm("high")
    await c.sim_inject_fault("case_open")
    await m.run_for(3)
    assert (await c.security())["lockdown"] is True
    with pytest.raises(LockdownError):
        await c.set_fan(100)
    with pytest.raises(LockdownError):
        await c.gpio_write("led", 1)
    await c.disarm()
    assert (await c.set_fan(100))["fan_percent"] == 100.0


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda c: c.gpio_write("nope", 1), NotFoundError),
        (lambda c: c.gpio_write("led", 2), InvalidRequestError),
        (lambda c: c.gpio_write("button", 1), ConflictError),
        (lambda c: c.gpio_pwm("led", 1000, 50), UnsupportedError),
        (lambda c: c.set_fan(150), InvalidRequestError),
        (lambda c: c.set_fan(50, duration_s=10**6), InvalidRequestError),
        (lambda c: c.arm("extreme"), InvalidRequestError),
        (lambda c: c.run_diag(["warp_core"]), NotFoundError),
        (lambda c: c.diag_history(limit=0), InvalidRequestError),
        (lambda c: c.events(limit=5000), InvalidRequestError),
        (lambda c: c.events(types=["EXPLOSION"]), InvalidRequestError),
        (lambda c: c.sim_inject_fault("gremlins"), InvalidRequestError),
        (lambda c: c.sim_inject_fault("fan_failure", mode="exploded"), InvalidRequestError),
        (lambda c: c.sim_set_load(-1), InvalidRequestError),
        (lambda c: c.sim_clear_faults("gremlins"), InvalidRequestError),
    ],
)
async def test_errors_are_the_same_exceptions(
    pair: tuple[Metald, MetalClient], call: Any, error: type[WraleError]
) -> None:
    _, c = pair
    with pytest.raises(error) as err:
        await call(c)
    assert err.value.message


@pytest.mark.parametrize("kind", KINDS)
async def test_sim_controls_without_the_simulator_are_not_found(kind: str) -> None:
    async with running_metald(sim=False) as m, make_client(kind, m) as c:
        with pytest.raises(NotFoundError, match="only with the sim backend"):
            await c.sim_status()
        with pytest.raises(NotFoundError):
            await c.sim_set_load(50)


@pytest.mark.parametrize("kind", KINDS)
async def test_without_diagnostics_they_are_not_found(kind: str) -> None:
    async with running_metald(diagnostics=False) as m, make_client(kind, m) as c:
        with pytest.raises(NotFoundError, match="diagnostics"):
            await c.run_diag()


@pytest.mark.parametrize("kind", KINDS)
async def test_before_the_first_sample_metald_is_unavailable(kind: str) -> None:
    async with running_metald(start_core=False) as m, make_client(kind, m) as c:
        with pytest.raises(UnavailableError):
            await c.health()
        with pytest.raises(UnavailableError):
            await c.state()


# ----------------------------------------------------------------------------- events


async def test_stream_events_resumes_then_follows(pair: tuple[Metald, MetalClient]) -> None:
    m, c = pair
    await c.arm("low")
    stored = await c.events()
    stream = c.stream_events(since_id=stored[0]["id"])
    try:
        backlog = [await asyncio.wait_for(anext(stream), TIMEOUT_S) for _ in stored[1:]]
        assert backlog == stored[1:]
        await m.core.disarm(authorised=True)
        live = await asyncio.wait_for(anext(stream), TIMEOUT_S)
        assert live["type"] == "DISARMED"
        assert live["id"] > stored[-1]["id"]
        assert {"id", "type", "severity", "at", "message"} <= set(live)
    finally:
        await stream.aclose()
    await eventually(lambda: not m.core._subscribers)


# ----------------------------------------------------------------------------- HTTP only


async def test_a_wrong_key_is_an_auth_error() -> None:
    async with running_metald() as m, HttpMetalClient(m.url, "not-the-key-at-all") as c:
        with pytest.raises(AuthError):
            await c.state()
        with pytest.raises(AuthError):
            await anext(c.stream_events())
        assert (await c.health())["status"] == "ok"  # open


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_an_unreachable_metald_is_unavailable() -> None:
    async with HttpMetalClient(f"http://127.0.0.1:{_closed_port()}", API_KEY) as c:
        with pytest.raises(UnavailableError, match="cannot be reached"):
            await c.state()
        with pytest.raises(UnavailableError):
            await anext(c.stream_events())


async def test_async_with_closes_the_http_client() -> None:
    async with HttpMetalClient("http://127.0.0.1:1", API_KEY) as c:
        pass
    assert c._client.is_closed


def _mock(status: int, content: bytes, content_type: str = "application/json") -> HttpMetalClient:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=content, headers={"Content-Type": content_type})

    return HttpMetalClient("http://metald", API_KEY, transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(
    ("status", "content", "error"),
    [
        (502, b"<html>bad gateway</html>", UnavailableError),
        (200, b"<html>not json</html>", UnavailableError),
        (409, b'{"error": {"code": "who_knows", "message": "x"}}', ConflictError),
        (418, b'{"error": {"code": "teapot", "message": "x"}}', InvalidRequestError),
        (
            409,
            b'{"error": {"code": "lockdown", "message": "x", "details": {"message": 1}}}',
            LockdownError,
        ),
        (422, b'{"error": {"code": "unsupported", "message": "no PWM"}}', UnsupportedError),
        (500, b'{"error": {"code": "internal_error", "message": "bug"}}', WraleError),
    ],
)
async def test_error_responses_map_to_the_error_tree(
    status: int, content: bytes, error: type[WraleError]
) -> None:
    async with _mock(status, content) as c:
        with pytest.raises(error) as err:
            await c.state()
    assert type(err.value) is error
    assert err.value.details.get("http_status", 200) == status or status == 200


def test_error_from_response_keeps_message_and_details() -> None:
    exc = error_from_response(
        409, {"error": {"code": "unsafe", "message": "too hot", "details": {"floor_pct": 68.6}}}
    )
    assert isinstance(exc, UnsafeOperationError)
    assert exc.message == "too hot"
    assert exc.details["floor_pct"] == 68.6


async def test_a_slow_stream_reader_misses_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine drops the oldest queued events of a slow reader; the feed refetches them."""
    from wrale.metal.core import engine
    from wrale.metal.core.events import Event, EventType, Severity

    monkeypatch.setattr(engine, "SUBSCRIBER_QUEUE", 2)
    async with running_metald() as m, InProcessMetalClient(m.core) as c:
        start = (await c.events())[-1]["id"]
        stream = c.stream_events(since_id=start)
        first = asyncio.create_task(anext(stream))
        await m.core.record([Event(EventType.DIAGNOSTICS, Severity.INFO, 0.0, "first")])
        assert (await asyncio.wait_for(first, TIMEOUT_S))["message"] == "first"
        await m.core.record(
            [Event(EventType.DIAGNOSTICS, Severity.INFO, 0.0, f"n{i}") for i in range(10)]
        )
        got = [await asyncio.wait_for(anext(stream), TIMEOUT_S) for _ in range(10)]
        assert [e["message"] for e in got] == [f"n{i}" for i in range(10)]
        assert [e["id"] for e in got] == list(range(got[0]["id"], got[0]["id"] + 10))
        await stream.aclose()
