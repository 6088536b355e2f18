"""Webhook delivery against a real local HTTP receiver: retries with backoff, the HMAC
signature, giving up after the last attempt, and that a down receiver never raises."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
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
from wrale.shared.errors import InvalidRequestError

LOCAL = EgressPolicy(("127.0.0.1",))  # the operator allows the local test receiver


@dataclass
class Receiver:
    """A tiny HTTP/1.1 server answering each POST with the next status of ``statuses``."""

    statuses: list[int]
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")[1:]
        headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines if ln)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.requests.append((headers, body))
        status = self.statuses.pop(0) if self.statuses else 200
        writer.write(
            f"HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        writer.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver(statuses=[500])
    server = await asyncio.start_server(r.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    r.url = f"http://127.0.0.1:{port}/hook"
    async with server:
        yield r
        server.close()


async def _admin(db: Database) -> Principal:
    async with db.session() as s:
        t = Tenant(name="acme")
        s.add(t)
        await s.flush()
        return Principal(t.id, Role.ADMIN, "user", "u1", "alice")


async def test_webhook_retries_then_delivers_signed(database: Database, receiver: Receiver) -> None:
    p = await _admin(database)
    async with database.session() as s:
        ch = await notify.create_channel(
            s,
            p,
            "ops",
            "webhook",
            {"url": receiver.url, "secret": "s3cret-key", "headers": {"X-Team": "ops"}},
            egress=LOCAL,
        )
        n = await notify.queue(s, p.tenant_id, [ch.id, "nope"], "alert.raised", {"a": 1}, 1000.0)
        assert n == 1
    first = await deliver_pending(database, 1000.0, egress=LOCAL)
    assert first == {"delivered": 0, "retry": 1, "failed": 0}
    async with database.session() as s:
        d = (await s.scalars(select(NotificationDelivery))).one()
        assert (d.status, d.attempts, d.last_error) == ("pending", 1, "HTTP 500")
        assert d.next_attempt_at == 1000.0 + notify.backoff_s(1)
    assert await deliver_pending(database, 1005.0, egress=LOCAL) == {
        "delivered": 0,
        "retry": 0,
        "failed": 0,
    }
    assert (await deliver_pending(database, 1010.0, egress=LOCAL))["delivered"] == 1
    async with database.session() as s:
        d = (await s.scalars(select(NotificationDelivery))).one()
        assert (d.status, d.attempts, d.delivered_at) == ("delivered", 2, 1010.0)
    assert len(receiver.requests) == 2
    headers, body = receiver.requests[1]
    assert json.loads(body) == {"a": 1}
    assert headers["content-type"] == "application/json"
    assert headers["x-team"] == "ops"
    expected = hmac.new(b"s3cret-key", body, hashlib.sha256).hexdigest()
    assert headers["x-wrale-signature"] == f"sha256={expected}"


async def test_gives_up_after_max_attempts(database: Database, receiver: Receiver) -> None:
    receiver.statuses = [503] * 10
    p = await _admin(database)
    async with database.session() as s:
        ch = await notify.create_channel(
            s, p, "ops", "webhook", {"url": receiver.url}, egress=LOCAL
        )
        await notify.queue(s, p.tenant_id, [ch.id], "alert.raised", {"a": 1}, 0.0)
    t = 0.0
    for _ in range(notify.MAX_ATTEMPTS):
        await deliver_pending(database, t, egress=LOCAL)
        t += notify.MAX_BACKOFF_S
    async with database.session() as s:
        d = (await s.scalars(select(NotificationDelivery))).one()
    assert (d.status, d.attempts) == ("failed", notify.MAX_ATTEMPTS)
    assert "x-wrale-signature" not in receiver.requests[0][0]  # no secret, no signature


async def test_unreachable_receiver_is_a_retry_not_an_error(database: Database) -> None:
    p = await _admin(database)
    async with database.session() as s:
        ch = await notify.create_channel(
            s, p, "gone", "webhook", {"url": "http://127.0.0.1:9/x"}, egress=LOCAL
        )
        await notify.queue(s, p.tenant_id, [ch.id], "alert.raised", {}, 0.0)
    assert (await deliver_pending(database, 0.0, egress=LOCAL))["retry"] == 1


async def test_channel_config_validation(database: Database) -> None:
    p = await _admin(database)
    async with database.session() as s:
        for config, message in (
            ({"url": "ftp://x"}, "config.url"),
            ({"url": "http://x", "secret": "short"}, "config.secret"),
            ({"url": "http://x", "headers": {"Content-Type": "x"}}, "set by the server"),
            ({"url": "http://x", "colour": "red"}, "config.colour"),
        ):
            with pytest.raises(InvalidRequestError, match=message):
                await notify.create_channel(s, p, "c", "webhook", config)
        with pytest.raises(InvalidRequestError, match="type"):
            await notify.create_channel(s, p, "c", "pigeon", {})


def test_backoff_grows_and_caps() -> None:
    delays = [notify.backoff_s(n) for n in range(1, 12)]
    assert delays[:3] == [10, 20, 40]
    assert delays == sorted(delays)
    assert max(delays) == notify.MAX_BACKOFF_S
