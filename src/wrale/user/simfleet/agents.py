"""The boards' agents in ``SimFleet``: credentials, enrollment with the central server, the
edge agents built from them and the effect of their power commands. A mixin of ``SimFleet``,
which owns the boards and runs them; no loops here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from wrale.fleet.edge.agent import EdgeAgent
from wrale.fleet.edge.commands import InProcessPower
from wrale.fleet.edge.credentials import Credentials, enroll
from wrale.fleet.edge.settings import CREDENTIALS_FILE, EdgeSettings
from wrale.fleet.edge.store import EdgeStore
from wrale.fleet.edge.wiring import make_dialer
from wrale.shared.clock import Clock
from wrale.shared.config import load_settings
from wrale.shared.errors import ConfigError, WraleError

if TYPE_CHECKING:
    from wrale.user.simfleet.fleet import SimDevice

log = logging.getLogger("wrale.user.simfleet.fleet")  # one logger for all the fleet's parts


class Agent(Protocol):
    """What the fleet needs of an edge agent (``EdgeAgent``)."""

    @property
    def connected(self) -> bool: ...

    async def run(self, stop: asyncio.Event) -> None: ...

    def stats(self) -> dict[str, Any]: ...


AgentFactory = Callable[["SimDevice"], Awaitable[Agent | None]]
"""Builds the agent of one board (None: this board runs without one, e.g. not enrolled)."""


class FleetAgents:
    """Credentials, enrollment and edge agents of the boards (see ``SimFleet``)."""

    devices: dict[str, SimDevice]
    clock: Clock

    # ------------------------------------------------------------------ agents

    def edge_agents(
        self,
        central_url: str,
        *,
        insecure: bool = False,
        ca_file: Path | None = None,
        mqtt_url: str | None = None,
        **settings: Any,
    ) -> AgentFactory:
        """An ``AgentFactory`` of edge agents dialing ``central_url`` (or the MQTT broker at
        ``mqtt_url``) with each board's credential; boards without one get no agent.

        ``settings`` override ``EdgeSettings`` fields (e.g. ``heartbeat_s``), which override
        ``WRALE_EDGE_*`` variables. The outboxes
        commit with ``synchronous=NORMAL``: a simulated board has no power to lose, and WAL
        still keeps every commit across a crash of this process. Such a commit takes well
        under a millisecond, so the agents call their stores on the event loop
        (``store_inline``): a thread hop per call for a thousand agents cost more than the
        calls (1,000 boards: command round trip p99 5.5 s → 0.8 s)."""

        async def make(dev: SimDevice) -> Agent | None:
            cred = self.credentials(dev)
            if cred is None:
                return None
            cfg = load_settings(  # WRALE_EDGE_* tune every board's agent (tests, benches)
                EdgeSettings,
                flags={
                    "store_inline": True,
                    "central_url": central_url,
                    "state_dir": dev.state_dir,
                    "insecure": insecure,
                    "ca_file": ca_file,
                    "mqtt_url": mqtt_url,
                    **settings,
                },
            )
            store = await asyncio.to_thread(
                EdgeStore,
                cfg.store_path(),
                max_rows=cfg.outbox_max_rows,
                max_age_s=cfg.outbox_max_age_s,
                synchronous="NORMAL",
            )
            dialer = make_dialer(cfg, cred)
            dev.edge_store = store
            power = InProcessPower(
                self.clock,
                on_reboot=partial(self._power_off, dev, reboot=True),
                on_shutdown=partial(self._power_off, dev, reboot=False),
            )
            return EdgeAgent(
                cfg,
                dev.metal,
                store,
                dialer,
                clock=self.clock,
                power=power,
                device_id=cred.device_id,
            )

        return make

    def _power_off(self, dev: SimDevice, *, reboot: bool) -> None:
        """A ``reboot`` / ``shutdown`` command's effect: the board stops sampling and its
        agent ends its session (the central server sees it go offline)."""
        log.warning("%s: simulated %s", dev.name, "reboot" if reboot else "shutdown")
        dev.powered = False
        dev.reboot = reboot
        dev.halt.set()

    # ------------------------------------------------------------------ enrollment

    def unenrolled(self) -> list[SimDevice]:
        return [d for d in self.devices.values() if self.credentials(d) is None]

    def credentials(self, dev: SimDevice) -> Credentials | None:
        path = dev.state_dir / CREDENTIALS_FILE
        return Credentials.load(path) if path.exists() else None

    async def enroll(
        self,
        central_url: str,
        token: str | None,
        *,
        insecure: bool = False,
        ca_file: Path | None = None,
        concurrency: int = 8,
        on_error: Callable[[SimDevice, Exception], None] | None = None,
    ) -> int:
        """Enroll every board that has no credential yet (``token`` may be None when none
        needs one); returns how many were enrolled now. A board that cannot enroll is
        reported to ``on_error`` (or logged) and stays without an agent."""
        todo = self.unenrolled()
        if not todo:
            return 0
        if token is None:
            raise ConfigError(
                f"{len(todo)} simulated board(s) are not enrolled yet: give an enrollment token"
            )
        gate = asyncio.Semaphore(concurrency)

        async def one(dev: SimDevice) -> bool:
            spec = dev.spec
            async with gate:
                try:
                    cred = await enroll(
                        central_url,
                        token,
                        name=spec.name,
                        model=spec.hardware.model,
                        hardware_profile=spec.hardware.key,
                        tags=list(spec.tags),
                        capabilities=list(spec.hardware.capabilities),
                        insecure=insecure,
                        ca_file=ca_file,
                    )
                except (WraleError, OSError) as exc:
                    if on_error is not None:
                        on_error(dev, exc)
                    else:
                        log.warning("%s could not enroll: %s", dev.name, exc)
                    return False
            await asyncio.to_thread(cred.save, dev.state_dir / CREDENTIALS_FILE)
            return True

        results = await asyncio.gather(*(one(d) for d in todo))
        return sum(results)
