"""``GroupCommitter``: the device channel's writes of many sessions in one transaction
(SQLite's single writer: one commit and one fsync for every device waiting). Results are
handed back only after the commit, so Acks still follow what is durably stored; no I/O
besides the database.

Two kinds of work share a transaction: a session's frame group (``submit``) and a job
(``run``: a session opening in a connect storm, the marks written after a delivery).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.channel.alerts import BusOut
from wrale.fleet.brain.channel.checks import SessionEndedError
from wrale.fleet.brain.channel.ingest import prestore, write_touches
from wrale.fleet.brain.db import Database, DatabaseBusyError
from wrale.fleet.sync.protocol import Ack, Message, TelemetryBatch

if TYPE_CHECKING:
    from wrale.fleet.brain.channel.frames import FrameSession

T = TypeVar("T")
_Result = tuple[list[Ack], BusOut, int]
Job = Callable[[AsyncSession], Awaitable[Any]]
GROUP_SESSIONS_MAX = 256  # frame groups and jobs committed in one transaction
# points per transaction at most (one group may exceed it alone): a turn stays short, so a
# command or its result waits tens of milliseconds for the writer, not a whole backlog
GROUP_POINTS_MAX = 4000
JOB_COST = 125  # a job (a session opening: ~15 queries) weighs this many points
# jobs a transaction takes ahead of the frame groups queued before them: a connect storm's
# opens do not wait behind a whole telemetry backlog (the boards let in first send theirs),
# and every transaction still carries telemetry, so neither side starves
JOBS_AHEAD_MAX = 64
SLICE_S = 0.005  # a group commit's work between two turns of the loop
# transactions being written at once: SQLite has one writer; PostgreSQL many, and while one
# transaction waits for its round trips and its commit's flush the next ones are written
# (the central's and PostgreSQL's CPU both busy)
PG_COMMITTERS = 3


@dataclass
class _Item:
    session: FrameSession | None  # a frame group's session, or None for a job
    msgs: Sequence[Message]
    done: asyncio.Future[Any]
    job: Job | None = None
    queued: float = 0.0
    max_wait_s: float | None = None

    @property
    def cost(self) -> int:
        if self.job is not None:
            return JOB_COST
        return sum(len(m.points) for m in self.msgs if isinstance(m, TelemetryBatch))


class GroupCommitter:
    """The channel's writes of many sessions in one transaction (SQLite's single writer:
    one commit and one fsync for every device waiting, instead of one each).

    ``submit`` queues a session's frame group, ``run`` a job; each waits for its result,
    handed back only after the commit (so Acks still follow what is durably stored). While
    one transaction commits, the next items gather. If a shared transaction fails, it is
    rolled back and each item is redone in its own transaction, so one device's bad frame
    does not fail the others. When an urgent writer turn waits (a command, its result, an
    operator's change), the transaction commits at the next item and the rest go first in
    the next one: the urgent turn waits for one item, not a whole transaction."""

    def __init__(self, db: Database, committers: int | None = None) -> None:
        self.db = db
        self._queue: list[_Item] = []
        self._loop = asyncio.get_running_loop()
        self._workers: set[asyncio.Task[None]] = set()
        self._fresh: set[asyncio.Task[None]] = set()  # started, yet to take their first items
        if committers is None:
            committers = 1 if db.is_sqlite else PG_COMMITTERS
        self.committers = committers

    def usable(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    async def submit(self, session: FrameSession, msgs: Sequence[Message]) -> _Result:
        result: _Result = await self._enqueue(_Item(session, msgs, self._loop.create_future()))
        return result

    async def run(
        self, job: Callable[[AsyncSession], Awaitable[T]], *, max_wait_s: float | None = None
    ) -> T:
        """``job(session)`` inside the next shared transaction; its result once committed.
        ``DatabaseBusyError`` if its turn came after more than ``max_wait_s``."""
        item = _Item(None, (), self._loop.create_future(), job, time.monotonic(), max_wait_s)
        result: T = await self._enqueue(item)
        return result

    async def _enqueue(self, item: _Item) -> Any:
        self._queue.append(item)
        # another committer only when every one is writing: a fresh one takes everything
        # queued meanwhile (transactions stay full)
        live = sum(not w.done() for w in self._workers)
        if live < self.committers and not any(not w.done() for w in self._fresh):
            worker = self._loop.create_task(self._run(), name="wrale-group-commit")
            self._workers.add(worker)
            self._fresh.add(worker)
            worker.add_done_callback(self._workers.discard)
            worker.add_done_callback(self._fresh.discard)
        return await item.done

    async def _run(self) -> None:
        me = asyncio.current_task()
        self._fresh.discard(me)
        while self._queue:
            batch, self._queue = _take(self._queue)
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
        saved = [i.session._state() if i.session is not None else None for i in batch]
        results: list[Any] = []
        kept = batch
        try:
            async with self.db.serial_session() as s:
                kept = _drop_late(batch)
                now = self._clock(kept)
                if not self.db.is_sqlite:  # every device's telemetry in one statement
                    groups = [(i.session.device_id, i.msgs) for i in kept if i.session]
                    await prestore(s, groups, now)
                slice_end = time.monotonic() + SLICE_S
                for n, i in enumerate(kept, 1):
                    results.append(await _work(i, s, now))
                    # SQLite's writer runs inline (``sqlite_inline``): every ``SLICE_S`` the
                    # loop serves the rest (requests, sockets) while the turn is held; not
                    # after every item, as each turn of a busy loop takes milliseconds
                    if time.monotonic() >= slice_end:
                        await asyncio.sleep(0)
                        slice_end = time.monotonic() + SLICE_S
                    if n < len(kept) and self.db.urgent_waiting():
                        break  # commit what is done: an urgent turn waits for the writer
                await write_touches(s)  # every board's last_seen in one statement
        except Exception:  # redo each item alone; its own error goes to its own waiter
            if len(kept) == 1:
                raise
            states = {id(i): st for i, st in zip(batch, saved, strict=True)}
            await self._redo_alone(kept, [states[id(i)] for i in kept])
            return
        done = kept[: len(results)]
        self._queue[:0] = kept[len(results) :]  # the rest goes first in the next transaction
        for i, r in zip(done, results, strict=True):
            if i.done.done():
                continue
            if i.session is None:
                i.done.set_result(r)
                continue
            acks, out, points, held = r
            if held is not None:
                i.session._publish(out)
                i.done.set_exception(SessionEndedError(held))
            else:
                i.done.set_result((acks, out, points))

    async def _redo_alone(self, batch: list[_Item], saved: list[Any]) -> None:
        for i, state in zip(batch, saved, strict=True):
            try:
                if i.session is not None:
                    i.session._restore(state)
                    r: Any = await i.session._handle_group(i.msgs)
                else:
                    assert i.job is not None
                    async with self.db.serial_session() as s:
                        r = await i.job(s)
            except Exception as exc:  # handed to its waiter
                if not i.done.done():
                    i.done.set_exception(exc)
            else:
                if not i.done.done():
                    i.done.set_result(r)

    @staticmethod
    def _clock(batch: list[_Item]) -> float:
        first = next((i.session for i in batch if i.session is not None), None)
        return first.ctx.clock() if first is not None else time.time()


async def _work(i: _Item, s: AsyncSession, now: float) -> Any:
    if i.job is not None:
        return await i.job(s)
    assert i.session is not None
    return await i.session._group_in(s, i.msgs, now)


def _drop_late(batch: list[_Item]) -> list[_Item]:
    """Jobs whose turn came after their ``max_wait_s`` are told so (``DatabaseBusyError``)."""
    at = time.monotonic()
    kept = []
    for i in batch:
        if i.max_wait_s is not None and at - i.queued > i.max_wait_s:
            if not i.done.done():
                i.done.set_exception(
                    DatabaseBusyError(f"waited over {i.max_wait_s:g} s for the database")
                )
        else:
            kept.append(i)
    return kept


def _take(queue: list[_Item]) -> tuple[list[_Item], list[_Item]]:
    """The next transaction's items and the rest of the queue. First up to
    ``JOBS_AHEAD_MAX`` jobs wherever they wait, then the queue in order, up to
    ``GROUP_SESSIONS_MAX`` items and ``GROUP_POINTS_MAX`` points (a job weighs
    ``JOB_COST``), and always the first frame group waiting, so telemetry moves in every
    transaction; the order within each kind is kept."""
    ahead = [i for i in queue if i.job is not None][:JOBS_AHEAD_MAX]
    taken = {id(i) for i in ahead}
    batch = list(ahead)
    points = len(ahead) * JOB_COST
    groups = 0
    for item in queue:
        if len(batch) >= GROUP_SESSIONS_MAX:
            break
        if id(item) in taken:
            continue
        if points + item.cost > GROUP_POINTS_MAX and batch:
            if item.job is not None:
                continue  # a later transaction's (so is every job after it)
            if groups:
                break
        points += item.cost
        batch.append(item)
        taken.add(id(item))
        groups += item.job is None
    rest = [i for i in queue if id(i) not in taken]
    return batch, rest
