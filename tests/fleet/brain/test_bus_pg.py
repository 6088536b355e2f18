"""The bus across replicas on the real PostgreSQL: what one replica publishes reaches the
other's subscribers and remote listeners (never its own twice), large events arrive
trimmed, a foreign notification is ignored, and a dropped listener reconnects."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.conftest import PG_ADMIN_DSN, _pg_url
from wrale.fleet.brain.bus import BusEvent, EventBus
from wrale.fleet.brain.bus_pg import CHANNEL, PgRelay, start_relay

pytestmark = pytest.mark.postgres

_n = iter(range(1_000_000))


@pytest.fixture
async def pg_url(pg_template: str) -> AsyncIterator[str]:
    name = f"wrale_bus_{os.getpid()}_{next(_n)}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    yield _pg_url(name)
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


@pytest.fixture
async def pair(pg_url: str) -> AsyncIterator[tuple[EventBus, PgRelay, EventBus, PgRelay]]:
    a, b = EventBus("replica-a"), EventBus("replica-b")
    ra, rb = PgRelay(a, pg_url), PgRelay(b, pg_url)
    await ra.start()
    await rb.start()
    await asyncio.wait_for(asyncio.gather(ra.connected.wait(), rb.connected.wait()), 10)
    yield a, ra, b, rb
    await ra.stop()
    await rb.stop()


async def next_event(queue: asyncio.Queue[BusEvent]) -> BusEvent:
    return await asyncio.wait_for(queue.get(), 5.0)


async def test_an_event_crosses_to_the_other_replica_once_and_not_back(
    pair: tuple[EventBus, PgRelay, EventBus, PgRelay],
) -> None:
    a, ra, b, _ = pair
    async with a.subscribe("t1") as on_a, b.subscribe("t1") as on_b, b.subscribe("t2") as other:
        a.publish("t1", "command.queued", {"device_id": "d1", "command_id": "c1"})
        got = await next_event(on_b)
        assert (got.kind, got.data, got.remote) == (
            "command.queued",
            {"device_id": "d1", "command_id": "c1"},
            True,
        )
        assert (await next_event(on_a)).remote is False  # delivered here when published
        await asyncio.sleep(0.5)  # time for an echo to come back, if it did
        assert on_a.empty()
        assert on_b.empty()
        assert other.empty()
        assert ra.stats.sent == 1


async def test_remote_listeners_get_it_local_only_ones_do_not(
    pair: tuple[EventBus, PgRelay, EventBus, PgRelay],
) -> None:
    a, _, b, _ = pair
    hub: list[BusEvent] = []
    accounts: list[BusEvent] = []
    b.listen(["device.status"], hub.append, remote=True)
    b.listen(["device.status"], accounts.append)
    async with b.subscribe("t1") as on_b:
        a.publish("t1", "device.status", {"device_id": "d1", "status": "quarantined"})
        await next_event(on_b)
    assert [e.data["status"] for e in hub] == ["quarantined"]
    assert accounts == []


async def test_a_burst_arrives_whole_and_in_order(
    pair: tuple[EventBus, PgRelay, EventBus, PgRelay],
) -> None:
    a, ra, b, rb = pair
    async with b.subscribe("t1") as on_b:
        for i in range(800):
            a.publish("t1", "telemetry.summary", {"device_id": f"d{i % 7}", "seq": i})
        got = [(await next_event(on_b)).data["seq"] for _ in range(800)]
    assert got == list(range(800))
    assert rb.stats.missed == 0
    assert ra.stats.dropped == 0


async def test_a_large_event_arrives_trimmed_to_its_ids(
    pair: tuple[EventBus, PgRelay, EventBus, PgRelay],
) -> None:
    a, _, b, _ = pair
    async with b.subscribe("t1") as on_b:
        a.publish("t1", "device.enrolled", {"id": "d1", "status": "online", "doc": "x" * 50_000})
        got = await next_event(on_b)
    assert got.data == {"trimmed": True, "id": "d1", "status": "online"}


async def test_a_foreign_notification_is_counted_and_ignored(
    pg_url: str, pair: tuple[EventBus, PgRelay, EventBus, PgRelay]
) -> None:
    a, _, b, rb = pair
    conn = await asyncpg.connect(pg_url.replace("+asyncpg", ""))
    try:
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, "not ours")
    finally:
        await conn.close()
    async with b.subscribe("t1") as on_b:
        a.publish("t1", "alert.raised", {"id": "a1"})
        assert (await next_event(on_b)).data == {"id": "a1"}
    assert rb.stats.malformed == 1


async def test_the_listener_reconnects_after_its_connection_is_killed(
    pg_url: str, pair: tuple[EventBus, PgRelay, EventBus, PgRelay]
) -> None:
    a, _, b, rb = pair
    conn = await asyncpg.connect(pg_url.replace("+asyncpg", ""))
    try:
        pid = rb._conn.get_server_pid()
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await conn.close()

    async def relistened() -> None:
        while rb.stats.connects < 2 or not rb.connected.is_set():  # noqa: ASYNC110 (a count)
            await asyncio.sleep(0.05)

    await asyncio.wait_for(relistened(), 10)
    async with b.subscribe("t1") as on_b:
        a.publish("t1", "device.status", {"device_id": "d1", "status": "online"})
        assert (await next_event(on_b)).data["status"] == "online"


async def test_what_a_replica_publishes_while_its_connection_drops_goes_out_after(
    pg_url: str, pair: tuple[EventBus, PgRelay, EventBus, PgRelay]
) -> None:
    a, ra, b, _ = pair
    async with b.subscribe("t1") as on_b:
        conn = await asyncpg.connect(pg_url.replace("+asyncpg", ""))
        try:
            pid = ra._conn.get_server_pid()
            assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await conn.close()
        for i in range(3):  # the sender's connection is dead or about to be noticed dead
            a.publish("t1", "command.queued", {"device_id": "d1", "n": i})
        got = [(await asyncio.wait_for(on_b.get(), 10)).data["n"] for _ in range(3)]
    assert got == [0, 1, 2]
    assert ra.stats.connects == 2


async def test_stop_ends_the_relay_even_as_an_event_wakes_it(pg_url: str) -> None:
    """An event offered in the very turn the relay is stopped: the cancellation is not lost
    (with ``asyncio.wait_for`` on Python 3.11 it was, and ``stop`` waited for ever)."""
    bus = EventBus("replica-a")
    relay = PgRelay(bus, pg_url)
    await relay.start()
    await asyncio.wait_for(relay.connected.wait(), 10)
    await asyncio.sleep(0.05)  # the pump waits for its wake-up
    task = relay._task
    assert task is not None
    bus.publish("t1", "device.status", {"device_id": "d1"})  # sets the wake-up ...
    stopping = asyncio.ensure_future(relay.stop())  # ... and stop's cancel comes next turn
    done, _ = await asyncio.wait({stopping}, timeout=5)  # milliseconds when it works
    if stopping not in done:  # the relay swallowed the cancel: free it, then fail
        task.cancel()
        await stopping
    assert stopping in done, "stop() was still waiting for the relay task after 5 s"
    assert task.cancelled()


async def test_publish_never_waits_while_the_database_is_unreachable() -> None:
    bus = EventBus()
    relay = await start_relay(bus, "postgresql+asyncpg://nobody@127.0.0.1:1/none")
    assert relay is not None
    try:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for i in range(20_000):
            bus.publish("t1", "telemetry.summary", {"seq": i})
        assert loop.time() - t0 < 2.0
        assert relay.stats.dropped == 10_000  # the outbox keeps the newest OUTBOX_MAX
    finally:
        await relay.stop()


async def test_sqlite_has_no_relay() -> None:
    assert await start_relay(EventBus(), "sqlite+aiosqlite:///x.db") is None
