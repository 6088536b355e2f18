"""The chat channel's presets against a real HTTP receiver on 127.0.0.1: ntfy (text body;
Title, Priority, Tags, Click and the access token in headers) and Slack-compatible JSON
(text and blocks, board text escaped); hostile configs refused.

On SQLite only: what is tested here is the request each preset makes; the channel's rows,
the queue, the claims and the retries run on both databases in ``test_notify_delivery.py``,
``test_alerts_notify.py`` and ``test_notify_board_events.py``."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from email.header import decode_header
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import sqlite_database
from tests.fleet.brain.notify_servers import alert_payload, http_sink
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Tenant
from wrale.fleet.brain.models.alerts import NotificationChannel
from wrale.fleet.brain.services import notify
from wrale.fleet.brain.services.delivery import deliver_pending
from wrale.fleet.brain.services.egress import EgressPolicy, EgressRefusedError
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.shared.errors import InvalidRequestError


@pytest.fixture(params=["sqlite"])
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    """This module's database: SQLite only (see the module's docstring)."""
    async with sqlite_database(tmp_path) as db:
        yield db


LOCAL = EgressPolicy(("127.0.0.1",))
PUBLIC_URL = "https://fleet.example.com"
T0 = 1_800_000_000.0


async def _admin(db: Database) -> Principal:
    async with db.session() as s:
        t = Tenant(name="acme")
        s.add(t)
        await s.flush()
        return Principal(t.id, Role.ADMIN, "user", "u1", "alice")


async def _send(db: Database, config: dict[str, Any], payload: dict[str, Any]) -> None:
    p = await _admin(db)
    async with db.session() as s:
        ch = await notify.create_channel(s, p, "chat", "chat", config, egress=LOCAL)
        await notify.queue(s, p.tenant_id, [ch.id], "alert.raised", payload, T0)
    counts = await deliver_pending(db, T0, egress=LOCAL, public_url=PUBLIC_URL)
    assert counts == {"delivered": 1, "retry": 0, "failed": 0}


async def test_ntfy_shape(database: Database) -> None:
    async with http_sink() as sink:
        config = {"preset": "ntfy", "url": f"{sink.url}/fleet-alerts", "token": "tk_AbCdEf123"}
        await _send(database, config, alert_payload())
    ((method, path, headers, body),) = sink.requests
    assert (method, path) == ("POST", "/fleet-alerts")
    assert headers["title"] == "[CRITICAL] rack-a-03: case opened"
    assert headers["priority"] == "5"
    assert headers["tags"] == "rotating_light,wrale"
    assert headers["click"] == f"{PUBLIC_URL}/alerts/{'a' * 32}"
    assert headers["authorization"] == "Bearer tk_AbCdEf123"
    assert headers["content-type"] == "text/plain; charset=utf-8"
    text = body.decode()
    assert text.startswith("CRITICAL alert raised on rack-a-03\nWhat: case opened\n")
    assert "Source: board event TAMPER:case" in text


async def test_ntfy_resolved_and_non_ascii_title(database: Database) -> None:
    payload = alert_payload(
        severity="WARNING", state="cleared", message="rack-a-03: inlet 41 °C", cleared_at=T0
    )
    payload["action"] = "clear"
    async with http_sink() as sink:
        await _send(database, {"preset": "ntfy", "url": f"{sink.url}/t"}, payload)
    ((_, _, headers, _),) = sink.requests
    assert headers["priority"] == "2"
    assert headers["tags"] == "white_check_mark,wrale"
    assert "authorization" not in headers
    ((raw, charset),) = decode_header(headers["title"])  # RFC 2047, as ntfy reads it
    assert isinstance(raw, bytes)
    assert raw.decode(charset or "ascii") == "[RESOLVED WARNING] rack-a-03: inlet 41 °C"


async def test_slack_shape(database: Database) -> None:
    hostile = alert_payload(message="rack-a-03: <!channel> opened & <https://evil.example|x>")
    async with http_sink() as sink:
        await _send(database, {"preset": "slack", "url": f"{sink.url}/services/T/B/X"}, hostile)
    ((method, path, headers, body),) = sink.requests
    assert (method, path) == ("POST", "/services/T/B/X")
    assert headers["content-type"] == "application/json"
    doc = json.loads(body)
    assert set(doc) == {"text", "blocks"}
    assert doc["text"].startswith("[CRITICAL] rack-a-03: &lt;!channel&gt; opened &amp; ")
    assert "<!channel>" not in body.decode()
    assert "<https://evil.example" not in body.decode()
    header, details, context = doc["blocks"]
    assert header["type"] == "section"
    assert header["text"]["type"] == "mrkdwn"
    assert header["text"]["text"].startswith("*[CRITICAL] rack-a-03:")
    assert "Source: board event TAMPER:case" in details["text"]["text"]
    link = context["elements"][0]["text"]
    assert link == f"<{PUBLIC_URL}/alerts/{'a' * 32}|Open in the dashboard>"


async def test_a_test_notification(database: Database) -> None:
    from wrale.fleet.brain.services import notify_route
    from wrale.fleet.brain.services.notify_types import SendContext

    p = await _admin(database)
    async with http_sink() as sink, database.session() as s:
        ch = await notify.create_channel(
            s, p, "team chat", "chat", {"preset": "slack", "url": sink.url}, egress=LOCAL
        )
        async with LOCAL.client() as http:
            error = await notify_route.send_test(s, p, ch.id, SendContext(http, LOCAL))
    assert error is None
    ((_, _, _, body),) = sink.requests
    assert "test notification of channel team chat" in json.loads(body)["text"]


async def test_a_failed_test_says_why(database: Database) -> None:
    from wrale.fleet.brain.services import notify_route
    from wrale.fleet.brain.services.notify_types import SendContext

    p = await _admin(database)
    async with database.session() as s:
        ch = await notify.create_channel(
            s, p, "gone", "chat", {"preset": "ntfy", "url": "http://127.0.0.1:9/t"}, egress=LOCAL
        )
        async with LOCAL.client() as http:
            error = await notify_route.send_test(s, p, ch.id, SendContext(http, LOCAL))
    assert error is not None
    assert "ConnectError" in error
    assert "127.0.0.1:9/t" not in error  # the URL is a secret: never in an error


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"preset": "irc", "url": "https://chat.example/x"}, "config.preset"),
        (
            {"preset": "slack", "url": "https://chat.example/x", "token": "tk_12345678"},
            "config.token",
        ),
        (
            {"preset": "ntfy", "url": "https://ntfy.example/x", "token": "tk 1234\r\nX: y"},
            "config.token",
        ),
        ({"preset": "ntfy", "url": "file:///etc/passwd"}, "config.url"),
        ({"preset": "ntfy"}, "config.url"),
        (
            {"preset": "ntfy", "url": "https://ntfy.example/x", "headers": {"A": "b"}},
            "config.headers",
        ),
    ],
)
async def test_hostile_chat_configs(database: Database, config: dict[str, Any], field: str) -> None:
    p = await _admin(database)
    async with database.session() as s:
        with pytest.raises(InvalidRequestError) as caught:
            await notify.create_channel(s, p, "c", "chat", config, egress=LOCAL)
    assert caught.value.details["field"] == field, caught.value.message


async def test_an_internal_chat_url_is_refused(database: Database) -> None:
    p = await _admin(database)
    async with database.session() as s:
        with pytest.raises(EgressRefusedError, match="is a private address"):
            await notify.create_channel(
                s, p, "c", "chat", {"preset": "ntfy", "url": "http://10.0.0.8/t"}
            )


async def test_the_token_is_kept_and_never_shown(database: Database) -> None:
    p = await _admin(database)
    async with database.session() as s:
        ch = await notify.create_channel(
            s,
            p,
            "c",
            "chat",
            {"preset": "ntfy", "url": "https://ntfy.example/secret-topic", "token": "tk_SECRET1"},
            egress=EgressPolicy(("ntfy.example",)),
        )
        view = notify.channel_view(ch)
        assert view["config"]["has_token"] is True
        assert view["config"]["url"] == "https://ntfy.example/…"
        assert "tk_SECRET1" not in repr(view)
        assert "secret-topic" not in repr(view)
        await notify.update_channel(
            s, p, ch.id, config={"preset": "ntfy", "timeout_s": 9}, egress=LOCAL
        )
        stored = await s.scalar(select(NotificationChannel).where(NotificationChannel.id == ch.id))
        assert stored is not None
        assert stored.config["token"] == "tk_SECRET1"
        assert stored.config["url"] == "https://ntfy.example/secret-topic"
        assert stored.config["timeout_s"] == 9
        with pytest.raises(InvalidRequestError) as caught:
            await notify.update_channel(
                s,
                p,
                ch.id,
                config={"preset": "ntfy", "url": "http://127.0.0.1:8/other"},
                egress=LOCAL,
            )
        assert caught.value.details["field"] == "config.token"


def test_rfc2047_roundtrip_helper() -> None:
    """The title header is 7-bit: non-ASCII goes as RFC 2047 base64 words."""
    from wrale.fleet.brain.services.notify_chat import _header_text

    encoded = _header_text("41 °C")
    assert encoded.startswith("=?utf-8?b?")
    assert base64.b64decode(encoded[10:-2]).decode() == "41 °C"
    assert _header_text("plain") == "plain"
