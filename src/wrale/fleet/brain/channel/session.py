"""``DeviceSession``: the server end of one device's channel, whatever carries the frames.

A transport (the WebSocket route, the MQTT bridge) decodes frames and hands them over;
the session answers through the ``send`` callable it was given. It keeps no state another
replica needs: everything lives in the database.

Lifecycle::

    s = DeviceSession(ctx, send, transport="ws")
    first = await s.open(hello, secret, remote=ip)  # Welcome, or a Goodbye refusal
    await s.deliver()                              # desired doc + due commands (after Welcome)
    await s.handle([frame, frame, ...])            # one transaction, Acks after commit
    await s.close("disconnected")                  # offline right away (unless replaced)

Sessions are rows of ``device_sessions`` (id = the protocol's ``session``). Opening one
closes the device's other open rows (reason ``replaced``): a replica holding one of them
learns it at its next sweep (``check_sessions``) and says Goodbye ``replaced``.

MQTT and replicas: a message of a device may reach any replica (shared subscription).
The bridge opens sessions with ``open`` (the Hello carries the secret) and, for every other
message, ``DeviceSession.attach(ctx, send, device_id, session_id)`` rebuilds the device's
open session from its row (None when it was closed, replaced, revoked or the device is
held) — on this replica or another, so any replica can serve it. The bridge may cache
attached sessions and re-check them with ``check_sessions`` as the hub does. Sequence
marks are advanced atomically in the database, so two replicas handed the same batch
store it once. The broker authenticates devices on their topics; the session trusts a
message for ``device_id`` once it has an open row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from wrale import __version__
from wrale.fleet.brain.bus import EventBus
from wrale.fleet.brain.channel import alerts, events
from wrale.fleet.brain.channel.alerts import BusOut, Effect
from wrale.fleet.brain.channel.checks import (
    SessionEndedError,
    check_sessions,
    decommissioned_with,
    goodbye,
    held_goodbye,
)
from wrale.fleet.brain.channel.counters import ChannelCounters, LogGate
from wrale.fleet.brain.channel.events import clean_text, strip_nul
from wrale.fleet.brain.channel.group_commit import GroupCommitter
from wrale.fleet.brain.channel.limits import TokenBucket, reported_problem
from wrale.fleet.brain.db import Database, DatabaseBusyError
from wrale.fleet.brain.models import Device, DeviceCredential
from wrale.fleet.brain.models.base import new_id
from wrale.fleet.brain.models.channel import ChannelSession
from wrale.fleet.brain.services import commands, enrollment, registry, telemetry, twin
from wrale.fleet.brain.services.telemetry_bounds import MAX_FUTURE_S, MIN_TS, bounds_of
from wrale.fleet.sync.protocol import (
    STREAMS,
    Ack,
    Command,
    CommandResult,
    Desired,
    EventsBatch,
    Goodbye,
    Hello,
    Message,
    ProtocolError,
    Reported,
    Status,
    TelemetryBatch,
    Welcome,
)
from wrale.shared.central_settings import CentralSettings
from wrale.shared.errors import AuthError, WraleError

__all__ = [  # the checks are re-exported: transports import everything from here
    "ChannelContext",
    "DeviceSession",
    "Send",
    "SessionEndedError",
    "check_sessions",
    "goodbye",
    "held_goodbye",
    "telemetry_summary",
    "valid_points",
]

log = logging.getLogger("wrale.central.channel")

Send = Callable[[Message], Awaitable[None]]
SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{8,32}$")
SEND_TIMEOUT_S = 10.0  # a Goodbye that cannot be sent in this long is given up
# Goodbye codes after which the device is not connected any more (offline at once);
# "replaced" has a newer session and "shutdown" reconnects to another replica.
_KEEPS_STATUS = frozenset({"replaced", "shutdown"})


@dataclass
class ChannelContext:
    """What every session of a process shares: database, bus, settings, who we are."""

    db: Database
    bus: EventBus
    settings: CentralSettings
    replica: str = field(default_factory=lambda: f"replica-{new_id()[-12:]}")
    clock: Callable[[], float] = time.time
    on_points: Callable[[int], None] | None = None  # stored telemetry points (metrics)
    open_max_wait_s: float = 5.0  # a Hello that waited longer for SQLite is told to retry
    group_commit: bool | None = None  # frames of many sessions in one transaction (None: SQLite)
    counters: ChannelCounters = field(default_factory=ChannelCounters)  # refused / dropped
    log_gate: LogGate = field(default_factory=LogGate)  # one line per device per interval
    _committer: GroupCommitter | None = field(default=None, init=False, repr=False)

    def committer(self) -> GroupCommitter | None:
        """The process's group-commit queue, or None when sessions commit alone."""
        on = self.db.is_sqlite if self.group_commit is None else self.group_commit
        if not on:
            return None
        if self._committer is None or not self._committer.usable():
            self._committer = GroupCommitter(self.db)
        return self._committer

    @property
    def last_seen_every_s(self) -> float:
        """How often a connected device's ``last_seen_at`` is written (spares the DB)."""
        return min(5.0, self.settings.offline_after_s / 4)


def valid_points(
    points: Sequence[tuple[str, float, float]], now: float
) -> list[tuple[str, float, float]]:
    """The points ingestion accepts (metric name, timestamp window and the metric's physical
    bounds: ``telemetry_bounds``); the others are dropped and counted rather than refusing
    the batch (a batch that can never be stored would stall the device's outbox for ever)."""
    newest = now + MAX_FUTURE_S
    ok: list[tuple[str, float, float]] = []
    good: dict[str, tuple[float, float]] = {}
    for metric, ts, value in points:
        limits = good.get(metric)
        if limits is None:
            if not telemetry.METRIC_RE.match(metric):
                continue
            limits = good[metric] = bounds_of(metric)
        if MIN_TS <= ts <= newest and limits[0] <= value <= limits[1]:
            ok.append((metric, ts, value))
    return ok


def telemetry_summary(
    device_id: str, seq: int, points: Sequence[tuple[str, float, float]]
) -> dict[str, Any]:
    """What ``/api/v1/ws`` subscribers hear of a stored batch (as the REST upload says)."""
    newest: dict[str, tuple[float, float]] = {}
    for metric, ts, value in points:
        if metric not in newest or ts >= newest[metric][0]:
            newest[metric] = (ts, value)
    return {
        "device_id": device_id,
        "seq": seq,
        "points": len(points),
        "latest": {m: {"ts": ts, "value": v} for m, (ts, v) in sorted(newest.items())},
    }


# ----------------------------------------------------------------------------- the session


class DeviceSession:
    """One device's session on one transport. ``send`` delivers a message to the device;
    the session serialises its calls. Not thread-safe; one event loop."""

    def __init__(self, ctx: ChannelContext, send: Send, *, transport: str = "ws") -> None:
        self.ctx = ctx
        self.send = send
        self.transport = transport
        self.id = ""
        self.device_id = ""
        self.tenant_id = ""
        self.device_name = ""
        self.desired_sent = 0
        self.mode = "normal"
        self.goodbye: Goodbye | None = None
        self.ended = asyncio.Event()  # set when the server ends the session
        self._opened = False
        self._closed = False
        self._last_seen_written = -math.inf
        self._mode_written = ""
        self._send_lock = asyncio.Lock()
        self._deliver_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._wanted: set[str] = set()
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

    def __repr__(self) -> str:
        return f"DeviceSession({self.id or '-'}, device={self.device_id or '-'})"

    @property
    def open_(self) -> bool:
        return self._opened and not self._closed

    async def emit(self, msg: Message) -> None:
        async with self._send_lock:
            await self.send(msg)

    # ------------------------------------------------------------------ open

    async def open(
        self,
        hello: Hello,
        secret: str | None,
        *,
        remote: str | None = None,
        broker_authenticated: bool = False,
    ) -> Welcome | Goodbye:
        """Authenticate and open: ``Welcome`` (sent by the caller, then ``deliver``), or a
        ``Goodbye`` refusal (``unauthorized`` / ``quarantined`` / ``held``).
        ``broker_authenticated``: the MQTT broker authenticated the device on its own
        topics (no secret needed; the device must still hold a valid credential)."""
        if self._opened:
            raise ProtocolError("the session is already open")
        now = self.ctx.clock()
        if broker_authenticated:
            secret = None
        elif not secret:
            return goodbye("unauthorized", "a device credential is required", retry=False)
        out: BusOut = []
        try:
            return await self._open(hello, secret, remote, now, out)
        except DatabaseBusyError:
            log.info("device channel: %r told to come back: too busy", hello.device_id[:64])
            return goodbye("shutdown", "the server is busy; reconnect later", retry=True)

    async def _open(
        self, hello: Hello, secret: str | None, remote: str | None, now: float, out: BusOut
    ) -> Welcome | Goodbye:
        # the agent gives up on a Hello after 10 s: opening for a device that left only
        # lengthens the queue, so a Hello that waited too long is told to come back
        async with self.ctx.db.serial_session(max_wait_s=self.ctx.open_max_wait_s) as s:
            cred_id: str | None = None
            try:
                if secret is None:
                    device, cred_id = await enrollment.authenticate_broker_device(
                        s, hello.device_id
                    )
                else:
                    device = await enrollment.authenticate_device(s, hello.device_id, secret)
            except AuthError as exc:
                if secret is not None and await decommissioned_with(
                    s, hello.device_id, secret, now
                ):
                    return goodbye("held", "the device is decommissioned")
                log.info("device channel: refused %r: %s", hello.device_id[:64], exc.message)
                return goodbye("unauthorized", exc.message, retry=False)
            refusal = await held_goodbye(s, device)
            if refusal is not None:
                log.info("device channel: %s refused: %s", device.id, refusal.message)
                return refusal
            await self._lock_device(s, device.id)
            if secret is not None:
                cred_id = await s.scalar(
                    select(DeviceCredential.id).where(
                        DeviceCredential.secret_hash == enrollment.sha256(secret)
                    )
                )
            replaced = await s.execute(
                update(ChannelSession)
                .where(ChannelSession.device_id == device.id, ChannelSession.closed_at.is_(None))
                .values(closed_at=now, close_reason="replaced")
                .execution_options(synchronize_session=False)
            )
            sid = hello.session if SESSION_ID.match(hello.session or "") else new_id()
            if await s.get(ChannelSession, sid) is not None:
                sid = new_id()
            s.add(
                ChannelSession(
                    id=sid,
                    tenant_id=device.tenant_id,
                    device_id=device.id,
                    credential_id=cred_id,
                    transport=self.transport,
                    replica=self.ctx.replica if self.transport == "ws" else None,
                    remote=(remote or "")[:64] or None,
                    agent_version=clean_text(hello.agent_version, 32) or None,
                    mode=clean_text(hello.mode, 16),
                    desired_sent=hello.desired_version,
                    opened_at=now,
                    last_seen_at=now,
                    created_at=now,
                )
            )
            device.agent_version = clean_text(hello.agent_version, 32) or device.agent_version
            device.last_seen_at = now
            await registry.set_status(
                s, device, "online", f"connected ({self.transport})", self.ctx.bus
            )
            await twin.agent_connected(s, device, hello.reported_version)
            wanted = {k: v for k, v in hello.acked.items() if k in STREAMS}
            moved = await events.raise_marks(s, device, wanted, now)
            acked = await events.marks(s, device)
            await alerts.apply(
                s, device, Effect("clear", alerts.OFFLINE, message="back online"), now, out
            )
            self._bind(device, sid, hello.desired_version, clean_text(hello.mode, 16))
        self._opened = True
        self._last_seen_written, self._mode_written = now, self.mode
        self._publish(out)
        if moved:
            log.warning(
                "device %s: its acknowledged seqs %s are above what the database holds %s "
                "(restored from a backup?); those batches are lost, the streams continue",
                self.device_id,
                wanted,
                moved,
            )
        if int(getattr(replaced, "rowcount", 0) or 0):
            log.info("device %s: a new session replaced the previous one", self.device_id)
        return Welcome(
            device_id=self.device_id,
            server_version=__version__,
            acked=acked,
            heartbeat_s=self.ctx.settings.channel_heartbeat_s,
            session=self.id,
        )

    def _bind(self, device: Device, sid: str, desired_sent: int, mode: str) -> None:
        self.id = sid
        self.device_id = device.id
        self.tenant_id = device.tenant_id
        self.device_name = device.name
        self.desired_sent = desired_sent
        self.mode = mode

    @staticmethod
    async def _lock_device(s: AsyncSession, device_id: str) -> None:
        """Serialise concurrent opens of one device (a row lock on PostgreSQL; SQLite has
        one writer anyway)."""
        if s.get_bind().dialect.name == "postgresql":
            await s.execute(select(Device.id).where(Device.id == device_id).with_for_update())

    @classmethod
    async def attach(
        cls,
        ctx: ChannelContext,
        send: Send,
        device_id: str,
        session_id: str | None = None,
        *,
        transport: str = "mqtt",
    ) -> DeviceSession | None:
        """The device's open session (``session_id``, or its newest open one) rebuilt from
        its row, on any replica; None when there is none that may continue."""
        now = ctx.clock()
        async with ctx.db.serial_session() as s:
            stmt = select(ChannelSession).where(
                ChannelSession.device_id == device_id, ChannelSession.closed_at.is_(None)
            )
            if session_id:
                stmt = stmt.where(ChannelSession.id == session_id)
            row = await s.scalar(stmt.order_by(ChannelSession.opened_at.desc()).limit(1))
            if row is None or (await check_sessions(s, [row.id], now)):
                return None
            device = await s.get(Device, device_id)
            if device is None:
                return None
            sess = cls(ctx, send, transport=transport or row.transport)
            sess._bind(device, row.id, row.desired_sent, row.mode or "normal")
        sess._opened = True
        return sess

    # ------------------------------------------------------------------ server → device

    def want(self, what: str) -> None:
        """Ask the pusher (``run_pusher``) to send ``desired`` and/or ``commands``."""
        self._wanted.add(what)
        self._wake.set()

    async def run_pusher(self) -> None:
        """Deliver what ``want`` asked for, until cancelled (one per connection)."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            wanted, self._wanted = self._wanted, set()
            try:
                await self.deliver(desired="desired" in wanted, cmds="commands" in wanted)
            except (asyncio.CancelledError, ConnectionError):
                raise
            except Exception:  # logged; what was not sent stays queued for the next try
                log.exception("device %s: delivery failed", self.device_id)

    async def deliver(self, *, desired: bool = True, cmds: bool = True) -> int:
        """Send the desired document if newer than what the device has, then its due
        commands (marked sent once handed to the transport). Returns messages sent."""
        async with self._deliver_lock:
            if not self.open_:
                return 0
            now = self.ctx.clock()
            msgs: list[Message] = []
            due_ids: list[str] = []
            version = self.desired_sent
            async with self.ctx.db.serial_session() as s:
                device = await s.get(Device, self.device_id)
                if device is None:
                    return 0
                if desired:
                    version, doc = await twin.desired_for(s, device, self.ctx.bus)
                    if version > self.desired_sent:
                        msgs.append(Desired(version=version, doc=doc))
                if cmds:
                    for c in await commands.due_for(s, device, now):
                        due_ids.append(c.id)
                        args = dict(c.args or {})
                        msgs.append(Command(id=c.id, op=c.op, args=args, deadline=c.deadline))
            for m in msgs:
                await self.emit(m)
            if not msgs:
                return 0
            async with self.ctx.db.serial_session() as s:
                if due_ids:
                    await commands.mark_sent(s, due_ids, now, self.ctx.bus)
                if version > self.desired_sent:
                    self.desired_sent = version
                    await s.execute(
                        update(ChannelSession)
                        .where(ChannelSession.id == self.id)
                        .values(desired_sent=version)
                    )
            return len(msgs)

    # ------------------------------------------------------------------ device → server

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
        committer = self.ctx.committer()
        try:
            if committer is not None:
                acks, out, points = await committer.submit(self, msgs)
            else:
                acks, out, points = await self._handle_group(msgs)
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

    async def _handle_group(self, msgs: Sequence[Message]) -> tuple[list[Ack], BusOut, int]:
        async with self.ctx.db.serial_session() as s:
            acks, out, points, held = await self._group_in(s, msgs, self.ctx.clock())
        if held is not None:
            self._publish(out)
            raise SessionEndedError(held)
        return acks, out, points

    async def _group_in(
        self, s: AsyncSession, msgs: Sequence[Message], now: float
    ) -> tuple[list[Ack], BusOut, int, Goodbye | None]:
        """The frames' work inside the caller's transaction (nothing is sent)."""
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
                out.append((device.tenant_id, "device.live", self._live(m)))
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
        pts = valid_points(m.points, now)
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
        r = await telemetry.ingest_batch(s, device, m.seq, pts, now=now, prev=m.prev)
        if r.stored and pts:
            out.append(
                (device.tenant_id, "telemetry.summary", telemetry_summary(device.id, m.seq, pts))
            )
        seq = m.seq if r.stored else max(r.last_seq, 0)
        return Ack(stream="telemetry", seq=seq, gap=r.gap, session=self.id), r.points

    async def _events(
        self, s: AsyncSession, device: Device, m: EventsBatch, now: float, out: BusOut
    ) -> Ack:
        result, rows = await events.store_batch(s, device, m.seq, m.prev, m.events, now)
        clamped = sum(1 for row in rows if row["data"].get("device_ts_refused") is True)
        self.ctx.counters.inc("refused_events", self.transport, clamped)
        for row in rows:
            out.append(
                (
                    device.tenant_id,
                    "device.event",
                    {
                        "device_id": device.id,
                        "name": device.name,
                        "seq": row["seq"],
                        "ts": row["ts"],
                        "type": row["type"],
                        "severity": row["severity"],
                        "message": row["message"],
                        "data": row["data"],
                    },
                )
            )
            for effect in alerts.effects(row):
                await alerts.apply(s, device, effect, now, out)
        return Ack(stream="events", seq=result.last, gap=result.gap, session=self.id)

    def _live(self, m: Status) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "name": self.device_name,
            "ts": m.ts,
            "mode": m.mode,
            "outbox": dict(m.outbox),
            "dropped": dict(m.dropped),
            "live": dict(m.live),
        }

    async def _touch(self, s: AsyncSession, device: Device, now: float, out: BusOut) -> None:
        """``last_seen_at`` at most every few seconds; back online if the offline job had
        given up on a device that is still talking."""
        back = device.status in ("offline", "unknown", "error")
        due = now - self._last_seen_written >= self.ctx.last_seen_every_s
        if not (back or due or self.mode != self._mode_written):
            return
        self._last_seen_written, self._mode_written = now, self.mode
        device.last_seen_at = now
        await s.execute(
            update(ChannelSession)
            .where(ChannelSession.id == self.id)
            .values(last_seen_at=now, mode=self.mode[:16])
        )
        if back:
            await registry.set_status(s, device, "online", "heard from again", self.ctx.bus)
            await alerts.apply(
                s, device, Effect("clear", alerts.OFFLINE, message="back online"), now, out
            )

    def _publish(self, out: BusOut) -> None:
        for tenant_id, kind, data in out:
            self.ctx.bus.publish(tenant_id, kind, data)

    # ------------------------------------------------------------------ ending

    async def end(self, bye: Goodbye) -> None:
        """The server ends the session: say ``bye`` (best effort) and wake the transport,
        which closes the connection and then calls ``close``."""
        if self.goodbye is not None or self._closed:
            return
        self.goodbye = Goodbye(bye.code, bye.message, bye.retry, bye.session or self.id)
        with contextlib.suppress(Exception):  # the device may be gone already
            await asyncio.wait_for(self.emit(self.goodbye), SEND_TIMEOUT_S)
        self.ended.set()

    async def close(self, reason: str) -> None:
        """Record the end of the session. The device goes offline now, unless a newer
        session replaced this one or the server is shutting down (the device reconnects
        to another replica; the offline job judges it if it does not)."""
        if not self._opened or self._closed:
            self._closed = True
            return
        self._closed = True
        self.ended.set()
        now = self.ctx.clock()
        try:
            async with self.ctx.db.serial_session() as s:
                await s.execute(
                    update(ChannelSession)
                    .where(ChannelSession.id == self.id, ChannelSession.closed_at.is_(None))
                    .values(closed_at=now, close_reason=reason[:32], last_seen_at=now)
                )
                if reason in _KEEPS_STATUS:
                    return
                newer = await s.scalar(
                    select(ChannelSession.id)
                    .where(
                        ChannelSession.device_id == self.device_id,
                        ChannelSession.closed_at.is_(None),
                        ChannelSession.id != self.id,
                    )
                    .limit(1)
                )
                device = await s.get(Device, self.device_id)
                if newer is None and device is not None:
                    device.last_seen_at = now
                    await registry.set_status(
                        s, device, "offline", f"disconnected ({reason})", self.ctx.bus
                    )
        except Exception:  # the connection is over either way; the offline job catches up
            log.exception(
                "device %s: could not record the end of session %s", self.device_id, self.id
            )
