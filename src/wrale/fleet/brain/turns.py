"""``TurnLock``: SQLite's writer turns, one at a time, with an urgent lane.

The device channel's telemetry arrives all the time and is written in long group commits;
a command to a board, its result and an operator's change must not queue behind every
telemetry turn waiting before them. Urgent waiters are served before normal ones, but at
most ``URGENT_RUN`` in a row while normal ones wait, so a flood of urgent work cannot
starve telemetry (whose boards would then resend it). FIFO within each lane. One event
loop; not thread-safe.
"""

from __future__ import annotations

import asyncio
import collections

URGENT_RUN = 8  # urgent turns in a row at most, while a normal waiter waits


class TurnLock:
    def __init__(self) -> None:
        self._held = False
        self._urgent: collections.deque[asyncio.Future[None]] = collections.deque()
        self._normal: collections.deque[asyncio.Future[None]] = collections.deque()
        self._run = 0  # urgent turns given in a row while normal waiters waited

    @property
    def locked(self) -> bool:
        return self._held

    def waiting(self) -> tuple[int, int]:
        """(urgent, normal) waiters."""
        return len(self._urgent), len(self._normal)

    async def acquire(self, *, urgent: bool = False) -> None:
        if not self._held and not self._urgent and not self._normal:
            self._held = True
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        lane = self._urgent if urgent else self._normal
        lane.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # handed the turn just as it was cancelled: pass it on
            elif fut in lane:  # a release between the cancel and now skipped it already
                lane.remove(fut)
            raise

    def release(self) -> None:
        """End the holder's turn and hand it to the next waiter (if any)."""
        while True:
            fut = self._next()
            if fut is None:
                self._held = False
                return
            if not fut.done():  # a waiter cancelled meanwhile is skipped
                fut.set_result(None)
                return

    def _next(self) -> asyncio.Future[None] | None:
        if self._urgent and (not self._normal or self._run < URGENT_RUN):
            self._run = self._run + 1 if self._normal else 0
            return self._urgent.popleft()
        self._run = 0
        if self._normal:
            return self._normal.popleft()
        return None
