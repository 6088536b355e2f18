"""Webhook delivery against real slow receivers on 127.0.0.1: claims are committed before
any I/O, one overall deadline per send, a slow tenant does not delay another, the database
stays writable during a send, and a claim whose sender died is retried."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from sqlalchemy import select

from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Tenant
from wrale.fleet.brain.models.alerts import NotificationDelivery
from wrale.fleet.brain.services import notify
from wrale.fleet.brain.services.delivery import deliver_pending
from wrale.fleet.brain.services.egress import EgressPolicy
from wrale.fleet.brain.services.principal import Principal, Role

LOCAL = EgressPolicy(("127.0.0.1",))  # the operator allows the local test receivers
GUARD_S = 20.0  # bounds a failure (a hang); never reached when the code is right


@dataclass
class HookServer:
    """A webhook receiver on 127.0.0.1: "ok" answers 200 at once; "hang" reads the request
    and never answers; "trickle" sends a status line one byte at a time, forever."""

    mode: str
    trickle_every_s: float = 0.2
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    hits: int = 0
    url: str = ""
    _writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (
                    int(v)
                    for k, _, v in (ln.partition(b":") for ln in head.split(b"\r\n"))
                    if k.strip().lower() == b"content-length"
                ),
                0,
            )
            await reader.readexactly(length)
            self.hits += 1
            self.arrived.set()
            if self.mode == "ok":
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                await writer.drain()
            elif self.mode == "trickle":
                while True:
                    for byte in b"HTTP/1.1 200 OK\r\nx-slow: ":
                        writer.write(bytes([byte]))
                        await writer.drain()
                        await asyncio.sleep(self.trickle_every_s)
            else:
                await asyncio.Event().wait()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def _serve(mode: str) -> AsyncIterator[HookServer]:
    h = HookServer(mode)
    server = await asyncio.start_server(h.handle, "127.0.0.1", 0)
    h.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook"
    yield h
    server.close()
    for w in h._writers:
        w.close()


@pytest.fixture
async def fast() -> AsyncIterator[HookServer]:
    async for h in _serve("ok"):
        yield h


@pytest.fixture
async def hanging() -> AsyncIterator[HookServer]:
    async for h in _serve("hang"):
        yield h


@pytest.fixture
async def trickling() -> AsyncIterator[HookServer]:
    async for h in _serve("trickle"):
        yield h


async def tenant_with_channel(
    db: Database, name: str, url: str, timeout_s: float = 30.0
) -> tuple[Principal, str]:
    async with db.session() as s:
        t = Tenant(name=name)
        s.add(t)
        await s.flush()
        p = Principal(t.id, Role.ADMIN, "user", f"u-{name}", name)
        ch = await notify.create_channel(
            s, p, "hook", "webhook", {"url": url, "timeout_s": timeout_s}, egress=LOCAL
        )
        return p, ch.id


async def enqueue(db: Database, p: Principal, channel_id: str, at: float, n: int = 1) -> None:
    async with db.session() as s:
        for i in range(n):
            await notify.queue(s, p.tenant_id, [channel_id], "alert.raised", {"n": i}, at)


async def deliveries(db: Database, tenant_id: str) -> list[NotificationDelivery]:
    async with db.session() as s:
        stmt = select(NotificationDelivery).where(NotificationDelivery.tenant_id == tenant_id)
        return list((await s.scalars(stmt)).all())


async def until(check: Callable[[], Awaitable[bool]]) -> None:
    """Wait until ``check()`` holds; the guard only bounds a failure."""

    async def loop() -> None:
        # a stored state has no change notification (SQLite): it is read again
        while not await check():  # noqa: ASYNC110
            await asyncio.sleep(0.02)

    await asyncio.wait_for(loop(), GUARD_S)


async def test_a_slow_tenant_does_not_delay_another(
    database: Database, trickling: HookServer, fast: HookServer
) -> None:
    slow_p, slow_ch = await tenant_with_channel(database, "slow", trickling.url)
    fast_p, fast_ch = await tenant_with_channel(database, "fast", fast.url)
    await enqueue(database, slow_p, slow_ch, 900.0, n=6)  # due first, and more of them
    await enqueue(database, fast_p, fast_ch, 1000.0)
    task = asyncio.create_task(deliver_pending(database, 1000.0, egress=LOCAL))
    try:
        await asyncio.wait_for(trickling.arrived.wait(), GUARD_S)

        async def fast_delivered() -> bool:
            return [d.status for d in await deliveries(database, fast_p.tenant_id)] == ["delivered"]

        await until(fast_delivered)  # recorded while the slow receiver still trickles
        assert not task.done()
        slow = await deliveries(database, slow_p.tenant_id)
        in_flight = [d for d in slow if d.status == "sending"]
        assert 1 <= len(in_flight) <= 4  # a bounded number per tenant
        assert all(d.claim_expires_at and d.claim_expires_at > 1000.0 for d in in_flight)
        assert all(d.attempts == 1 for d in in_flight)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_the_database_is_writable_during_a_send(
    database: Database, fast: HookServer, hanging: HookServer
) -> None:
    """One delivery is answered, the next one hangs: nothing written about the first may
    hold the database (SQLite's single write lock) while the second is on the wire."""
    p, answered = await tenant_with_channel(database, "acme", fast.url)
    async with database.session() as s:
        ch = await notify.create_channel(
            s, p, "slow", "webhook", {"url": hanging.url, "timeout_s": 30}, egress=LOCAL
        )
    await enqueue(database, p, answered, 900.0)
    await enqueue(database, p, ch.id, 1000.0)
    task = asyncio.create_task(deliver_pending(database, 1000.0, egress=LOCAL))
    try:
        await asyncio.wait_for(hanging.arrived.wait(), GUARD_S)

        async def write() -> None:
            async with database.session() as s:
                s.add(Tenant(name="another-writer"))

        await asyncio.wait_for(write(), GUARD_S)  # SQLite's write lock is free

        async def recorded() -> bool:
            statuses = sorted(d.status for d in await deliveries(database, p.tenant_id))
            return statuses == ["delivered", "sending"]

        await until(recorded)  # the claim was committed before the request went out
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_one_overall_deadline_per_send(database: Database, trickling: HookServer) -> None:
    """httpx's timeouts are per phase: a receiver trickling a byte at a time would never
    trip them. The send's own deadline does."""
    trickling.trickle_every_s = 0.05
    p, ch = await tenant_with_channel(database, "acme", trickling.url, timeout_s=0.5)
    await enqueue(database, p, ch, 1000.0)
    counts = await asyncio.wait_for(deliver_pending(database, 1000.0, egress=LOCAL), GUARD_S)
    assert counts == {"delivered": 0, "retry": 1, "failed": 0}
    (d,) = await deliveries(database, p.tenant_id)
    assert (d.status, d.attempts, d.last_error) == ("pending", 1, "no answer within 0.5 s")
    assert d.claimed_by is None
    assert d.next_attempt_at == 1000.0 + notify.backoff_s(1)


async def test_an_expired_claim_is_tried_again(database: Database, fast: HookServer) -> None:
    p, ch = await tenant_with_channel(database, "acme", fast.url)
    await enqueue(database, p, ch, 900.0, n=3)
    async with database.session() as s:
        rows = list((await s.scalars(select(NotificationDelivery).order_by("id"))).all())
        dead, held, last = rows
        for d, expires, attempts in ((dead, 999.0, 1), (held, 1050.0, 1), (last, 999.0, 5)):
            d.status, d.claimed_by, d.claim_expires_at = "sending", "a-sender-that-died", expires
            d.attempts = attempts
        ids = (dead.id, held.id, last.id)
    counts = await deliver_pending(database, 1000.0, egress=LOCAL)
    assert counts == {"delivered": 1, "retry": 0, "failed": 0}
    by_id = {d.id: d for d in await deliveries(database, p.tenant_id)}
    assert (by_id[ids[0]].status, by_id[ids[0]].attempts) == ("delivered", 2)
    assert by_id[ids[1]].status == "sending"  # its sender may still be at it
    assert by_id[ids[2]].status == "failed"  # it was its last attempt
    assert fast.hits == 1
