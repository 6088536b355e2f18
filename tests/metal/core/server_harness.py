"""A real metald API server on 127.0.0.1 over a simulated board, for the server and client tests.

The board runs on a ``FakeClock``: tests advance it and call ``tick`` instead of sleeping.
Every harness checks on exit that the server answered no request with a 500.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from wrale.metal.core.engine import MetalCore
from wrale.metal.core.request_parser import HttpLimits
from wrale.metal.core.server import MetaldServer
from wrale.metal.core.snapshot import Snapshot
from wrale.metal.core.store import DeviceStore
from wrale.metal.hw.base import Fault, FaultKind
from wrale.metal.hw.sim import SimBoard
from wrale.shared.clock import FakeClock
from wrale.shared.config import GpioLineSettings, SimSettings
from wrale.shared.errors import NotFoundError

API_KEY = "test-key-0123456789abcdef"
LINES = {
    "led": GpioLineSettings(line=17, direction="out"),
    "button": GpioLineSettings(line=27, direction="in", pull="up"),
    "fan_pwm": GpioLineSettings(line=18, direction="out"),
}
TIMEOUT_S = 5.0


class FakeDiagnostics:
    """Two canned tests; results are kept as a history, newest first."""

    def __init__(self) -> None:
        self._history: list[dict[str, Any]] = []

    def names(self) -> list[str]:
        return ["fan_spin_up", "sensor_sanity"]

    async def run(self, names: Sequence[str] | None = None) -> list[dict[str, Any]]:
        for name in names or []:
            if name not in self.names():
                raise NotFoundError(f"no such diagnostic: {name}")
        results = [
            {
                "type": "THERMAL",
                "name": name,
                "component": "fan" if name == "fan_spin_up" else "cpu",
                "status": "PASS",
                "reading": 4200.0,
                "expected": ">= 1000",
                "message": "ok",
                "timestamp": 1_700_000_000.0,
            }
            for name in (names or self.names())
        ]
        self._history = list(reversed(results)) + self._history
        return results

    async def history(self, limit: int = 100) -> list[dict[str, Any]]:
        return self._history[:limit]


@dataclass
class Metald:
    board: SimBoard
    core: MetalCore
    server: MetaldServer
    host: str
    port: int
    diagnostics: FakeDiagnostics | None
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def client(self, key: str | None = API_KEY) -> httpx.AsyncClient:
        headers = {} if key is None else {"Authorization": f"Bearer {key}"}
        c = httpx.AsyncClient(base_url=self.url, headers=headers, timeout=TIMEOUT_S)
        self.clients.append(c)
        return c

    async def run_for(self, seconds: float, step_s: float = 1.0) -> Snapshot:
        """Advance the board's clock ``seconds`` in steps, sampling after each."""
        snap = self.core.current()
        steps = round(seconds / step_s)
        for _ in range(steps):
            self.board.advance(step_s)
            snap = await self.core.tick()
        return snap

    def server_errors(self) -> list[tuple[str, int]]:
        return [k for k in self.server.http.requests if k[1] == 500]


@asynccontextmanager
async def running_metald(
    *,
    diagnostics: bool = True,
    sim: bool = True,
    start_core: bool = True,
    allow_500: bool = False,
    keepalive_s: float = 15.0,
    idle_timeout_s: float = 30.0,
    limits: HttpLimits | None = None,
) -> AsyncIterator[Metald]:
    board = SimBoard(SimSettings(seed=1), clock=FakeClock(), gpio_lines=LINES)
    if not sim:
        board.sim = None
    store = DeviceStore(":memory:")
    core = MetalCore(board, store=store, clock=board.clock, gpio_lines=LINES)
    if start_core:
        await core.start()
    diag = FakeDiagnostics() if diagnostics else None
    server = MetaldServer(
        core,
        api_key=API_KEY,
        diagnostics=diag,
        keepalive_s=keepalive_s,
        limits=limits or HttpLimits(idle_timeout_s=idle_timeout_s),
    )
    host, port = await server.start("127.0.0.1", 0)
    m = Metald(board, core, server, host, port, diag)
    try:
        yield m
    finally:
        for c in m.clients:
            await c.aclose()
        await server.close()
        store.close()
    if not allow_500:
        assert m.server_errors() == [], "the server answered a request with a 500 (a bug)"


async def make_hot(m: Metald) -> Snapshot:
    """Full load with a stalled fan until the board is above its warning temperature."""
    assert m.board.sim is not None
    await m.core.sim_call(lambda: m.board.set_load(100))
    await m.core.sim_call(lambda: m.board.inject_fault(Fault(FaultKind.FAN_FAILURE)))
    for _ in range(400):
        snap = await m.run_for(5.0, step_s=1.0)
        if snap.decision.floor_pct > 0:
            return snap
    raise AssertionError("the board never got hot")


async def raw_exchange(host: str, port: int, data: bytes) -> bytes:
    """Send raw bytes, read until the server closes the connection."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), TIMEOUT_S)
    finally:
        writer.close()
        await writer.wait_closed()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One Content-Length-framed response from a raw connection."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT_S)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = await asyncio.wait_for(reader.readexactly(length), TIMEOUT_S)
    return status, headers, body


async def eventually(check: Callable[[], bool]) -> None:
    """Wait until ``check()`` holds (something the server does once a client goes away)."""

    async def poll() -> None:
        while not check():  # noqa: ASYNC110 - the server's state has no event to wait on
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), TIMEOUT_S)


def status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])
