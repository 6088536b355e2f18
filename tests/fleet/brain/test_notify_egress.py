"""Webhook SSRF: every non-public address class is refused when a channel is saved and again
when it is sent (a name that resolved public at save and private at send), unless the
operator lists the host; the connection goes to the checked address, Host stays the name.

On SQLite only: the checks are on addresses, before and after resolution, not on SQL; the
channel's rows and deliveries run on both databases in ``test_alerts_notify.py`` and
``test_notify_delivery.py``."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import sqlite_database
from tests.fleet.brain.test_alerts_notify import Receiver, _admin, receiver
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models.alerts import NotificationDelivery
from wrale.fleet.brain.services import notify
from wrale.fleet.brain.services.delivery import deliver_pending
from wrale.fleet.brain.services.egress import EgressPolicy, EgressRefusedError, address_class


@pytest.fixture(params=["sqlite"])
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    """This module's database: SQLite only (see the module's docstring)."""
    async with sqlite_database(tmp_path) as db:
        yield db


__all__ = ["receiver"]  # the fixture, used by name

REFUSED = [
    ("127.0.0.1", "loopback"),
    ("127.255.0.9", "loopback"),
    ("::1", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.5.4", "private"),
    ("192.168.1.1", "private"),
    ("fd12:3456::1", "private"),
    ("169.254.169.254", "link-local (cloud metadata)"),
    ("169.254.10.1", "link-local"),
    ("fe80::1", "link-local"),
    ("224.0.0.251", "multicast"),
    ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("240.0.0.1", "reserved"),
    ("192.0.2.7", "reserved"),
    ("100.64.1.1", "shared (carrier-grade NAT)"),
    ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
    ("::ffff:169.254.169.254", "IPv4-mapped link-local (cloud metadata)"),
    ("::ffff:10.0.0.1", "IPv4-mapped private"),
    ("64:ff9b::a9fe:a9fe", "IPv4-mapped link-local (cloud metadata)"),
]


@pytest.mark.parametrize(("address", "why"), REFUSED)
def test_address_classes(address: str, why: str) -> None:
    assert address_class(ipaddress.ip_address(address)) == why


@pytest.mark.parametrize("address", ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert address_class(ipaddress.ip_address(address)) is None


def _url(address: str) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:8080/hook"


@pytest.mark.parametrize(("address", "why"), REFUSED[::3])
async def test_refused_when_a_channel_is_saved(database: Database, address: str, why: str) -> None:
    p = await _admin(database)
    async with database.session() as s:
        with pytest.raises(EgressRefusedError, match=re.escape(f"is a {why} address")):
            await notify.create_channel(s, p, "c", "webhook", {"url": _url(address)})
        ok = await notify.create_channel(s, p, "ok", "webhook", {"url": "http://93.184.215.14/"})
        with pytest.raises(EgressRefusedError, match="webhook_allowed_hosts"):
            await notify.update_channel(s, p, ok.id, config={"url": _url(address)})


async def test_a_name_is_checked_after_resolution(database: Database) -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return {"meta.example": ["93.184.215.14", "169.254.169.254"]}.get(host, ["1.1.1.1"])

    policy = EgressPolicy(resolver=resolver)
    p = await _admin(database)
    async with database.session() as s:
        with pytest.raises(EgressRefusedError) as err:
            await notify.create_channel(
                s, p, "c", "webhook", {"url": "https://meta.example/x"}, egress=policy
            )
        assert (
            "meta.example (169.254.169.254) is a link-local (cloud metadata)" in err.value.message
        )
        await notify.create_channel(
            s, p, "fine", "webhook", {"url": "https://hooks.example/x"}, egress=policy
        )


async def test_the_operator_allow_list(database: Database) -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["10.0.0.8"]

    p = await _admin(database)
    policy = EgressPolicy(("chat.internal", "127.0.0.1:8080", "[::1]:9000"), resolver)
    async with database.session() as s:
        for url in ("http://chat.internal:1234/", "http://127.0.0.1:8080/", "http://[::1]:9000/"):
            await notify.create_channel(s, p, url[-12:], "webhook", {"url": url}, egress=policy)
        for url in ("http://127.0.0.1:8081/", "http://other.internal/", "http://[::1]:9001/"):
            with pytest.raises(EgressRefusedError):
                await notify.create_channel(s, p, "x", "webhook", {"url": url}, egress=policy)


async def test_a_name_that_turns_private_is_refused_at_send(
    database: Database, receiver: Receiver
) -> None:
    """DNS rebinding: public when the channel was saved, loopback when it is sent."""
    port = receiver.url.split(":")[2].split("/")[0]
    answers = {"localhost": ["93.184.215.14"]}

    async def resolver(host: str, port: int) -> list[str]:
        return answers.get(host, [])

    policy = EgressPolicy(resolver=resolver)
    p = await _admin(database)
    async with database.session() as s:
        ch = await notify.create_channel(
            s, p, "ops", "webhook", {"url": f"http://localhost:{port}/hook"}, egress=policy
        )
        await notify.queue(s, p.tenant_id, [ch.id], "alert.raised", {"a": 1}, 0.0)
    answers["localhost"] = ["127.0.0.1"]
    assert await deliver_pending(database, 0.0, egress=policy) == {
        "delivered": 0,
        "retry": 1,
        "failed": 0,
    }
    assert receiver.requests == []
    async with database.session() as s:
        d = (await s.scalars(select(NotificationDelivery))).one()
    assert d.last_error is not None
    assert "localhost (127.0.0.1) is a loopback address" in d.last_error


async def test_the_connection_goes_to_the_checked_address(
    database: Database, receiver: Receiver
) -> None:
    """The name is resolved once, by the policy; the request keeps the name as its Host."""
    receiver.statuses = []
    port = receiver.url.split(":")[2].split("/")[0]
    asked: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["127.0.0.1"]

    policy = EgressPolicy(("hooks.internal",), resolver)
    p = await _admin(database)
    async with database.session() as s:
        ch = await notify.create_channel(
            s, p, "ops", "webhook", {"url": f"http://hooks.internal:{port}/x"}, egress=policy
        )
        await notify.queue(s, p.tenant_id, [ch.id], "alert.raised", {"a": 1}, 0.0)
    assert (await deliver_pending(database, 0.0, egress=policy))["delivered"] == 1
    [(headers, _)] = receiver.requests
    assert headers["host"] == f"hooks.internal:{port}"
    assert asked == ["hooks.internal", "hooks.internal"]  # saved, then sent
