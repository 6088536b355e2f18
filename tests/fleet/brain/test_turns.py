"""SQLite's writer turns: urgent work goes first without starving telemetry, cancelled
waiters never take or lose a turn, and a group commit's turn is bounded in points."""

from __future__ import annotations

import asyncio

import pytest

from wrale.fleet.brain.channel import group_commit
from wrale.fleet.brain.turns import URGENT_RUN, TurnLock
from wrale.fleet.sync.protocol import CommandResult, TelemetryBatch


async def _order(lock: TurnLock, plan: list[tuple[str, bool]]) -> list[str]:
    """Queue ``plan`` (name, urgent) behind a held lock, release it: the order served."""
    served: list[str] = []

    async def one(name: str, urgent: bool) -> None:
        await lock.acquire(urgent=urgent)
        served.append(name)
        await asyncio.sleep(0)
        lock.release()

    await lock.acquire()
    tasks = []
    for name, urgent in plan:
        tasks.append(asyncio.create_task(one(name, urgent)))
        await asyncio.sleep(0)  # queued in this order
    lock.release()
    await asyncio.gather(*tasks)
    return served


async def test_urgent_waiters_go_before_normal_ones_fifo_within_each_lane() -> None:
    lock = TurnLock()
    served = await _order(lock, [("t1", False), ("t2", False), ("c1", True), ("c2", True)])
    assert served == ["c1", "c2", "t1", "t2"]
    assert not lock.locked


async def test_a_flood_of_urgent_turns_lets_a_waiting_normal_one_in() -> None:
    lock = TurnLock()
    plan = [("t1", False)] + [(f"c{i}", True) for i in range(URGENT_RUN + 3)]
    served = await _order(lock, plan)
    assert served.index("t1") == URGENT_RUN  # after URGENT_RUN urgent turns, not last
    assert len(served) == len(plan)


async def test_a_cancelled_waiter_is_skipped_and_the_turn_passes_on() -> None:
    lock = TurnLock()
    await lock.acquire()
    gone = asyncio.create_task(lock.acquire(urgent=True))
    later = asyncio.create_task(lock.acquire())
    await asyncio.sleep(0)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert lock.waiting() == (0, 1)
    lock.release()
    await asyncio.wait_for(later, 1)
    assert lock.locked
    lock.release()
    assert not lock.locked


async def test_a_waiter_cancelled_just_as_it_was_handed_the_turn_passes_it_on() -> None:
    lock = TurnLock()
    await lock.acquire()
    first = asyncio.create_task(lock.acquire())
    second = asyncio.create_task(lock.acquire())
    await asyncio.sleep(0)
    lock.release()  # first is handed the turn …
    first.cancel()  # … and cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, 1)
    lock.release()
    assert not lock.locked


async def test_a_waiter_cancelled_and_skipped_by_a_release_before_it_runs_stays_cancelled() -> None:
    """The cancel, then a release that skips the cancelled waiter, then the waiter runs: it
    raises CancelledError (not ValueError from a lane it already left), so a loop being
    stopped stops, and the turn went to the next waiter."""
    lock = TurnLock()
    await lock.acquire()
    gone = asyncio.create_task(lock.acquire())
    later = asyncio.create_task(lock.acquire())
    await asyncio.sleep(0)
    gone.cancel()  # its future is cancelled now; the task resumes on the next pass
    lock.release()  # skips it, hands the turn to ``later``
    with pytest.raises(asyncio.CancelledError):
        await gone
    await asyncio.wait_for(later, 1)
    assert lock.locked
    assert lock.waiting() == (0, 0)
    lock.release()
    assert not lock.locked


def _item(points: int, result: bool = False) -> group_commit._Item:
    pts = [("cpu_temp_c", 1.0, 50.0)] * points
    msgs: list = [TelemetryBatch(seq=1, prev=0, points=pts)]
    if result:
        msgs.append(CommandResult(id="c", status="succeeded"))
    return group_commit._Item(None, msgs, None)  # type: ignore[arg-type]


def test_a_group_commit_takes_groups_up_to_its_points_bound_and_at_least_one() -> None:
    limit = group_commit.GROUP_POINTS_MAX
    queue = [_item(limit // 4) for _ in range(10)]
    batch, rest = group_commit._take(queue)
    assert (batch, rest) == (queue[:4], queue[4:])
    big = [_item(limit * 3), _item(1)]
    assert group_commit._take(big) == (big[:1], big[1:])  # one alone may exceed it
    small = [_item(1) for _ in range(group_commit.GROUP_SESSIONS_MAX + 5)]
    batch, rest = group_commit._take(small)
    assert len(batch) == group_commit.GROUP_SESSIONS_MAX
    assert batch + rest == small
