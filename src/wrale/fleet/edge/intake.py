"""What metald says, into the outbox: readings sampled every interval (one new reading
counted once, also across restarts; re-timed when the wall clock is set) and appended as
one row per report; metald's events forwarded one row each, resuming after the last one
stored. A part of ``EdgeAgent``; it only writes the outbox, sending is ``outflow``'s.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from wrale.fleet.edge.agentcore import AgentCore, log
from wrale.fleet.edge.clockwatch import HOLD_S, plausible, retime
from wrale.fleet.edge.telemetry import points, protocol_event
from wrale.shared.errors import WraleError

FIRST_EVENTS_BACKLOG = 100  # events a newly installed agent forwards from before its time


class AgentIntake(AgentCore):
    """The sampler and the event forwarder."""

    _last_state: dict[str, Any] | None = None  # the last sample's state (under-voltage latch)

    # ------------------------------------------------------------------ sampling

    async def _sample_loop(self) -> None:
        next_at = self.clock.monotonic()
        while True:
            interval = self._held.interval_s
            next_at += interval
            delay = next_at - self.clock.monotonic()
            if delay < -interval:  # fell behind: skip, never burst
                next_at = self.clock.monotonic()
                delay = 0.0
            await self.clock.sleep(max(delay, 0.0))
            await self._sample()
            if self.clock.monotonic() - self._last_flush >= self._held.report_interval_s:
                await self._flush()
            await self._check_autonomous()

    async def _sample(self) -> None:
        try:
            state = await self.metal.state()
        except WraleError as exc:
            if self._metal_ok:
                log.warning("metald does not answer: %s", exc.message)
                self._metal_ok = False
            return
        if not self._metal_ok:
            log.info("metald answers again")
            self._metal_ok = True
        at = state.get("updated_at")
        key = [state.get("seq"), at]
        if not isinstance(at, int | float) or key == self._sampled:
            return  # no new reading since the last sample (also across agent restarts)
        pts = points(state, self._last_state)
        self._last_state = state
        self._live = {m: v for m, _, v in pts}
        step = self._steps.observe(self.clock.now(), self.clock.monotonic())
        if step:
            log.warning(
                "the wall clock was set (%+.0f s): %d reading(s) not yet stored re-timed",
                step,
                len(self._pending),
            )
            self._pending, pts = retime(self._pending, pts, step, self.clock.now())
        if self._pending and len(self._pending) + len(pts) > self.settings.batch_max_points:
            await self._flush(force=True)  # stored with the key of the readings it holds
        if not self._pending:
            self._pending_since = self.clock.monotonic()
        self._sampled, self._sampled_at = key, float(at)
        self._pending.extend(pts)
        self._counts["samples"] += 1
        thermal = state.get("thermal")
        if isinstance(thermal, dict):
            await self._hold_fan(thermal)

    async def _flush(self, *, force: bool = False) -> None:
        """Append the samples taken since the last report as one outbox row. While the
        wall clock was never set (1970) they wait to be re-timed (``HOLD_S`` at most, one
        batch at most; ``force``: not at all)."""
        self._last_flush = self.clock.monotonic()
        if not self._pending:
            if self.store.persist_due():  # held rows unacknowledged too long: written now
                await self._io(self.store.flush)
            return
        if (
            not force
            and not plausible(self.clock.now())
            and self.clock.monotonic() - self._pending_since < HOLD_S
        ):
            return
        pts, self._pending = self._pending, []
        rows = [list(p) for p in pts]
        stored: list[bool] = []

        def append() -> None:
            self.store.append("telemetry", rows, sampled=self._sampled)
            stored.append(True)

        # Counted first: once handed over the row is stored even if we are cancelled while
        # waiting for it (``_io_whole``: the agent's stop waits for it).
        self._counts["points"] += len(pts)
        self._writing += len(pts)
        try:
            await self._io_whole(append)
        except BaseException:
            if not stored:
                self._counts["points"] -= len(pts)
                if len(self._pending) < 10 * self.settings.batch_max_points:
                    self._pending[:0] = pts  # kept for the next try (bounded)
            raise
        finally:
            self._writing -= len(pts)
        self._wake.set()

    # ------------------------------------------------------------------ metald events

    async def _events_loop(self) -> None:
        """Forward metald's events into the outbox, resuming after the last one stored."""
        failing = False
        while True:
            try:
                since = await self._events_start()
                async for e in self.metal.stream_events(since_id=since):
                    eid = e.get("id")
                    if not isinstance(eid, int) or eid <= since:
                        continue
                    body = [protocol_event(e)]
                    self._counts["events"] += 1  # counted first, like points
                    try:
                        await self._io(partial(self.store.append, "events", body, events_since=eid))
                    except Exception:
                        self._counts["events"] -= 1
                        raise
                    since = eid
                    self._wake.set()
                    at = e.get("at")
                    if (
                        e.get("type") == "METALD_STARTED"
                        and isinstance(at, int | float)
                        and at >= self._started_at
                    ):
                        self._reconcile_needed.set()  # a restarted metald forgot the twin
                    if failing:
                        log.info("metald's event stream is back")
                        failing = False
            except WraleError as exc:
                if not failing:
                    log.warning("metald's event stream failed: %s", exc.message)
                    failing = True
            await self.clock.sleep(self.settings.metal_retry_s)

    async def _events_start(self) -> int:
        since = await self._io(self.store.events_since)
        latest = await self.metal.events(limit=1)
        newest = int(latest[-1]["id"]) if latest and isinstance(latest[-1].get("id"), int) else 0
        if since is None:  # a new agent: forward the recent past, not months of it
            recent = await self.metal.events(limit=FIRST_EVENTS_BACKLOG)
            ids = [e["id"] for e in recent if isinstance(e.get("id"), int)]
            return min(ids) - 1 if ids else 0
        if newest < since:
            log.warning(
                "metald's event store was reset (newest %d < %d): following anew", newest, since
            )
            return 0
        return since
