"""Store and forward, the sending half: the outbox goes to the server oldest first, at most
``window_batches`` unacknowledged per stream and ``drain_batches_per_s``; an ack with
``gap`` (or no ack in time) resends from the last acknowledged seq (go-back-N). A part of
``EdgeAgent``; it reads the outbox but never writes rows into it.
"""

from __future__ import annotations

import asyncio

from wrale.fleet.edge.agentcore import AgentCore, Batch, Flow, log
from wrale.fleet.edge.store import Row
from wrale.fleet.sync.backoff import TokenBucket
from wrale.fleet.sync.protocol import Ack, EventsBatch, Message, TelemetryBatch
from wrale.fleet.sync.transport.base import Connection


class AgentOutflow(AgentCore):
    """The agent's sender and its ack handling (one ``Flow`` per stream and session)."""

    async def _wait(self, event: asyncio.Event, timeout_s: float | None) -> None:
        """Until ``event`` is set, or ``timeout_s`` passed (None: no timeout)."""
        if event.is_set():
            return
        if timeout_s is None:
            await event.wait()
            return
        waiter = asyncio.ensure_future(event.wait())
        sleeper = asyncio.ensure_future(self.clock.sleep(timeout_s))
        try:
            await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            sleeper.cancel()

    async def _on_ack(self, ack: Ack) -> None:
        flow = self._flows.get(ack.stream)
        if flow is None:
            return
        if ack.seq > flow.acked:
            await self._io(self.store.ack, ack.stream, ack.seq)
            flow.acked = ack.seq
            while flow.inflight and flow.inflight[0].seq <= ack.seq:
                flow.inflight.popleft()
            flow.sent_to = max(flow.sent_to, ack.seq)
        if flow.stale > 0:
            flow.stale -= 1
        elif ack.gap:
            log.info("the server misses %s after seq %d: resending from there", ack.stream, ack.seq)
            self._go_back(flow, ack.seq, answered=1)
        self._wake.set()

    def _go_back(self, flow: Flow, to: int, *, answered: int) -> None:
        """Resend everything after ``to`` (go-back-N); acks still due for the batches in
        flight are expected and their gap flags ignored."""
        flow.stale += max(0, len(flow.inflight) - answered)
        flow.inflight.clear()
        flow.acked = min(flow.acked, to)
        flow.sent_to = flow.acked
        flow.epoch += 1
        self._counts["resends"] += 1

    def _batch(self, stream: str, prev: int, rows: list[Row]) -> Message:
        seq = rows[-1].seq
        if stream == "telemetry":
            pts = [(str(p[0]), float(p[1]), float(p[2])) for r in rows for p in r.items]
            return TelemetryBatch(seq=seq, prev=prev, points=pts)
        return EventsBatch(seq=seq, prev=prev, events=[e for r in rows for e in r.items])

    async def _sender(self, conn: Connection) -> None:
        s = self.settings
        pace = TokenBucket(s.drain_batches_per_s, float(s.window_batches))
        while True:
            self._wake.clear()
            now = self.clock.monotonic()
            for flow in self._flows.values():
                if flow.inflight and now - flow.inflight[0].sent_at >= s.ack_timeout_s:
                    log.info("no ack within %g s: resending", s.ack_timeout_s)
                    self._go_back(flow, flow.acked, answered=0)
            sent = False
            for stream in ("events", "telemetry"):  # events first: they are rarer and urgent
                flow = self._flows[stream]
                if len(flow.inflight) >= s.window_batches or flow.sent_to >= self.store.head(
                    stream
                ):
                    continue  # the window is full, or nothing new was stored (no read)
                limit = s.batch_max_events if stream == "events" else s.batch_max_points
                epoch, prev = flow.epoch, flow.sent_to
                rows = await self._io(self.store.rows_after, stream, prev, limit)
                if not rows:
                    continue
                while not pace.take(self.clock.monotonic()):  # the bounded drain rate
                    await self.clock.sleep(pace.wait_s(self.clock.monotonic()))
                if flow.epoch != epoch or flow.sent_to != prev:
                    continue  # a go-back or an ack moved the stream while we paced
                await conn.send(self._batch(stream, prev, rows))
                self._counts["batches_sent"] += 1
                if flow.epoch != epoch:
                    flow.stale += 1  # abandoned while sending: its ack is expected, stale
                    continue
                flow.inflight.append(Batch(prev, rows[-1].seq, self.clock.monotonic()))
                flow.sent_to = rows[-1].seq
                sent = True
            if not sent:
                # Woken by a new row, an ack or a go-back; else at the next ack timeout.
                due = [
                    f.inflight[0].sent_at + s.ack_timeout_s
                    for f in self._flows.values()
                    if f.inflight
                ]
                timeout = max(min(due) - self.clock.monotonic(), 0.0) if due else None
                await self._wait(self._wake, timeout)
