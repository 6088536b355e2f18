"""Credential checks of device sockets not yet accepted, many in one read.

A connect storm brings a thousand upgrade requests at once. Read one by one (each read
several turns of the event loop on the database's thread, four at a time), the checks
answered so slowly that most boards gave up their opening handshake (10 s) and backed
off. Checks waiting together are answered by one query of at most ``BATCH_MAX`` devices,
one query at a time, so a storm still takes a single pooled connection from the API.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from sqlalchemy import select

from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import DeviceCredential
from wrale.fleet.brain.services import enrollment, registry

BATCH_MAX = 500  # devices in one query (SQLite's bound parameters stay well under 32,766)
SECRET_MAX = 200  # longer is not a secret of ours: refused without a read

_Check = tuple[str, str, "asyncio.Future[bool]"]  # device id, secret hash, answer


class CredentialChecks:
    """``ok(device_id, secret)``: whether ``secret`` is a current credential of the
    device (read only; opening the session checks the rest). One event loop."""

    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self.db = db
        self.clock = clock
        self.reads = 0  # queries made (the tests' view of the batching)
        self._waiting: list[_Check] = []
        self._worker: asyncio.Task[None] | None = None

    async def ok(self, device_id: str, secret: str) -> bool:
        if not registry.is_id(device_id) or not secret or len(secret) > SECRET_MAX:
            return False
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[bool] = loop.create_future()
        self._waiting.append((device_id, enrollment.sha256(secret), answer))
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._run(), name="wrale-credential-checks")
        return await answer

    async def _run(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[:BATCH_MAX], self._waiting[BATCH_MAX:]
            batch = [c for c in batch if not c[2].done()]  # a socket gone meanwhile
            if not batch:
                continue
            try:
                current = await self._current({d for d, _, _ in batch})
            except Exception as exc:  # handed to each waiter: its socket is refused
                for _, _, answer in batch:
                    if not answer.done():
                        answer.set_exception(exc)
                continue
            for device_id, digest, answer in batch:
                if not answer.done():
                    answer.set_result((device_id, digest) in current)

    async def _current(self, device_ids: set[str]) -> set[tuple[str, str]]:
        """(device id, secret hash) of the devices' credentials not revoked now."""
        self.reads += 1
        now = self.clock()
        async with self.db.session() as s:
            rows = await s.execute(
                select(
                    DeviceCredential.device_id,
                    DeviceCredential.secret_hash,
                    DeviceCredential.revoked_at,
                ).where(DeviceCredential.device_id.in_(sorted(device_ids)))
            )
            return {(d, h) for d, h, revoked in rows if revoked is None or revoked > now}
