"""``FrameSession``: a device session's identity and its device → server side. Frames
are processed in one transaction (alone, or grouped with other sessions' by
``group_commit``) and an ``Ack`` is sent for every batch once it is durably stored.

Opening, attaching, delivery to the device and ending are ``DeviceSession``'s
(``session``); the database work of each frame is ``ingest``'s.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.channel import alerts, events, ingest
from wrale.fleet.brain.channel.alerts import BusOut, Effect
from wrale.fleet.brain.channel.checks import SessionEndedError, goodbye, held_goodbye
from wrale.fleet.brain.channel.context import ChannelContext, Send
from wrale.fleet.brain.channel.events import clean_text, strip_nul
from wrale.fleet.brain.channel.ingest import valid_points
from wrale.fleet.brain.channel.limits import TokenBucket, reported_problem
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.services import commands, job_placement, registry, twin
from wrale.fleet.brain.services.job_boards import SAFE_MODE
from wrale.fleet.sync.protocol import (
    Ack,
    CommandResult,
    EventsBatch,
    Goodbye,
    Message,
    ProtocolError,
    Reported,
    Status,
    TelemetryBatch,
)
from wrale.shared.errors import WraleError

log = logging.getLogger("wrale.central.channel")


def urgent(msg: Message) -> bool:
    """A frame an operator waits for (a command's result): it takes an urgent writer turn,
    and the transports handle it apart from, and ahead of, the device's telemetry."""
    return isinstance(msg, CommandResult)


class FrameSession:
    """A device session's identity, send side and device → server frames (the base of
    ``DeviceSession``). ``send`` delivers a message to the device; the session serialises
    its calls. Not thread-safe; one event loop."""

    def __init__(self, ctx: ChannelContext, send: Send, *, transport: str = "ws") -> None:
        self.ctx = ctx
        self.send = send
        self.transport = transport
        self.id = ""
        self.device_id = ""
        self.tenant_id = ""
        self.device_name = ""
        self.mode = "normal"
        self._opened = False
        self._closed = False
        self._last_seen_written = -math.inf
        self._mode_written = ""
        self._send_lock = asyncio.Lock()
        self._dropped_points_logged = False
        settings = ctx.settings
        self.bucket = TokenBucket(settings.channel_frame_rate, settings.channel_frame_burst)

    def admit(self, msg: Message) -> bool:
        """Whether a frame is within the session's rate (else: dropped and counted; a
        dropped batch is resent by the agent, which sees no Ack for it)."""
        if self.bucket.take():
            return True
        self.ctx.counters.inc("rate_limited_frames", self.transport)
        if self.ctx.log_gate.ok(f"rate:{self.device_id}"):
            log.warning("device %s: frames over the rate limit dropped", self.device_id)
        return False

    @property
    def open_(self) -> bool:
        return self._opened and not self._closed

    async def emit(self, msg: Message) -> None:
        async with self._send_lock:
            await self.send(msg)

    async def handle(self, msgs: Sequence[Message]) -> None:
        """Process frames of this session in one transaction, then send an ``Ack`` for
        every batch (what is durably stored). ``ProtocolError`` for a message that has no
        place in a session; ``SessionEndedError`` when the device may not continue.

        If the group fails on a domain error, each frame is retried alone so one bad
        twin report or command result does not hold back the telemetry around it."""
        if not self.open_:
            raise ProtocolError("no open session: send hello first")
        if not msgs:
            return
        # a command's result is what an operator waits for: its own urgent turn rather
        # than a place in the next telemetry group commit
        hurry = any(urgent(m) for m in msgs)
        committer = None if hurry else self.ctx.committer()
        try:
            if committer is not None:
                acks, out, points = await committer.submit(self, msgs)
            else:
                acks, out, points = await self._handle_group(msgs, urgent=hurry)
        except WraleError as exc:
            if len(msgs) > 1:
                for m in msgs:
                    await self.handle([m])
                return
            if isinstance(msgs[0], Reported | CommandResult):
                log.warning("device %s: %s dropped: %s", self.device_id, msgs[0].T, exc.message)
                return
            raise
        self._publish(out)
        if points and self.ctx.on_points is not None:
            self.ctx.on_points(points)
        for ack in acks:
            await self.emit(ack)

    async def _handle_group(
        self, msgs: Sequence[Message], *, urgent: bool = False
    ) -> tuple[list[Ack], BusOut, int]:
        async with self.ctx.db.serial_session(urgent=urgent) as s:
            acks, out, points, held = await self._group_in(s, msgs, self.ctx.clock())
            await ingest.write_touches(s)
        if held is not None:
            self._publish(out)
            raise SessionEndedError(held)
        return acks, out, points

    async def _group_in(
        self, s: AsyncSession, msgs: Sequence[Message], now: float
    ) -> tuple[list[Ack], BusOut, int, Goodbye | None]:
        """The frames' work inside the caller's transaction (nothing is sent); the caller
        writes the boards' ``last_seen`` (``ingest.write_touches``) before it commits."""
        acks: list[Ack] = []
        out: BusOut = []
        points = 0
        device = await s.get(Device, self.device_id)
        if device is None:
            raise SessionEndedError(
                goodbye("revoked", "the device was deleted", retry=False, session=self.id)
            )
        for m in msgs:
            if isinstance(m, TelemetryBatch):
                ack, stored = await self._telemetry(s, device, m, now, out)
                acks.append(ack)
                points += stored
            elif isinstance(m, EventsBatch):
                acks.append(await self._events(s, device, m, now, out))
            elif isinstance(m, Reported):
                problem = reported_problem(m.doc, m.rejected)
                if problem is not None:  # dropped like an unstorable command result
                    self.ctx.counters.inc("refused_reported", self.transport)
                    if self.ctx.log_gate.ok(f"reported:{self.device_id}"):
                        log.warning("device %s: reported dropped: %s", self.device_id, problem)
                    continue
                await twin.record_reported(
                    s,
                    device,
                    m.version,
                    strip_nul(m.doc),
                    m.applied_desired_version,
                    strip_nul(m.rejected),
                    now,
                    self.ctx.bus,
                )
            elif isinstance(m, CommandResult):
                reason, result = strip_nul(m.reason), strip_nul(m.result)
                await commands.record_result(
                    s, device, m.id, m.status, reason, result, now, self.ctx.bus
                )
            elif isinstance(m, Status):
                self.mode = clean_text(m.mode, 16)
                self.ctx.boards.status(self.device_id, self.id, m.outbox, m.dropped)
                out.append(
                    (
                        device.tenant_id,
                        "device.live",
                        ingest.live_view(self.device_id, self.device_name, m),
                    )
                )
            else:
                raise ProtocolError(f"a {m.T!r} frame has no place in an open session")
        await self._touch(s, device, now, out)
        held = await held_goodbye(s, device, self.id)
        return acks, out, points, held

    def _state(self) -> tuple[str, float, str]:
        return self.mode, self._last_seen_written, self._mode_written

    def _restore(self, state: tuple[str, float, str]) -> None:
        self.mode, self._last_seen_written, self._mode_written = state

    async def _telemetry(
        self, s: AsyncSession, device: Device, m: TelemetryBatch, now: float, out: BusOut
    ) -> tuple[Ack, int]:
        pts, r = ingest.prestored(s, device.id, m) or (valid_points(m.points, now), None)
        if len(pts) != len(m.points):
            self.ctx.counters.inc("refused_points", self.transport, len(m.points) - len(pts))
        if len(pts) != len(m.points) and not self._dropped_points_logged:
            self._dropped_points_logged = True
            log.warning(
                "device %s: dropped %d invalid telemetry points of batch %d (bad metric name, "
                "timestamp or a value outside physical bounds); logged once per session",
                self.device_id,
                len(m.points) - len(pts),
                m.seq,
            )
        ack, stored = await ingest.store_telemetry(s, device, m, pts, now, out, self.id, r)
        if stored:
            self.ctx.boards.lag(now - max(ts for _, ts, _ in pts))
        return ack, stored

    async def _events(
        self, s: AsyncSession, device: Device, m: EventsBatch, now: float, out: BusOut
    ) -> Ack:
        result, rows = await events.store_batch(s, device, m.seq, m.prev, m.events, now)
        clamped = sum(1 for row in rows if row["data"].get("device_ts_refused") is True)
        self.ctx.counters.inc("refused_events", self.transport, clamped)
        await ingest.event_effects(s, device, rows, now, out)
        return Ack(stream="events", seq=result.last, gap=result.gap, session=self.id)

    async def _touch(self, s: AsyncSession, device: Device, now: float, out: BusOut) -> None:
        """``last_seen_at`` at most every few seconds (written with the transaction's other
        boards': ``ingest.touch``); back online if the offline job had
        given up on a device that is still talking; a board entering SAFE mode releases
        its job placements."""
        back = device.status in ("offline", "unknown", "error")
        due = now - self._last_seen_written >= self.ctx.last_seen_every_s
        mode_changed = self.mode != self._mode_written
        if not (back or due or mode_changed):
            return
        self._last_seen_written, self._mode_written = now, self.mode
        if mode_changed and self.mode == SAFE_MODE:
            why = f"{device.name} entered SAFE mode"
            await job_placement.release_board(s, device, why, now, self.ctx.bus)
        ingest.touch(s, device, self.id, now, self.mode)
        if back:
            await registry.set_status(s, device, "online", "heard from again", self.ctx.bus)
            await alerts.apply(
                s, device, Effect("clear", alerts.OFFLINE, message="back online"), now, out
            )

    def _publish(self, out: BusOut) -> None:
        for tenant_id, kind, data in out:
            self.ctx.bus.publish(tenant_id, kind, data)
