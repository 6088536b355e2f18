"""The central server's live event bus: services publish what happened (device status,
alerts, telemetry summaries); WebSocket subscribers receive it, filtered per tenant.

This is per-process (the only per-process state DESIGN.md allows: open subscriptions).
Across replicas, events travel through the database (PostgreSQL NOTIFY) — see ``publish``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from wrale.fleet.brain.models.base import now

QUEUE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class BusEvent:
    tenant_id: str
    kind: str  # e.g. "device.status", "alert.raised", "telemetry.summary"
    data: dict[str, Any]
    at: float = field(default_factory=now)


class EventBus:
    def __init__(self) -> None:
        self._subscribers: set[tuple[str, asyncio.Queue[BusEvent]]] = set()

    def publish(self, tenant_id: str, kind: str, data: dict[str, Any]) -> None:
        """Hand an event to every subscriber of its tenant; never blocks the caller."""
        event = BusEvent(tenant_id, kind, data)
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
