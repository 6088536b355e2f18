"""``FirstCompose``: the desired documents of boards opening sessions together, composed
in batches (``twin_batch.recompose_devices``: a constant number of queries a batch)
instead of one board at a time.

A session's first delivery sends the desired document composed *now* (group membership
or a policy may have changed while the board was away). Composed board by board that is
about five queries and a few milliseconds of the event loop each: a thousand boards
reconnecting after a restart spend seconds of the loop on it, while operators' requests
and commands wait for their turns. Here every session opening meanwhile joins the next
batch of its tenant; the batch runs as one job of the channel's group commit (or its own
writer turn when sessions commit alone), and each session then reads its stored document.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.bus import EventBus
from wrale.fleet.brain.channel.group_commit import GroupCommitter
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.services import twin_batch

log = logging.getLogger("wrale.central.channel")

# boards a batch at most: one group-commit job holds the loop while it composes (~0.35 ms
# a board), so a batch stays near 10 ms and a command waiting for the writer is not held
BATCH = 32


class FirstCompose:
    """Batches of the boards whose first delivery waits for its composed document."""

    def __init__(
        self, db: Database, bus: EventBus, committer: Callable[[], GroupCommitter | None]
    ) -> None:
        self.db = db
        self.bus = bus
        self._committer = committer
        self._waiting: dict[str, dict[str, asyncio.Future[None]]] = {}  # tenant → device
        self._task: asyncio.Task[None] | None = None

    async def compose(self, tenant_id: str, device_id: str) -> None:
        """Until the device's desired document is composed and stored (raises what the
        batch raised; the caller then composes the board on its own)."""
        devices = self._waiting.setdefault(tenant_id, {})
        fut = devices.get(device_id)
        if fut is None:
            fut = devices[device_id] = asyncio.get_running_loop().create_future()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        await asyncio.shield(fut)  # a caller cancelled leaves the batch to the others

    async def _run(self) -> None:
        try:
            while self._waiting:
                tenant_id, devices = next(iter(self._waiting.items()))
                batch = {d: devices.pop(d) for d in list(devices)[:BATCH]}
                if not devices:
                    del self._waiting[tenant_id]
                try:
                    await self._turn(tenant_id, list(batch))
                except Exception as exc:  # each board composes alone instead
                    log.warning("composing %d boards' first documents failed: %s", len(batch), exc)
                    for fut in batch.values():
                        if not fut.done():
                            fut.set_exception(exc)
                            fut.exception()  # retrieved: a waiter gone is not an error
                else:
                    for fut in batch.values():
                        if not fut.done():
                            fut.set_result(None)
        finally:
            self._task = None

    async def _turn(self, tenant_id: str, device_ids: list[str]) -> None:
        async def job(s: AsyncSession) -> None:
            await twin_batch.recompose_devices(s, tenant_id, device_ids, self.bus)

        committer = self._committer()
        if committer is not None:
            await committer.run(job)
            return
        async with self.db.serial_session() as s:
            await job(s)
