"""The central server's live event bus: services publish what happened (device status,
alerts, telemetry summaries); WebSocket subscribers receive it, filtered per tenant, and
listeners of chosen kinds (the device channel's hub) receive every tenant's.

This is per-process (the only per-process state DESIGN.md allows: open subscriptions).
Across replicas, events travel through the database (PostgreSQL NOTIFY) — see ``publish``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
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


Listener = Callable[[BusEvent], None]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: set[tuple[str, asyncio.Queue[BusEvent]]] = set()
        self._listeners: dict[int, tuple[frozenset[str], Listener]] = {}
        self._ids = itertools.count()

    def publish(self, tenant_id: str, kind: str, data: dict[str, Any]) -> None:
        """Hand an event to every subscriber of its tenant and every listener of its kind;
        never blocks the caller."""
        event = BusEvent(tenant_id, kind, data)
        for kinds, fn in list(self._listeners.values()):
            if kind in kinds:
                try:
                    fn(event)
                except Exception:  # a listener's bug must not fail the publisher
                    log.exception("bus listener failed on %s", kind)
        for tenant, queue in list(self._subscribers):
            if tenant != tenant_id:
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

    def listen(self, kinds: Iterable[str], fn: Listener) -> Callable[[], None]:
        """Call ``fn`` for every event of ``kinds``, of every tenant (the device channel's
        hub: it must see all of them, so nothing is dropped). ``fn`` runs inside
        ``publish`` and must not block; returns the function that stops listening."""
        key = next(self._ids)
        self._listeners[key] = (frozenset(kinds), fn)

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
