"""What one group-commit transaction takes from the queue (``group_commit._take``, pure):
jobs (session opens, delivery marks) go ahead of a telemetry backlog, bounded, and every
transaction still carries telemetry when some waits, so neither side starves."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wrale.fleet.brain.channel import group_commit as gc
from wrale.fleet.sync.protocol import TelemetryBatch


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    lp = asyncio.new_event_loop()
    yield lp
    lp.close()


def _group(points: int, loop: asyncio.AbstractEventLoop) -> gc._Item:
    batch = TelemetryBatch(seq=1, prev=0, points=[("cpu_temp_c", 1.0e9, 50.0)] * points)
    return gc._Item(None, [batch], loop.create_future())


async def _noop(_s: object) -> None:
    return None


def _job(loop: asyncio.AbstractEventLoop) -> gc._Item:
    return gc._Item(None, (), loop.create_future(), _noop)


def test_opens_queued_behind_a_backlog_go_in_the_next_transaction(
    loop: asyncio.AbstractEventLoop,
) -> None:
    backlog = [_group(1000, loop) for _ in range(50)]  # 50,000 points: several seconds
    opens = [_job(loop) for _ in range(40)]
    batch, rest = gc._take(backlog + opens)
    assert [i for i in batch if i.job is not None] == opens[: gc.JOBS_AHEAD_MAX]
    groups = [i for i in batch if i.job is None]
    assert groups == backlog[: len(groups)]  # telemetry still moves, in order
    assert groups
    assert len(batch) + len(rest) == 90
    batch2, _ = gc._take(rest)
    ahead = gc.JOBS_AHEAD_MAX
    assert [i for i in batch2 if i.job is not None] == opens[ahead : 2 * ahead]


def test_one_huge_group_is_taken_alone_and_never_left_behind(
    loop: asyncio.AbstractEventLoop,
) -> None:
    huge = _group(3 * gc.GROUP_POINTS_MAX, loop)
    batch, rest = gc._take([huge, _group(10, loop)])
    assert batch == [huge]
    assert len(rest) == 1


@given(st.lists(st.one_of(st.integers(0, 3000), st.none()), min_size=1, max_size=400))
def test_every_item_is_taken_once_in_order_of_its_kind(kinds: list[int | None]) -> None:
    lp = asyncio.new_event_loop()
    try:
        queue = [_job(lp) if k is None else _group(k, lp) for k in kinds]
        seen: list[gc._Item] = []
        rest = queue
        while rest:
            batch, rest = gc._take(rest)
            assert batch, "a transaction always takes something"
            assert len(batch) <= gc.GROUP_SESSIONS_MAX
            jobs = [i for i in batch if i.job is not None]
            if any(i.job is None for i in rest + batch):  # telemetry waited: some moves
                assert any(i.job is None for i in batch)
            points = sum(i.cost for i in batch)
            assert points <= gc.GROUP_POINTS_MAX or len(batch) - len(jobs) == 1
            assert len(jobs) * gc.JOB_COST <= gc.GROUP_POINTS_MAX
            seen += batch
        assert sorted(map(id, seen)) == sorted(map(id, queue))
        for kind in (True, False):
            order = [i for i in seen if (i.job is not None) is kind]
            assert order == [i for i in queue if (i.job is not None) is kind]
    finally:
        lp.close()
