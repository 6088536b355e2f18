"""Test kit for the edge agent: a small central server written with the protocol alone
(no brain), and a simulated device (SimBoard + MetalCore + InProcessMetalClient) whose
agent runs over the in-memory transport.

Everything runs on the real clock with intervals of milliseconds; tests wait for
conditions (``eventually``), never for durations.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from wrale.fleet.edge.agent import EdgeAgent
from wrale.fleet.edge.settings import EdgeSettings
from wrale.fleet.edge.store import EdgeStore
from wrale.fleet.sync.protocol import (
    Ack,
    Command,
    CommandResult,
    Desired,
    EventsBatch,
    Goodbye,
    Hello,
    Message,
    Reported,
    Status,
    TelemetryBatch,
    Welcome,
)
from wrale.fleet.sync.transport.base import Connection
from wrale.fleet.sync.transport.memory import MemoryNetwork
from wrale.metal.core.client import InProcessMetalClient
from wrale.metal.core.engine import MetalCore
from wrale.metal.core.store import DeviceStore
from wrale.metal.hw.sim import SimBoard
from wrale.shared.clock import SystemClock
from wrale.shared.config import GpioLineSettings, SimSettings
from wrale.shared.structs import convert

DEVICE = "dev-1"
GUARD_S = 30.0  # a hang guard, not a timing assertion
LINES = {
    "led": GpioLineSettings(line=17, direction="out"),
    "fan_pwm": GpioLineSettings(line=18, direction="out"),
}


async def eventually(check: Callable[[], bool], what: str = "condition") -> None:
    """Wait until ``check()`` holds; fail (not hang) if it never does."""

    async def poll() -> None:
        while not check():  # noqa: ASYNC110 - state of other tasks, no event to wait on
            await asyncio.sleep(0.005)

    try:
        await asyncio.wait_for(poll(), GUARD_S)
    except TimeoutError:
        raise AssertionError(f"never happened: {what}") from None


@dataclass
class FakeCentral:
    """The server end: stores a batch iff ``prev <= last < seq``, acks every batch with
    its last stored seq, records everything else the device says."""

    heartbeat_s: float = 0.05
    last: dict[str, int] = field(default_factory=lambda: {"telemetry": 0, "events": 0})
    points: list[tuple[str, float, float]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    batches: Counter[str] = field(default_factory=Counter)
    hellos: list[Hello] = field(default_factory=list)
    reported: list[Reported] = field(default_factory=list)
    results: list[CommandResult] = field(default_factory=list)
    statuses: list[Status] = field(default_factory=list)
    desired: Desired | None = None
    queued: list[Command] = field(default_factory=list)
    refuse: Goodbye | None = None
    drop_batches: int = 0  # lose the next N batches without an ack (a lossy path)
    conn: Connection | None = None

    async def serve(self, conn: Connection) -> None:
        hello = await conn.recv()
        assert isinstance(hello, Hello)
        self.hellos.append(hello)
        if self.refuse is not None:
            await conn.send(self.refuse)
            return
        await conn.send(
            Welcome(hello.device_id, "test", acked=dict(self.last), heartbeat_s=self.heartbeat_s)
        )
        if self.desired is not None and self.desired.version > hello.desired_version:
            await conn.send(self.desired)
        while self.queued:
            await conn.send(self.queued.pop(0))
        self.conn = conn
        try:
            while True:
                await self.handle(conn, await conn.recv())
        finally:
            if self.conn is conn:
                self.conn = None

    async def handle(self, conn: Connection, msg: Message) -> None:
        if isinstance(msg, TelemetryBatch | EventsBatch):
            stream = msg.T
            if self.drop_batches > 0:
                self.drop_batches -= 1
                return
            last = self.last[stream]
            gap = msg.prev > last
            if msg.prev <= last < msg.seq:
                if isinstance(msg, TelemetryBatch):
                    self.points += msg.points
                else:
                    self.events += msg.events
                self.last[stream] = msg.seq
                self.batches[stream] += 1
            await conn.send(Ack(stream, self.last[stream], gap=gap))
        elif isinstance(msg, Reported):
            self.reported.append(msg)
        elif isinstance(msg, CommandResult):
            self.results.append(msg)
        elif isinstance(msg, Status):
            self.statuses.append(msg)

    async def push(self, msg: Message) -> None:
        """Send now if the device is connected, else when it next connects."""
        if isinstance(msg, Desired):
            self.desired = msg
        if self.conn is not None:
            await self.conn.send(msg)
        elif isinstance(msg, Command):
            self.queued.append(msg)

    def latest_reported(self) -> Reported | None:
        return max(self.reported, key=lambda r: r.version, default=None)

    def result(self, command_id: str) -> CommandResult | None:
        return next((r for r in reversed(self.results) if r.id == command_id), None)


def edge_settings(state_dir: Path, **over: Any) -> EdgeSettings:
    base: dict[str, Any] = {
        "state_dir": state_dir,
        "heartbeat_s": 0.05,
        "handshake_timeout_s": 5.0,
        "ack_timeout_s": 5.0,
        "backoff_base_s": 0.005,
        "backoff_cap_s": 0.05,
        "backoff_reset_s": 0.0,
        "autonomous_after_s": 3600.0,
        "metal_retry_s": 0.02,
        "drain_batches_per_s": 1000.0,
        "window_batches": 4,
        "batch_max_points": 200,
        "sampling_interval_s": 0.01,
        "report_interval_s": 0.03,
    }
    return convert({**base, **over}, EdgeSettings, strict=False)


class Device:
    """A simulated board with its metal core running, and agents started on demand."""

    def __init__(self, tmp_path: Path, central: FakeCentral, **settings: Any) -> None:
        self.tmp_path = tmp_path
        self.central = central
        self.net = MemoryNetwork(central.serve)
        self.settings = edge_settings(tmp_path, **settings)
        self.clock = SystemClock()
        self.board = SimBoard(SimSettings(seed=1, noise=False), clock=self.clock, gpio_lines=LINES)
        self.core = self._core()
        self.metal = InProcessMetalClient(self.core)
        self.store: EdgeStore | None = None
        self.agent: EdgeAgent | None = None
        self.agents: list[EdgeAgent] = []
        self._stop = asyncio.Event()
        self._core_stop = asyncio.Event()
        self._core_task: asyncio.Task[None] | None = None
        self._agent_task: asyncio.Task[None] | None = None

    def _core(self) -> MetalCore:
        return MetalCore(
            self.board,
            store=DeviceStore(":memory:"),
            clock=self.clock,
            gpio_lines=LINES,
            sample_interval_s=0.01,
        )

    async def start_metal(self) -> None:
        await self.core.start()
        self._core_stop = asyncio.Event()
        self._core_task = asyncio.create_task(self.core.run(self._core_stop))

    async def stop_metal(self) -> None:
        self._core_stop.set()
        if self._core_task is not None:
            await self._core_task
            self._core_task = None

    async def reboot_metal(self) -> None:
        """A fresh metald on the same board: default policies, no override."""
        await self.stop_metal()
        self.core = self._core()
        self.metal.core = self.core
        await self.start_metal()

    async def start_agent(self, **over: Any) -> EdgeAgent:
        settings = copy.copy(self.settings)
        for name, value in over.items():  # unchecked, as a test may go below a bound
            msgspec.structs.force_setattr(settings, name, value)
        self.store = EdgeStore(
            settings.store_path(),
            max_rows=settings.outbox_max_rows,
            max_age_s=settings.outbox_max_age_s,
        )
        self.agent = EdgeAgent(
            settings, self.metal, self.store, self.net.dial, clock=self.clock, device_id=DEVICE
        )
        self.agents.append(self.agent)
        self._stop = asyncio.Event()
        self._agent_task = asyncio.create_task(self.agent.run(self._stop))
        return self.agent

    async def stop_agent(self) -> None:
        """A clean stop: the agent stores what it sampled, closes the link and its store."""
        self._stop.set()
        if self._agent_task is not None:
            await self._agent_task
            self._agent_task = None
        if self.store is not None:
            self.store.close()
            self.store = None

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self.stop_agent()
        with contextlib.suppress(Exception):
            await self.stop_metal()
        await self.net.aclose()

    def appended_points(self) -> int:
        return sum(a.stats()["points"] for a in self.agents)

    def appended_events(self) -> int:
        return sum(a.stats()["events"] for a in self.agents)
