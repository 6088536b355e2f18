"""A sample handed to the outbox while the agent is being stopped is stored, not dropped.

The agent's store calls run in a thread (``asyncio.to_thread``); cancelling such a call
before a thread picks it up cancels it outright. The sampler is cancelled when the agent
stops, so samples it was writing at that moment were lost (counted as appended, never
stored) whenever the executor was slow to start the call: seen as "points were lost" in
``test_agent.py``'s cut-link case on a loaded machine. Here the executor is held busy so
the call cannot start before the cancel, every time.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.fleet.edge.kit import DEVICE, Device, FakeCentral
from wrale.fleet.edge.agent import EdgeAgent
from wrale.fleet.edge.store import EdgeStore


@pytest.fixture
async def busy_executor() -> AsyncIterator[threading.Event]:
    """The loop's executor with one thread, held busy until the event is set."""
    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(max_workers=1)
    loop.set_default_executor(pool)
    release = threading.Event()
    pool.submit(release.wait, 30)
    yield release
    release.set()
    pool.shutdown(wait=True)


def _agent(tmp_path: Path) -> tuple[EdgeAgent, EdgeStore]:
    d = Device(tmp_path, FakeCentral())
    store = EdgeStore(d.settings.store_path(), max_rows=1000, max_age_s=3600)
    return EdgeAgent(d.settings, d.metal, store, d.net.dial, device_id=DEVICE), store


async def test_a_flush_cancelled_before_its_thread_starts_still_stores_the_row(
    tmp_path: Path, busy_executor: threading.Event
) -> None:
    agent, store = _agent(tmp_path)
    sampled = [("cpu_temp_c", 1_800_000_000.0, 48.5), ("fan_pct", 1_800_000_000.0, 30.0)]
    agent._pending = list(sampled)
    flush = asyncio.create_task(agent._flush(force=True))
    await asyncio.sleep(0.05)  # the call waits for the busy executor
    flush.cancel()
    await asyncio.sleep(0.05)
    assert not flush.done(), "the cancelled flush waits for its store call to finish"
    busy_executor.set()
    with pytest.raises(asyncio.CancelledError):
        await flush
    assert store.depth("telemetry") == 1
    (row,) = store.rows_after("telemetry", 0, 100)
    assert [tuple(p) for p in row.items] == sampled
    assert agent.stats()["points"] == 2
    assert agent.stats()["pending_points"] == 0
    store.close()


async def test_a_store_call_cancelled_before_its_thread_starts_is_not_lost(
    tmp_path: Path, busy_executor: threading.Event
) -> None:
    agent, store = _agent(tmp_path)
    ran: list[int] = []
    call = asyncio.create_task(agent._io_whole(ran.append, 1))
    await asyncio.sleep(0.05)
    call.cancel()
    busy_executor.set()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert ran == [1]
    store.close()


async def test_a_flush_that_fails_while_cancelled_keeps_its_samples(
    tmp_path: Path, busy_executor: threading.Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent, store = _agent(tmp_path)
    sampled = [("cpu_temp_c", 1_800_000_000.0, 48.5)]
    agent._pending = list(sampled)

    def full(*_args: object, **_kwargs: object) -> None:
        raise OSError("no space left on device")

    monkeypatch.setattr(store, "append", full)
    flush = asyncio.create_task(agent._flush(force=True))
    await asyncio.sleep(0.05)
    flush.cancel()
    busy_executor.set()
    with pytest.raises(asyncio.CancelledError):
        await flush
    assert agent._pending == sampled  # kept for the next try, not counted as appended
    assert agent.stats()["points"] == 0
    store.close()
