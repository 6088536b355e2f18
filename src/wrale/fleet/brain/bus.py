"""The central server's live event bus: services publish what happened (device status,
alerts, telemetry summaries); WebSocket subscribers receive it, filtered per tenant, and
listeners of chosen kinds (the device channel's hub) receive every tenant's.

This is per-process (the only per-process state DESIGN.md allows: open subscriptions).
Across replicas, events travel through the database: on PostgreSQL a relay
(``bus_pg.PgRelay``, started by the app's lifespan) sends what ``publish`` hands it with
NOTIFY and gives what other replicas sent to ``deliver_remote``. They are live hints, not
durable: state is always read from the database. SQLite: one process, no relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models.base import now

QUEUE_SIZE = 1000
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BusEvent:
    tenant_id: str
    kind: str  # e.g. "device.status", "alert.raised", "telemetry.summary"
    data: dict[str, Any]
    at: float = field(default_factory=now)
    remote: bool = False  # published by another replica (and relayed here)


Listener = Callable[[BusEvent], None]
Relay = Callable[[BusEvent], None]  # takes an event for the other replicas; never blocks


class EventBus:
    def __init__(self, replica_id: str | None = None) -> None:
        # tells this replica's events from the others' (a relay drops its own echoes)
        self.replica_id = replica_id or secrets.token_hex(8)
        self._subscribers: set[tuple[str, asyncio.Queue[BusEvent]]] = set()
        self._listeners: dict[int, tuple[frozenset[str], Listener, bool]] = {}
        self._ids = itertools.count()
        self._relay: Relay | None = None

    def publish(self, tenant_id: str, kind: str, data: dict[str, Any]) -> None:
        """Hand an event to every subscriber of its tenant and every listener of its kind,
        and to the relay (other replicas) if there is one; never blocks the caller."""
        event = BusEvent(tenant_id, kind, data)
        self._deliver(event)
        if self._relay is not None:
            try:
                self._relay(event)
            except Exception:  # the relay's bug must not fail the publisher
                log.exception("bus relay failed on %s", kind)

    def deliver_remote(self, event: BusEvent) -> None:
        """An event another replica published (``event.remote``): to this replica's
        subscribers, and to the listeners that asked for remote events."""
        self._deliver(event)

    def relay_to(self, relay: Relay | None) -> None:
        """Who carries this replica's events to the others (None: nobody, e.g. SQLite)."""
        self._relay = relay

    def _deliver(self, event: BusEvent) -> None:
        for kinds, fn, remote in list(self._listeners.values()):
            if event.kind in kinds and (remote or not event.remote):
                try:
                    fn(event)
                except Exception:  # a listener's bug must not fail the publisher
                    log.exception("bus listener failed on %s", event.kind)
        for tenant, queue in list(self._subscribers):
            if tenant != event.tenant_id:
                continue
            if queue.full():
                queue.get_nowait()  # a slow subscriber loses its oldest
            queue.put_nowait(event)

    @contextlib.asynccontextmanager
    async def subscribe(self, tenant_id: str) -> AsyncIterator[asyncio.Queue[BusEvent]]:
        queue: asyncio.Queue[BusEvent] = asyncio.Queue(QUEUE_SIZE)
        entry = (tenant_id, queue)
        self._subscribers.add(entry)
        try:
            yield queue
        finally:
            self._subscribers.discard(entry)

    def listen(
        self, kinds: Iterable[str], fn: Listener, *, remote: bool = False
    ) -> Callable[[], None]:
        """Call ``fn`` for every event of ``kinds``, of every tenant (the device channel's
        hub: it must see all of them, so nothing is dropped). ``fn`` runs inside
        ``publish`` and must not block; returns the function that stops listening.

        ``remote``: also the events other replicas published. Off by default: a listener
        that acts on the whole fleet (pushes over MQTT, syncs broker accounts) must act
        once, on the replica that published; one that acts on what only this replica holds
        (the hub's live sessions) turns it on."""
        key = next(self._ids)
        self._listeners[key] = (frozenset(kinds), fn, remote)

        def stop() -> None:
            self._listeners.pop(key, None)

        return stop


_PENDING = "wrale.publish_after_commit"
_HOOKED = "wrale.publish_after_commit.hooked"


def publish_after_commit(
    session: AsyncSession, bus: EventBus | None, tenant_id: str, kind: str, data: dict[str, Any]
) -> None:
    """Publish on ``bus`` once ``session`` commits (never if it rolls back), so whoever
    reacts (the device hub) reads what the event announces."""
    if bus is None:
        return
    info = session.info
    if not info.get(_HOOKED):
        info[_HOOKED] = True
        sync = session.sync_session

        def committed(_session: Any) -> None:
            for b, tenant, k, d in info.pop(_PENDING, []):
                b.publish(tenant, k, d)

        def rolled_back(_session: Any) -> None:
            info.pop(_PENDING, None)

        event.listen(sync, "after_commit", committed)
        event.listen(sync, "after_rollback", rolled_back)
    info.setdefault(_PENDING, []).append((bus, tenant_id, kind, data))
