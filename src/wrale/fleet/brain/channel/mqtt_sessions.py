"""The device side of the MQTT bridge: the sessions of devices talking over the broker to
this replica — hello and goodbye, runs of messages handled in one transaction, pushes of
desired state and commands, quarantine, and the sweep that re-checks cached sessions.

The bridge (``mqtt_bridge.py``) owns the broker connection, the per-device lanes and the
workers; it hands each device's waiting messages and pushes to ``MqttSessions.serve`` and
gives it ``publish`` (one frame to one device) and ``enqueue`` (schedule a push). The
session cache is only a shortcut, re-checked against the database every ``recheck_s``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Final

from sqlalchemy import select

from wrale.fleet.brain.channel.checks import check_sessions
from wrale.fleet.brain.channel.retry import retrying
from wrale.fleet.brain.channel.session import (
    ChannelContext,
    DeviceSession,
    SessionEndedError,
    goodbye,
)
from wrale.fleet.brain.channel.sweep_view import read_sweep
from wrale.fleet.brain.models.channel import ChannelSession
from wrale.fleet.sync.protocol import Goodbye, Hello, Message, ProtocolError, Welcome
from wrale.fleet.sync.transport.mqtt import CLOSED, LOST

log = logging.getLogger("wrale.central.mqtt")

HELD_RECHECK_S: Final = 0.1  # a quarantine seen on the bus before the database shows it…
HELD_TRIES: Final = 50  # …is looked at again this often, this many times


class BridgeDownError(ConnectionError):
    """The bridge has no connection to the broker now (what was not sent stays queued)."""


@dataclass
class BridgeStats:
    received: int = 0
    published: int = 0
    groups: int = 0
    refused: int = 0
    dropped: int = 0
    reconnects: int = 0


@dataclass(slots=True)
class _Cached:
    session: DeviceSession
    checked_at: float


class MqttSessions:
    """Sessions of the devices this replica serves over MQTT."""

    def __init__(
        self,
        ctx: ChannelContext,
        publish: Callable[[str, Message], Awaitable[None]],
        enqueue: Callable[[str, str, dict[str, Any]], None],
        stats: BridgeStats,
        *,
        recheck_s: float,
        max_sessions: int,
    ) -> None:
        self.ctx = ctx
        self.publish = publish
        self.enqueue = enqueue
        self.stats = stats
        self.recheck_s = recheck_s
        self.max_sessions = max_sessions
        self._sessions: collections.OrderedDict[str, _Cached] = collections.OrderedDict()

    async def serve(
        self, device_id: str, msgs: list[Message], push: set[str], data: dict[str, Any]
    ) -> None:
        """Handle one device's waiting messages in order, then its pushes."""
        run: list[Message] = []
        for msg in msgs:
            if isinstance(msg, Hello | Goodbye):
                await self._handle_run(device_id, run)
                run = []
                if isinstance(msg, Hello):
                    await self._hello(device_id, msg)
                else:
                    await self._device_goodbye(device_id, msg)
            else:
                run.append(msg)
        await self._handle_run(device_id, run)
        if push:
            await self._pushes(device_id, push, data)

    def _sender(self, device_id: str) -> Callable[[Message], Awaitable[None]]:
        async def send(msg: Message) -> None:
            await self.publish(device_id, msg)

        return send

    # ------------------------------------------------------------------ device → server

    async def _hello(self, device_id: str, hello: Hello) -> None:
        if hello.device_id != device_id:
            log.warning(
                "MQTT: a hello for %r on the topic of %r ignored", hello.device_id, device_id
            )
            return
        self._forget(device_id)
        s = DeviceSession(self.ctx, self._sender(device_id), transport="mqtt")
        # with broker accounts the broker authenticated the device and its ACL confines it
        # to its own topics: the topic names the device and no secret travels in the hello
        by_broker = not self.ctx.settings.mqtt_hello_secret
        first = await retrying(
            lambda: s.open(hello, hello.secret, remote="mqtt", broker_authenticated=by_broker),
            "MQTT",
        )
        if isinstance(first, Goodbye):
            self.stats.refused += 1
            await self._safe_publish(device_id, replace(first, session=hello.session))
            return
        if not isinstance(first, Welcome):
            raise ProtocolError(f"the session answered hello with {first.T!r}")
        # the device matches replies to its hello's session
        await self.publish(device_id, replace(first, session=hello.session))
        self._cache(device_id, s)
        await s.deliver(urgent=False)  # shares the next group commit

    async def _device_goodbye(self, device_id: str, bye: Goodbye) -> None:
        """The device closed (``closed``) or the broker lost it (its will, ``lost``)."""
        if not bye.session:
            return
        s = await DeviceSession.attach(self.ctx, self._sender(device_id), device_id, bye.session)
        if s is None:
            return  # that session had ended already (replaced by a newer hello, say)
        self._forget(device_id)
        await s.close(bye.code if bye.code in (CLOSED, LOST) else "disconnected")

    async def _handle_run(self, device_id: str, msgs: list[Message]) -> None:
        if not msgs:
            return
        s = await self._session(device_id)
        if s is None:
            return
        self.stats.groups += 1
        try:
            await retrying(lambda: s.handle(msgs), "MQTT")
        except SessionEndedError as exc:
            await self._end(device_id, s, exc.goodbye)
        except ProtocolError as exc:
            log.info("MQTT: device %s: %s", device_id, exc)

    async def _session(self, device_id: str) -> DeviceSession | None:
        """The device's open session (cached or attached), or None after saying why."""
        now = self.ctx.clock()
        cached = self._sessions.get(device_id)
        if cached is not None:
            if now - cached.checked_at < self.recheck_s and cached.session.open_:
                self._sessions.move_to_end(device_id)
                return cached.session
            async with self.ctx.db.session() as db:
                verdict = (await check_sessions(db, [cached.session.id], now)).get(
                    cached.session.id
                )
            if verdict is None:
                cached.checked_at = now
                self._sessions.move_to_end(device_id)
                return cached.session
            self._forget(device_id)
            if verdict.code not in ("replaced", "shutdown"):
                await self._end(device_id, cached.session, verdict)
                return None
        s = await DeviceSession.attach(self.ctx, self._sender(device_id), device_id)
        if s is not None:
            self._cache(device_id, s)
            return s
        await self._no_session(device_id, now)
        return None

    async def _no_session(self, device_id: str, now: float) -> None:
        """Tell a device that talks without an open session to say hello again (through
        the session it last had: the one it listens to)."""
        async with self.ctx.db.session() as db:
            sid = await db.scalar(
                select(ChannelSession.id)
                .where(ChannelSession.device_id == device_id)
                .order_by(ChannelSession.opened_at.desc())
                .limit(1)
            )
            verdict = (await check_sessions(db, [sid], now)).get(sid) if sid else None
        self.stats.refused += 1
        if sid is None:
            log.info("MQTT: device %s talks without a session; ignored", device_id)
            return
        bye = verdict or goodbye("protocol", "no open session: send hello", session=sid)
        await self._safe_publish(device_id, bye)

    async def _end(self, device_id: str, s: DeviceSession, bye: Goodbye) -> None:
        self._forget(device_id)
        await s.end(bye)
        await s.close(bye.code)

    # ------------------------------------------------------------------ server → device

    async def _pushes(self, device_id: str, push: set[str], data: dict[str, Any]) -> None:
        if "status" in push:
            await self._held(device_id, data)
        if not push - {"status"}:
            return
        s = await self._mqtt_session(device_id)
        if s is None:
            return
        cmds = "commands" in push  # urgent: a command; a desired document alone is not
        await s.deliver(desired="desired" in push, cmds=cmds, urgent=cmds)

    async def _held(self, device_id: str, data: dict[str, Any]) -> None:
        """End the device's MQTT session once the database says it is quarantined or held.

        The event may come before its transaction commits: the Goodbye waits for the
        committed status, so the device's next hello is refused, not welcomed."""
        s = await self._mqtt_session(device_id)
        if s is None:
            return
        async with self.ctx.db.session() as db:
            verdict = (await check_sessions(db, [s.id], self.ctx.clock())).get(s.id)
        if verdict is not None:
            await self._end(device_id, s, verdict)
            return
        tries = int(data.get("_tries", 0))
        if tries < HELD_TRIES:  # not committed yet (or already lifted): look again soon
            again = {**data, "_tries": tries + 1}
            asyncio.get_running_loop().call_later(
                HELD_RECHECK_S, self.enqueue, "device.status", device_id, again
            )

    async def _mqtt_session(self, device_id: str) -> DeviceSession | None:
        """The device's open MQTT session (never one of another transport)."""
        cached = self._sessions.get(device_id)
        if cached is not None and cached.session.open_:
            return cached.session
        async with self.ctx.db.session() as db:
            sid = await db.scalar(
                select(ChannelSession.id)
                .where(
                    ChannelSession.device_id == device_id,
                    ChannelSession.closed_at.is_(None),
                    ChannelSession.transport == "mqtt",
                )
                .order_by(ChannelSession.opened_at.desc())
                .limit(1)
            )
        if sid is None:
            return None
        s = await DeviceSession.attach(self.ctx, self._sender(device_id), device_id, sid)
        if s is not None:
            self._cache(device_id, s)
        return s

    async def sweep(self) -> int:
        """Re-check the cached sessions: end those that may not continue (revoked,
        quarantined, held, deleted), forget replaced ones and those silent past the offline
        limit, and push desired / commands changed through a replica without a bridge."""
        now = self.ctx.clock()
        cached = {c.session.id: c.session for c in list(self._sessions.values())}
        if not cached:
            return 0
        devices = [s.device_id for s in cached.values()]
        async with self.ctx.db.session() as db:
            view = await read_sweep(db, list(cached), devices, now)
        ended = 0
        for sid, s in cached.items():
            bye = view.verdicts.get(sid)
            if bye is not None:
                self._forget(s.device_id)
                if bye.code not in ("replaced", "shutdown"):
                    ended += 1
                    await self._end(s.device_id, s, bye)
                continue
            if now - float(view.seen.get(sid) or now) > self.ctx.settings.offline_after_s:
                self._forget(s.device_id)
                continue
            if view.versions.get(s.device_id, 0) > s.desired_sent:
                self.enqueue("twin.desired", s.device_id, {})
            if s.device_id in view.queued:
                self.enqueue("command.queued", s.device_id, {})
        return ended

    # ------------------------------------------------------------------ the cache

    def _cache(self, device_id: str, s: DeviceSession) -> None:
        self._sessions[device_id] = _Cached(s, self.ctx.clock())
        self._sessions.move_to_end(device_id)
        while len(self._sessions) > self.max_sessions:
            self._sessions.popitem(last=False)

    def _forget(self, device_id: str) -> None:
        self._sessions.pop(device_id, None)

    async def _safe_publish(self, device_id: str, msg: Message) -> None:
        try:
            await self.publish(device_id, msg)
        except BridgeDownError as exc:
            log.info("MQTT: could not tell device %s %s: %s", device_id, msg.T, exc)

    def __len__(self) -> int:
        return len(self._sessions)
