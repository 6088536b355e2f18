"""The ``sim_load`` jobs of a simulated board: their summed load, each bounded by its
quota and at most 100 % in all, set as the board's job load through metald's sim API
(on top of the background load the simulated fleet drives), and their CPU seconds.
Only a board whose metald runs the ``sim`` backend takes them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from wrale.fleet.edge.jobspec import SimLoadWork, clip
from wrale.fleet.edge.jobstate import Placement
from wrale.metal.core.ports import MetalClient
from wrale.shared.errors import NotFoundError, WraleError

log = logging.getLogger("wrale.fleet.edge.jobs")


class NotSimulatedError(Exception):
    """This board's metald has no simulator (the message says which backend it runs)."""


def wanted_pct(pl: Placement) -> float:
    """The load a ``sim_load`` placement asks for, bounded by its ``cpu_quota_pct``."""
    work = pl.work
    pct = work.cpu_pct if isinstance(work, SimLoadWork) else 0.0
    return pct if pl.quota is None else min(pct, pl.quota)


def account(pl: Placement, now: float) -> bool:
    """Count a running placement's CPU seconds up to ``now`` (monotonic) at the share of
    the load it has; returns whether they grew."""
    grew = False
    if pl.state == "running" and pl.sim_since is not None and now > pl.sim_since:
        pl.cpu_s += pl.sim_pct / 100.0 * (now - pl.sim_since)
        grew = pl.sim_pct > 0
    pl.sim_since = now
    return grew


class SimJobLoad:
    """The job load this agent set on its simulated board."""

    def __init__(self, metal: MetalClient) -> None:
        self.metal = metal
        self.simulated: bool | None = None  # None: metald did not say yet
        self.backend = "unknown"
        self.applied: float | None = None  # None: not set by this agent yet
        self._failing = False

    def idle(self, running: Sequence[Placement]) -> bool:
        """Nothing to do: no sim_load runs and the board has none of ours (or no sim)."""
        return not running and (self.applied == 0.0 or self.simulated is False)

    async def follow(self, running: Sequence[Placement], now: float) -> bool | str:
        """Bring the board's job load to ``running`` (the active sim_load placements):
        ``True`` once it is set (each then has its share), ``False`` to try again later,
        or why this board refuses them."""
        if self.idle(running):
            return True
        if not running:
            await self.settle()
            return True
        try:
            return await self.apply(running, now)
        except NotSimulatedError as exc:
            return str(exc)

    async def settle(self) -> None:
        """With no sim_load running: take off a job load an earlier agent left on the
        board (it crashed while metald ran on). Only reads metald when there is none, so
        a board without jobs sees no change (no extra reading, nothing on a real board)."""
        try:
            status = await self.metal.sim_status()
        except NotFoundError:  # no simulator here: nothing to take off
            self.applied = 0.0
            return
        except WraleError:
            return  # asked again at the next step
        self.simulated = True
        if status.get("job_load_pct"):
            try:
                await self.metal.sim_set_job_load(0.0)
            except WraleError:
                return
        self.applied = 0.0

    async def apply(self, running: Sequence[Placement], now: float) -> bool:
        """Set the board's job load for ``running`` (the active sim_load placements) and
        give each its share; ``False`` when metald could not be asked (try again later).
        ``NotSimulatedError`` when the board is not simulated."""
        if self.simulated is None:
            try:
                health = await self.metal.health()
            except WraleError:
                return False
            self.backend = str(health.get("backend"))
            self.simulated = self.backend == "sim"
        if not self.simulated:
            raise NotSimulatedError(
                clip(f"sim_load runs only on a simulated board (this one is {self.backend})")
            )
        wants = {pl: wanted_pct(pl) for pl in running}
        asked = sum(wants.values())
        total = min(100.0, asked)
        if total != self.applied:
            try:
                await self.metal.sim_set_job_load(total)
            except WraleError as exc:
                if not self._failing:
                    log.warning("cannot set the simulated job load: %s", exc.message)
                    self._failing = True
                return False
            self._failing = False
            self.applied = total
        for pl, want in wants.items():
            account(pl, now)
            pl.sim_pct = want * (total / asked) if asked > 0 else 0.0
        return True

    async def clear(self) -> None:
        """Take this agent's job load off the board (best effort: the agent stops)."""
        if self.applied:
            try:
                await self.metal.sim_set_job_load(0.0)
            except WraleError:
                return
            self.applied = 0.0
