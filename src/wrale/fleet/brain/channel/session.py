"""``DeviceSession``: the server end of one device's channel, whatever carries the frames.

A transport (the WebSocket route, the MQTT bridge) decodes frames and hands them over;
the session answers through the ``send`` callable it was given. It keeps no state another
replica needs: everything lives in the database. The device → server side is its base
``FrameSession`` (``frames``); the rows' database work is ``session_rows``'s and what the
sessions of a process share is ``ChannelContext`` (``context``).

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
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from wrale import __version__
from wrale.fleet.brain.channel import session_rows
from wrale.fleet.brain.channel.alerts import BusOut
from wrale.fleet.brain.channel.checks import (
    SessionEndedError,
    check_sessions,
    goodbye,
    held_goodbye,
)
from wrale.fleet.brain.channel.context import ChannelContext, Send
from wrale.fleet.brain.channel.events import clean_text
from wrale.fleet.brain.channel.frames import FrameSession
from wrale.fleet.brain.channel.ingest import telemetry_summary, valid_points
from wrale.fleet.brain.db import DatabaseBusyError
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.channel import ChannelSession
from wrale.fleet.brain.services import commands, twin
from wrale.fleet.sync.protocol import (
    Command,
    Desired,
    Goodbye,
    Hello,
    Message,
    ProtocolError,
    Welcome,
)

__all__ = [  # re-exported: transports import everything from here
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
T = TypeVar("T")

SEND_TIMEOUT_S = 10.0  # a Goodbye that cannot be sent in this long is given up


class DeviceSession(FrameSession):
    """One device's session on one transport: opened (or attached), fed frames
    (``FrameSession``), pushed what the device should have, ended. ``send`` delivers a
    message to the device; the session serialises its calls. Not thread-safe; one event
    loop."""

    def __init__(self, ctx: ChannelContext, send: Send, *, transport: str = "ws") -> None:
        super().__init__(ctx, send, transport=transport)
        self.desired_sent = 0
        self.goodbye: Goodbye | None = None
        self.ended = False  # the server ended the session (a flag: no Event a board)
        self.on_end: Callable[[], None] | None = None  # the transport's: close the link
        self._deliver_lock = asyncio.Lock()
        self._pusher: asyncio.Task[None] | None = None  # only while there is work
        self._wanted: set[str] = set()
        self._desired_wanted = 0.0  # the newest desired version asked for (inf: any)
        self._first_done = False  # the first delivery's document was composed (batched)

    def __repr__(self) -> str:
        return f"DeviceSession({self.id or '-'}, device={self.device_id or '-'})"

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
        async def job(s: AsyncSession) -> session_rows.Opened | Goodbye:
            out.clear()  # redone alone after a shared transaction failed
            return await session_rows.open_row(
                s, self.ctx, self.transport, hello, secret, remote, now, out
            )

        # in a connect storm, many opens share a transaction (one fsync, not one each)
        committer = self.ctx.committer()
        if committer is not None:
            opened = await committer.run(job, max_wait_s=self.ctx.open_max_wait_s)
        else:
            async with self.ctx.db.serial_session(max_wait_s=self.ctx.open_max_wait_s) as s:
                opened = await job(s)
        if isinstance(opened, Goodbye):
            return opened
        self._bind(
            opened.device, opened.session_id, hello.desired_version, clean_text(hello.mode, 16)
        )
        self._opened = True
        self._last_seen_written, self._mode_written = now, self.mode
        self._publish(out)
        if opened.moved:
            log.warning(
                "device %s: its acknowledged seqs %s are above what the database holds %s "
                "(restored from a backup?); those batches are lost, the streams continue",
                self.device_id,
                opened.wanted,
                opened.moved,
            )
        if opened.replaced:
            log.info("device %s: a new session replaced the previous one", self.device_id)
        return Welcome(
            device_id=self.device_id,
            server_version=__version__,
            acked=opened.acked,
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
            found = await session_rows.open_row_of(s, device_id, session_id, now)
            if found is None:
                return None
            row, device = found
            sess = cls(ctx, send, transport=transport or row.transport)
            sess._bind(device, row.id, row.desired_sent, row.mode or "normal")
        sess._opened = True
        return sess

    # ------------------------------------------------------------------ server → device

    def want(self, what: str, version: int | None = None) -> None:
        """Ask for ``desired`` and/or ``commands`` to be delivered: a pusher task runs while
        there is something wanted and ends when there is not (an idle session holds none).
        ``version``: the desired version that is new (none: compose and see)."""
        if what == "desired":
            newer = math.inf if version is None else version
            self._desired_wanted = max(self._desired_wanted, newer)
        self._wanted.add(what)
        if self._pusher is None and not self._closed:
            self._pusher = asyncio.get_running_loop().create_task(self._push())

    async def _push(self) -> None:
        try:
            while self._wanted and not self._closed:
                wanted, self._wanted = self._wanted, set()
                above, self._desired_wanted = self._desired_wanted, 0.0
                cmds = "commands" in wanted
                try:
                    # a command is what an operator waits for: an urgent writer turn; a
                    # desired document alone (a policy change reaching the whole fleet,
                    # a board's twin made at its first session) shares the next group
                    # commit, so a fleet's recompositions never queue before a command
                    await self.deliver(
                        desired="desired" in wanted,
                        cmds=cmds,
                        urgent=cmds,
                        desired_above=above,
                    )
                except ConnectionError:  # the transport is gone and ends the session
                    return
                except Exception:  # logged; what was not sent stays queued for the next try
                    log.exception("device %s: delivery failed", self.device_id)
        finally:
            self._pusher = None

    async def deliver(
        self,
        *,
        desired: bool = True,
        cmds: bool = True,
        urgent: bool = True,
        desired_above: float = math.inf,
    ) -> int:
        """Send the desired document if newer than what the device has, then its due
        commands (marked sent once handed to the transport). Returns messages sent.
        ``urgent`` (a command or change just queued): the read takes an urgent writer turn;
        otherwise (a device just connected) it shares the channel's next group commit.
        ``desired_above``: the desired document is composed only if this version is newer
        than the one sent (the event of a version this session has sent meanwhile, e.g.
        the twin made by its own first delivery, composes nothing again)."""
        async with self._deliver_lock:
            if not self.open_:
                return 0
            desired = desired and desired_above > self.desired_sent
            if not (desired or cmds):
                return 0
            stored = desired and not urgent and await self._composed_first()
            now = self.ctx.clock()

            # the desired document may be recomposed and written, and a disruptive
            # command's waiting reason too: a writer turn, not a plain read
            async def due(s: AsyncSession) -> tuple[list[Message], list[str], int]:
                return await self._due(s, desired, cmds, now, stored=stored)

            msgs, due_ids, version = await self._turn(due, urgent=urgent)
            for m in msgs:
                await self.emit(m)
            if not msgs:
                return 0
            sent_before, self.desired_sent = self.desired_sent, max(self.desired_sent, version)

            async def marks(s: AsyncSession) -> None:
                if due_ids:
                    await commands.mark_sent(s, due_ids, now, self.ctx.bus)
                if version > sent_before:
                    await s.execute(
                        update(ChannelSession)
                        .where(ChannelSession.id == self.id)
                        .values(desired_sent=version)
                    )

            await self._turn(marks, urgent=False)  # already sent: need not go first
            return len(msgs)

    async def _composed_first(self) -> bool:
        """The session's first delivery: its desired document composed in a batch with the
        other boards opening now (``FirstCompose``); True once stored, False if it must be
        composed here (not the first delivery, or the batch failed)."""
        if self._first_done:
            return False
        self._first_done = True
        try:
            await self.ctx.first_compose().compose(self.tenant_id, self.device_id)
        except Exception:  # logged by the batch; composed alone below
            return False
        return True

    async def _due(
        self, s: AsyncSession, desired: bool, cmds: bool, now: float, *, stored: bool = False
    ) -> tuple[list[Message], list[str], int]:
        """``stored``: the desired document was just composed; read it as stored."""
        msgs: list[Message] = []
        due_ids: list[str] = []
        version = self.desired_sent
        device = await s.get(Device, self.device_id)
        if device is None:
            return msgs, due_ids, version
        if desired:
            found = await twin.stored_desired(s, device.id) if stored else None
            if found is None:
                found = await twin.desired_for(s, device, self.ctx.bus)
            version, doc = found
            if version > self.desired_sent:
                msgs.append(Desired(version=version, doc=doc))
        if cmds:
            for c in await commands.due_for(s, device, now):
                due_ids.append(c.id)
                args = dict(c.args or {})
                msgs.append(Command(id=c.id, op=c.op, args=args, deadline=c.deadline))
        return msgs, due_ids, version

    async def _turn(self, job: Callable[[AsyncSession], Awaitable[T]], *, urgent: bool) -> T:
        """``job`` in a writer turn: urgent alone, else in the next group commit (SQLite)."""
        committer = None if urgent else self.ctx.committer()
        if committer is not None:
            return await committer.run(job)
        async with self.ctx.db.serial_session(urgent=urgent) as s:
            return await job(s)

    # ------------------------------------------------------------------ ending

    async def end(self, bye: Goodbye) -> None:
        """The server ends the session: say ``bye`` (best effort) and wake the transport,
        which closes the connection and then calls ``close``."""
        if self.goodbye is not None or self._closed:
            return
        self.goodbye = Goodbye(bye.code, bye.message, bye.retry, bye.session or self.id)
        with contextlib.suppress(Exception):  # the device may be gone already
            await asyncio.wait_for(self.emit(self.goodbye), SEND_TIMEOUT_S)
        self.ended = True
        if self.on_end is not None:
            self.on_end()

    async def close(self, reason: str) -> None:
        """Record the end of the session. The device goes offline now, unless a newer
        session replaced this one or the server is shutting down (the device reconnects
        to another replica; the offline job judges it if it does not)."""
        if not self._opened or self._closed:
            self._closed = True
            return
        self._closed = True
        self.ended = True
        if self._pusher is not None:
            self._pusher.cancel()
        self.ctx.boards.forget(self.device_id, self.id)
        now = self.ctx.clock()

        async def job(s: AsyncSession) -> None:
            await session_rows.close_row(s, self.ctx, self.id, self.device_id, reason, now)

        try:  # shares a group commit (SQLite): a replica's 5,000 boards do not close one by one
            await self._turn(job, urgent=False)
        except Exception:  # the connection is over either way; the offline job catches up
            log.exception(
                "device %s: could not record the end of session %s", self.device_id, self.id
            )
