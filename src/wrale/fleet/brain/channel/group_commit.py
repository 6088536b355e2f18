"""``GroupCommitter``: frames of many device sessions in one transaction (SQLite's single
writer: one commit and one fsync for every device waiting). Results are handed back only
after the commit, so Acks still follow what is durably stored; no I/O besides the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wrale.fleet.brain.channel.alerts import BusOut
from wrale.fleet.brain.channel.checks import SessionEndedError
from wrale.fleet.brain.db import Database
from wrale.fleet.sync.protocol import Ack, Goodbye, Message

if TYPE_CHECKING:
    from wrale.fleet.brain.channel.frames import FrameSession

_Result = tuple[list[Ack], BusOut, int]
GROUP_SESSIONS_MAX = 256  # sessions' frame groups committed in one transaction


@dataclass
class _Item:
    session: FrameSession
    msgs: Sequence[Message]
    done: asyncio.Future[_Result]


class GroupCommitter:
    """Frames of many sessions in one transaction (SQLite's single writer: one commit and
    one fsync for every device waiting, instead of one each).

    ``submit`` queues a session's frame group and waits for its result, which is handed
    back only after the commit (so Acks still follow what is durably stored). While one
    transaction commits, the next groups gather. If a shared transaction fails, it is
    rolled back and each group is redone in its own transaction, so one device's bad
    frame does not fail the others."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._queue: list[_Item] = []
        self._loop = asyncio.get_running_loop()
        self._worker: asyncio.Task[None] | None = None

    def usable(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    async def submit(self, session: FrameSession, msgs: Sequence[Message]) -> _Result:
        done: asyncio.Future[_Result] = self._loop.create_future()
        self._queue.append(_Item(session, msgs, done))
        if self._worker is None or self._worker.done():
            self._worker = self._loop.create_task(self._run(), name="wrale-group-commit")
        return await done

    async def _run(self) -> None:
        while self._queue:
            batch, self._queue = (
                self._queue[:GROUP_SESSIONS_MAX],
                self._queue[GROUP_SESSIONS_MAX:],
            )
            batch = [i for i in batch if not i.done.done()]  # a cancelled caller
            if batch:
                try:
                    await self._commit(batch)
                except asyncio.CancelledError:
                    for i in batch:
                        if not i.done.done():
                            i.done.cancel()
                    raise
                except Exception as exc:  # handed to every waiter
                    for i in batch:
                        if not i.done.done():
                            i.done.set_exception(exc)

    async def _commit(self, batch: list[_Item]) -> None:
        saved = [i.session._state() for i in batch]
        results: list[tuple[list[Ack], BusOut, int, Goodbye | None]] = []
        try:
            async with self.db.serial_session() as s:
                now = batch[0].session.ctx.clock()
                for i in batch:
                    results.append(await i.session._group_in(s, i.msgs, now))
        except Exception:  # redo each group alone; its own error goes to its own waiter
            if len(batch) == 1:
                raise
            for i, state in zip(batch, saved, strict=True):
                i.session._restore(state)
                try:
                    r = await i.session._handle_group(i.msgs)
                except Exception as exc:  # handed to its waiter
                    if not i.done.done():
                        i.done.set_exception(exc)
                else:
                    if not i.done.done():
                        i.done.set_result(r)
            return
        for i, (acks, out, points, held) in zip(batch, results, strict=True):
            if i.done.done():
                continue
            if held is not None:
                i.session._publish(out)
                i.done.set_exception(SessionEndedError(held))
            else:
                i.done.set_result((acks, out, points))
