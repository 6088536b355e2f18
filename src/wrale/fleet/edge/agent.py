"""EdgeAgent: the device's link to the fleet. It samples the board through ``MetalClient``,
keeps telemetry and metald's events in a durable outbox until the central server has
stored them, applies the desired twin and runs commands, and keeps working offline.

Per session: ``Hello`` (what was acknowledged, twin versions) → ``Welcome`` (what the
server stored) → the backlog oldest first, at most ``window_batches`` unacknowledged and
``drain_batches_per_s``, while ``Status`` heartbeats carry the live readings. An ack with
``gap`` (or no ack in time) resends from the last acknowledged seq (go-back-N); the server
stores a batch only once, so nothing is lost and nothing is stored twice.

Modes: NORMAL; AUTONOMOUS after ``autonomous_after_s`` without the server (back to NORMAL
at the next Welcome); SAFE by command or a ``quarantined`` Goodbye, left only by the
command ``safe_mode {on: false}``. SAFE stores desired state without applying it and runs
only safety commands.

The agent is put together from parts, one file each, over the state they share
(``agentcore``): ``link`` (the session loop), ``outflow`` (sending the outbox, go-back-N),
``twins`` (desired and reported state, with the ``runner``'s jobs), ``intake`` (readings
and metald's events into the outbox) and ``commandqueue``. This module starts their loops
and says how they are doing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from wrale.fleet.edge.agentcore import AGENT_VERSION, Json, Mode, log
from wrale.fleet.edge.commandqueue import AgentCommands
from wrale.fleet.edge.intake import AgentIntake
from wrale.fleet.edge.link import AgentLink
from wrale.fleet.edge.outflow import AgentOutflow
from wrale.fleet.edge.twins import AgentTwins
from wrale.fleet.sync.protocol import STREAMS

__all__ = ["AGENT_VERSION", "EdgeAgent", "Mode"]


class EdgeAgent(AgentLink, AgentOutflow, AgentTwins, AgentIntake, AgentCommands):
    """The agent of one device. ``await run(stop)`` until ``stop`` is set.

    ``device_id`` defaults to the one in ``settings.credentials_path()``; ``power`` to
    running the configured host commands when ``settings.power_commands`` is on, else to
    refusing reboot / shutdown.
    """

    def stats(self) -> Json:
        """Counters and state for logs, tests and benchmarks (no I/O)."""
        refused = self._refused
        return {
            "device_id": self.device_id,
            "mode": self._mode.value,
            "connected": self.connected,
            **self._counts,
            "pending_points": len(self._pending) + self._writing,
            "sampled_at": self._sampled_at,
            "outbox": {s: self.store.depth(s) for s in STREAMS},
            "dropped": {s: self.store.dropped(s) for s in STREAMS},
            "acked": {s: f.acked for s, f in self._flows.items()},
            "desired_version": self._desired.version if self._desired else 0,
            "applied_desired_version": self._applied,
            "reported_version": self._reported.version if self._reported else 0,
            "rejected": dict(self._rejected),
            "refused": None
            if refused is None
            else {"code": refused.code, "message": refused.message, "retry": refused.retry},
        }

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set; then the samples not yet in the outbox are stored
        and the link is closed. Works offline from the first second: the stored desired
        state is applied at once, whether or not the server can be reached."""
        self._started_at = self.clock.now()
        await self._load()
        self._reconcile_needed.set()
        loops: dict[str, Callable[[], Awaitable[None]]] = {
            "sampler": self._sample_loop,
            "events": self._events_loop,
            "reconcile": self._reconcile_loop,
            "commands": self._command_loop,
            "link": self._link_loop,
            "jobs": self._jobs_loop,
        }
        tasks = [asyncio.create_task(self._supervise(n, fn), name=n) for n, fn in loops.items()]
        try:
            await stop.wait()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._flush(force=True)
            conn, self._conn = self._conn, None
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
            await self._jobs.close()  # its jobs stop with the agent

    # ------------------------------------------------------------------ plumbing

    async def _supervise(self, name: str, fn: Callable[[], Awaitable[None]]) -> None:
        """Run one loop; a bug in it is logged and the loop restarted, never fatal."""
        while True:
            try:
                await fn()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("edge agent: the %s loop failed; restarting it", name)
                await self.clock.sleep(1.0)
