"""``SimFleet``: N simulated boards in one process, each a real device stack.

Every board is a simulated board (through the backend registry) with its own ``MetalCore``
(safety loops, SQLite store), diagnostics, an ``InProcessMetalClient`` and an ``EdgeAgent``
on its own state directory — the same pieces ``wrale device run`` wires for one board. The
boards share one simulation clock (``speed`` simulated seconds per real second drives the
physics); sampling, reporting and timestamps stay on the real clock.

On disk: ``STATE/fleet.json`` (the name prefix and seed, so a re-run is the same fleet) and
``STATE/boards/<name>/`` (metald.db, the agent's store and ``credentials.json``).
Credentials, enrollment and the boards' agents are in ``agents`` (a mixin of ``SimFleet``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wrale.fleet.edge.store import EdgeStore
from wrale.metal.core.client import InProcessMetalClient, MetalClient
from wrale.metal.core.engine import MetalCore
from wrale.metal.core.store import DeviceStore
from wrale.metal.diag import DiagnosticsService
from wrale.metal.hw.base import Board, SimControls
from wrale.metal.hw.registry import create_board
from wrale.shared.clock import Clock, ScaledClock, SystemClock
from wrale.shared.config import BackendName, MetalSettings
from wrale.shared.policy import ThermalPolicy
from wrale.user.simfleet.agents import Agent, AgentFactory, FleetAgents
from wrale.user.simfleet.physics_clock import PHYSICS_STEP_S, SteppedClock
from wrale.user.simfleet.plan import DEFAULT_LAYOUT, BoardSpec, Layout, plan_fleet

__all__ = ["Agent", "AgentFactory", "FleetAgents", "FleetState", "SimDevice", "SimFleet"]

log = logging.getLogger(__name__)

LOAD_UPDATE_S = 10.0  # how often (real seconds) the load patterns move the boards' loads
SLICES = 10  # the sampling interval is cut in this many slots, each ticking 1/SLICES boards
REBOOT_S = 15.0  # how long (real seconds) a simulated board takes to come back
EVENT_RETENTION = 1000  # per simulated board: enough for the demo, small on disk
FREEZE_AFTER_S = 20.0  # after the ramp: the agents' sessions are up (see ``run``)
FREEZE_EVERY_S = 2.0  # until then, what the connecting agents made is frozen this often


@dataclass(eq=False)
class SimDevice:
    """One simulated board and its device-side stack."""

    spec: BoardSpec
    state_dir: Path
    board: Board
    core: MetalCore
    metal: MetalClient
    store: DeviceStore
    agent: Agent | None = None
    edge_store: EdgeStore | None = None
    pinned_load: float | None = None
    last_load: float | None = None
    powered: bool = True  # False while shut down or rebooting: no sampling, no agent
    reboot: bool = False  # the agent was halted for a reboot (else: a shutdown)
    halt: asyncio.Event = field(default_factory=asyncio.Event)  # stops this board's agent
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def sim(self) -> SimControls:
        assert self.board.sim is not None  # built with the sim backend
        return self.board.sim


@dataclass(frozen=True, slots=True)
class FleetState:
    """What ``STATE/fleet.json`` keeps so a re-run is the same fleet."""

    prefix: str
    seed: int

    @classmethod
    def load_or_create(cls, state_dir: Path, prefix: str | None, seed: int | None) -> FleetState:
        path = state_dir / "fleet.json"
        saved: dict[str, Any] = {}
        if path.exists():
            saved = json.loads(path.read_text())
        state = cls(
            prefix=prefix or saved.get("prefix") or f"sim-{secrets.token_hex(2)}",
            seed=seed if seed is not None else int(saved.get("seed", 0)),
        )
        if saved != {"prefix": state.prefix, "seed": state.seed}:
            state_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"prefix": state.prefix, "seed": state.seed}) + "\n")
        return state


class SimFleet(FleetAgents):
    """Simulated boards in one process; ``start`` builds them, ``run`` runs them until stopped."""

    def __init__(
        self,
        specs: Sequence[BoardSpec],
        state_dir: Path,
        *,
        speed: float = 1.0,
        sample_interval_s: float = 1.0,
        clock: Clock | None = None,
        board_clock: Clock | None = None,
        noise: bool = True,
        reboot_s: float = REBOOT_S,
    ) -> None:
        self.specs = list(specs)
        self.reboot_s = reboot_s
        self.state_dir = state_dir
        self.speed = speed
        self.sample_interval_s = sample_interval_s
        self.clock: Clock = clock or SystemClock()
        if board_clock is None:
            board_clock = self.clock if speed == 1.0 else ScaledClock(speed, self.clock)
            if clock is None:  # real time: one physics step per sampling step, not per read
                board_clock = SteppedClock(board_clock, PHYSICS_STEP_S * speed)
        self.board_clock: Clock = board_clock
        self.noise = noise
        self.devices: dict[str, SimDevice] = {}
        self._started_at = self.clock.monotonic()
        self._factory: AgentFactory | None = None

    @classmethod
    def planned(
        cls,
        n: int,
        state_dir: Path,
        *,
        prefix: str | None = None,
        seed: int | None = None,
        layout: Layout = DEFAULT_LAYOUT,
        **kw: Any,
    ) -> SimFleet:
        """A fleet of ``n`` boards laid out by ``plan_fleet``, remembered in ``state_dir``."""
        state = FleetState.load_or_create(state_dir, prefix, seed)
        specs = plan_fleet(n, prefix=state.prefix, layout=layout, seed=state.seed)
        return cls(specs, state_dir, **kw)

    # ------------------------------------------------------------------ FleetControls

    def sim_controls(self, name: str) -> SimControls | None:
        dev = self.devices.get(name)
        return dev.sim if dev is not None else None

    def pin_load(self, name: str, percent: float | None) -> None:
        """Hold a board's load at ``percent`` (None: back to its load pattern)."""
        dev = self.devices[name]
        dev.pinned_load = percent
        self._drive_load(dev, self._pattern_time())

    # ------------------------------------------------------------------ lifecycle

    def board_dir(self, spec: BoardSpec) -> Path:
        return self.state_dir / "boards" / spec.name

    async def start(self) -> None:
        """Build every board and take its first sample (idempotent)."""
        for spec in self.specs:
            if spec.name not in self.devices:
                self.devices[spec.name] = await self._build(spec)
        self._started_at = self.clock.monotonic()

    async def _build(self, spec: BoardSpec) -> SimDevice:
        state_dir = self.board_dir(spec)
        state_dir.mkdir(parents=True, exist_ok=True)
        settings = MetalSettings(
            backend=BackendName.SIM,
            device_name=spec.name,
            sim=spec.sim_settings(noise=self.noise),
            sample_interval_s=self.sample_interval_s,
        )
        board = create_board(settings, self.board_clock)
        store = DeviceStore(state_dir / "metald.db", event_retention=EVENT_RETENTION)
        core, metal = await self._boot(spec, board, store)
        return SimDevice(spec, state_dir, board, core, metal, store)

    async def _boot(
        self, spec: BoardSpec, board: Board, store: DeviceStore
    ) -> tuple[MetalCore, MetalClient]:
        """A fresh metal core on the board (what metald is after a start or a reboot)."""
        core = MetalCore(
            board,
            store=store,
            clock=self.clock,
            thermal=ThermalPolicy(profile=spec.hardware.fan_profile),
            sample_interval_s=self.sample_interval_s,
            device_name=spec.name,
        )
        await core.start()
        return core, InProcessMetalClient(core, DiagnosticsService(core))

    async def attach_agents(self, factory: AgentFactory) -> int:
        """Give each board the agent ``factory`` builds; returns how many got one."""
        self._factory = factory  # a rebooted board gets a new agent from it
        n = 0
        for dev in self.devices.values():
            if dev.agent is None:
                dev.agent = await factory(dev)
            n += dev.agent is not None
        return n

    async def run(self, stop: asyncio.Event, *, ramp_s: float = 0.0) -> None:
        """Run every board's sampler and agent, and the load patterns, until ``stop``.

        ``ramp_s`` spreads the agents' first connection over that many seconds, as boards
        powered up rack by rack would (0: all at once, a fleet coming back together)."""
        await self.start()
        # Thousands of long-lived objects per board: a full (generation 2) collection
        # scanning them all stops the loop (every command in flight waits; 0.2-1.3 s seen
        # at 300 boards). Frozen, they are left out of the collector's scans (still freed
        # by reference counting); measured at 300 boards: the longest pause 196 → 19 ms.
        # Again once the agents are connected: their sessions are long-lived too. Until
        # then every FREEZE_EVERY_S, after collecting only the young generations: the
        # sessions of a thousand agents connecting made the automatic full collections
        # pause every board at once for 250-280 ms (commands answered that much later).
        _freeze_heap()
        refreeze = asyncio.create_task(_refreeze(ramp_s + FREEZE_AFTER_S))
        tasks = [
            asyncio.create_task(self._run_samplers(stop)),
            asyncio.create_task(self._run_loads(stop)),
        ]
        with_agents = [d for d in self.devices.values() if d.agent is not None]
        for i, dev in enumerate(with_agents):
            delay = ramp_s * i / len(with_agents)
            dev.tasks.append(asyncio.create_task(self._run_agent(dev, stop, delay)))
        try:
            await stop.wait()
        finally:
            refreeze.cancel()
            stop.set()
            tasks += [t for dev in self.devices.values() for t in dev.tasks]
            _, pending = await asyncio.wait(tasks, timeout=15)
            for t in pending:
                t.cancel()
            for t in pending:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            for dev in self.devices.values():
                dev.tasks.clear()

    async def _run_samplers(self, stop: asyncio.Event) -> None:
        """Every board's ``MetalCore.tick`` once per sampling interval, from one task.

        The same step ``MetalCore.run`` takes for one board, scheduled for the fleet: one
        timer instead of one per board halves the CPU the samplers cost (measured: 0.20 vs
        0.45 ms per board-second). The boards are spread over ``SLICES`` slots of the
        interval, as real boards never tick in step; a late slot is skipped, never burst.
        """
        devices = list(self.devices.values())
        slices = [devices[k::SLICES] for k in range(SLICES)]
        step = self.sample_interval_s / SLICES
        next_at = self.clock.monotonic()
        while not stop.is_set():
            for group in slices:
                next_at += step
                delay = next_at - self.clock.monotonic()
                if delay < -self.sample_interval_s:  # fell behind: skip, never burst
                    next_at = self.clock.monotonic()
                    delay = 0.0
                await self.clock.sleep(max(delay, 0.0))
                if stop.is_set():
                    return
                for dev in group:
                    if not dev.powered:
                        continue
                    try:
                        await dev.core.tick()
                    except Exception:
                        log.exception("%s: sampling step failed; the next one will retry", dev.name)

    async def _run_agent(self, dev: SimDevice, stop: asyncio.Event, delay_s: float = 0.0) -> None:
        """Run the board's agent (after ``delay_s``); after a simulated reboot, boot the
        board and run a new one; after a simulated shutdown the board stays off (until the
        fleet restarts)."""
        if delay_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay_s)
        while dev.agent is not None and not stop.is_set():
            dev.halt = asyncio.Event()
            relay = asyncio.create_task(_relay(stop, dev.halt))
            try:
                await dev.agent.run(dev.halt)
            except Exception:
                log.exception("the agent of %s stopped on an error", dev.name)
                return
            finally:
                relay.cancel()
            if stop.is_set() or not dev.reboot:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.reboot_s)
            if stop.is_set():
                return
            await self._reboot(dev)

    async def _reboot(self, dev: SimDevice) -> None:
        if dev.edge_store is not None:
            dev.edge_store.close()
            dev.edge_store = None
        dev.core, dev.metal = await self._boot(dev.spec, dev.board, dev.store)
        dev.agent = await self._factory(dev) if self._factory is not None else None
        dev.powered, dev.reboot = True, False

    async def _run_loads(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            t = self._pattern_time()
            for dev in self.devices.values():
                self._drive_load(dev, t)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), LOAD_UPDATE_S)

    def _pattern_time(self) -> float:
        """Seconds of simulated time since the start (load patterns follow the physics)."""
        return (self.clock.monotonic() - self._started_at) * self.speed

    def _drive_load(self, dev: SimDevice, t: float) -> None:
        want = dev.pinned_load if dev.pinned_load is not None else dev.spec.load.at(t)
        if dev.last_load is not None and dev.pinned_load is None:
            # Someone else (a ``sim_load`` command) set the load since: leave it to them.
            now = float(dev.sim.status()["load_pct"])
            if abs(now - dev.last_load) > 0.05:
                return
        if want != dev.last_load:
            dev.sim.set_load(want)
            dev.last_load = want

    async def close(self) -> None:
        """Release every board's store (after ``run`` has returned)."""
        for dev in self.devices.values():
            if dev.edge_store is not None:
                dev.edge_store.close()
            await dev.metal.aclose()
            dev.board.close()
            dev.store.close()

    # ------------------------------------------------------------------ reading

    def stats(self) -> dict[str, Any]:
        agents = [d.agent for d in self.devices.values() if d.agent is not None]
        return {
            "boards": len(self.devices),
            "agents": len(agents),
            "connected": sum(a.connected for a in agents),
            "uptime_s": round(self.clock.monotonic() - self._started_at, 1),
        }


def _freeze_heap() -> None:
    """Collect, then leave every object alive now out of the cyclic collector's scans."""
    gc.collect()
    gc.freeze()


async def _refreeze(seconds: float) -> None:
    """Every ``FREEZE_EVERY_S`` for ``seconds``: collect the young generations (a few ms),
    then freeze what lives, so no full collection has a fleet's new objects to scan (what
    was garbage in the oldest generation then is kept: bounded, these seconds only); then
    once more after a full collection."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        await asyncio.sleep(min(FREEZE_EVERY_S, left))
        gc.collect(1)
        gc.freeze()
    _freeze_heap()


async def _relay(stop: asyncio.Event, halt: asyncio.Event) -> None:
    await stop.wait()
    halt.set()
