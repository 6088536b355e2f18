"""``ChannelHub``: this replica's live device sessions (the only per-process state of the
channel) and what reaches them from outside a connection.

- One live session per device: registering a newer one ends the older (Goodbye replaced).
- Bus listener (every tenant, every replica's events): ``twin.desired`` /
  ``command.queued`` wake the device's session to deliver; ``device.status`` to
  quarantined / maintenance / decommissioned ends it. Those events for a device with no
  session here (status: only the held ones) go to the fallback pusher (the MQTT bridge
  registers one with ``set_fallback``) on the replica that published them.
- A sweep every ``channel_heartbeat_s`` re-checks every live session in the database
  (``check_sessions``: revoked or rotated credentials, quarantine, held, replaced on another
  replica, deleted) and catches work queued through another replica (a newer desired
  version, queued commands): changes made anywhere reach the device within one sweep.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from wrale.fleet.brain.bus import BusEvent
from wrale.fleet.brain.channel.admission import CredentialChecks
from wrale.fleet.brain.channel.session import (
    ChannelContext,
    DeviceSession,
    Send,
    check_sessions,
    goodbye,
)
from wrale.fleet.brain.channel.sweep_view import pending_work
from wrale.fleet.brain.services import registry

log = logging.getLogger("wrale.central.channel")

KINDS = ("twin.desired", "command.queued", "device.status")
# (kind, device_id, data) → pushed; an ``async def`` of the MQTT bridge
Pusher = Callable[[str, str, dict[str, Any]], Coroutine[Any, Any, None]]


class ChannelHub:
    def __init__(self, ctx: ChannelContext) -> None:
        self.ctx = ctx
        self.sessions: dict[str, DeviceSession] = {}  # device id → its live session here
        # client address → device sockets of it not past their hello yet (edge route)
        self.pending: collections.Counter[str] = collections.Counter()
        # credential checks of sockets not yet accepted, many in one read (a connect storm)
        self.credentials = CredentialChecks(ctx.db, ctx.clock)
        self._fallback: Pusher | None = None
        self.links: Any = None  # the WebSocket carrier's live sockets (user.api.edge_link)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._unlisten: Callable[[], None] | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    # ------------------------------------------------------------------ sessions

    def session(self, send: Send, *, transport: str = "ws") -> DeviceSession:
        """A new, unopened session of this replica."""
        return DeviceSession(self.ctx, send, transport=transport)

    def register(self, s: DeviceSession) -> None:
        """``s`` (opened) is the device's live session here; an older one is ended."""
        old = self.sessions.get(s.device_id)
        self.sessions[s.device_id] = s
        if old is not None and old is not s:
            self._spawn(old.end(goodbye("replaced", "a newer session of this device opened")))

    def unregister(self, s: DeviceSession) -> None:
        if self.sessions.get(s.device_id) is s:
            del self.sessions[s.device_id]

    async def kick(self, device_id: str, code: str, message: str, *, retry: bool = True) -> bool:
        """End the device's live session here (if any) with a Goodbye ``code``."""
        s = self.sessions.get(device_id)
        if s is None:
            return False
        await s.end(goodbye(code, message, retry=retry))
        return True

    def set_fallback(self, pusher: Pusher | None) -> None:
        """Who pushes to devices without a WebSocket session here (the MQTT bridge)."""
        self._fallback = pusher

    # ------------------------------------------------------------------ bus

    def _on_event(self, ev: BusEvent) -> None:
        device_id = ev.data.get("device_id")
        if not isinstance(device_id, str):
            return
        s = self.sessions.get(device_id)
        if s is None:
            if ev.remote:  # the replica that published it gave it to its fallback
                return
            held = ev.data.get("status") in registry.HELD_STATUSES
            if self._fallback is not None and (ev.kind != "device.status" or held):
                self._spawn(self._fallback(ev.kind, device_id, dict(ev.data)))
            return
        if ev.kind == "twin.desired":
            version = ev.data.get("version")
            if not isinstance(version, int):
                s.want("desired")
            elif version > s.desired_sent:
                s.want("desired", version)
        elif ev.kind == "command.queued":
            s.want("commands")
        elif ev.kind == "device.status":
            status = ev.data.get("status")
            if status == "quarantined":
                reason = ev.data.get("reason") or "quarantined by an administrator"
                self._spawn(s.end(goodbye("quarantined", f"the device is quarantined: {reason}")))
            elif status in registry.HELD_STATUSES:
                self._spawn(s.end(goodbye("held", f"the device is {status}")))

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("device channel task failed", exc_info=task.exception())

    # ------------------------------------------------------------------ sweep

    async def sweep(self, now: float | None = None) -> int:
        """Re-check every live session; end those that may not continue and wake those
        with work queued elsewhere. Returns how many were ended."""
        at = self.ctx.clock() if now is None else now
        live = {s.id: s for s in list(self.sessions.values()) if s.open_ and s.goodbye is None}
        if not live:
            return 0
        device_ids = [s.device_id for s in live.values()]
        async with self.ctx.db.session() as db:
            verdicts = await check_sessions(db, list(live), at)
            work = await pending_work(db, device_ids, at)
        for sid, bye in verdicts.items():
            log.info("device %s: ending session %s: %s", live[sid].device_id, sid, bye.message)
            self._spawn(live[sid].end(bye))
        for sid, s in live.items():
            if sid in verdicts:
                continue
            version = work.versions.get(s.device_id, 0)
            if version > s.desired_sent:
                s.want("desired", version)
            if s.device_id in work.queued:
                s.want("commands")
        return len(verdicts)

    async def _loop(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.ctx.settings.channel_heartbeat_s)
            if self._stop.is_set():
                return
            try:
                await self.sweep()
            except Exception:  # the next sweep tries again
                log.exception("device channel sweep failed")

    # ------------------------------------------------------------------ life

    async def start(self) -> None:
        if self._unlisten is None:
            self._unlisten = self.ctx.bus.listen(KINDS, self._on_event, remote=True)
        if self._loop_task is None:
            self._stop.clear()
            self._loop_task = asyncio.create_task(self._loop(), name="wrale-channel-hub")

    async def stop(self) -> None:
        """Say Goodbye ``shutdown`` to every live session (devices reconnect elsewhere)."""
        self._stop.set()
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        bye = goodbye("shutdown", "the server is shutting down; reconnect", retry=True)
        await asyncio.gather(
            *(s.end(bye) for s in list(self.sessions.values())), return_exceptions=True
        )
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=10)
