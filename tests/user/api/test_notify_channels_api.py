"""E-mail and chat channels through the API, on SQLite and PostgreSQL: created, listed and
changed with their secrets (SMTP password, ntfy token, URL) never shown, not even in the
audit log; bad configs are a 422 naming the field; the test endpoint sends one real
notification (a local SMTP server, a local HTTP receiver) and says why when it cannot."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_PASSWORD, SQLITE_ONLY, Central
from tests.fleet.brain.notify_servers import free_port, http_sink, smtp_sink
from wrale.fleet.brain.db import Database
from wrale.shared.central_settings import CentralSettings

API = "/api/v1"
PUBLIC_URL = "https://fleet.example.com"
HAS_PUBLIC_URL = "public_url" in CentralSettings.model_fields  # the dashboard's address


@pytest.fixture
async def central_local(database: Database, tmp_path: Path) -> AsyncIterator[Central]:
    """The central API whose operator lets notifications reach 127.0.0.1 (the test's
    receivers) and who set the dashboard's public URL."""
    from wrale.user.api.app import create_app

    settings = CentralSettings(
        data_dir=tmp_path,
        secret_key="test-secret-key-0123456789abcdef",
        admin_password=ADMIN_PASSWORD,
        dev=True,
        webhook_allowed_hosts=["127.0.0.1"],
        **({"public_url": PUBLIC_URL} if HAS_PUBLIC_URL else {}),
    )
    app = create_app(settings, database=database, migrate=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://central") as http:
            c = Central(http=http, db=database, app=app)
            c.admin = await c.login("admin", ADMIN_PASSWORD)
            yield c


def _email(port: int, **over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "from_addr": "fleet@example.org",
        "to": ["ops@example.org"],
    }
    cfg.update(over)
    return cfg


async def test_email_channel_test_endpoint(central_local: Central) -> None:
    c = central_local
    async with smtp_sink() as sink:
        body = {"name": "mail", "type": "email", "config": _email(sink.port)}
        r = await c.http.post(f"{API}/notification-channels", headers=c.admin, json=body)
        assert r.status_code == 201, r.text
        ch = r.json()
        assert ch["type"] == "email"
        assert ch["config"]["to"] == ["ops@example.org"]
        assert ch["config"]["has_password"] is False
        assert ch["config"]["events"] is None
        r = await c.http.post(
            f"{API}/notification-channels/{ch['id']}/test", headers=c.admin, json={}
        )
        assert r.status_code == 200, r.text
        assert r.json() == {"delivered": True, "error": None}
    (mail,) = sink.mails
    assert mail.rcpt_tos == ["ops@example.org"]
    assert mail.message["Subject"] == "[TEST] Wrale Fleet: test notification of channel mail"
    link = f"{PUBLIC_URL}/alerts" if HAS_PUBLIC_URL else "/alerts"
    assert f"Dashboard: {link}\r\n" in mail.message.get_content()  # CRLF on the wire
    audit = (await c.http.get(f"{API}/audit", headers=c.admin)).json()
    assert "notification_channel.test" in [e["action"] for e in audit["items"]]


async def test_a_failing_test_says_why(central_local: Central) -> None:
    c = central_local
    body = {"name": "mail", "type": "email", "config": _email(free_port())}
    r = await c.http.post(f"{API}/notification-channels", headers=c.admin, json=body)
    assert r.status_code == 201, r.text
    r = await c.http.post(f"{API}/notification-channels/{r.json()['id']}/test", headers=c.admin)
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["delivered"] is False
    assert "refused" in result["error"].lower()


async def test_chat_presets_through_the_api(central_local: Central) -> None:
    c = central_local
    async with http_sink() as sink:
        for preset in ("ntfy", "slack"):
            body = {
                "name": preset,
                "type": "chat",
                "config": {"preset": preset, "url": f"{sink.url}/{preset}-TOPIC-SECRET"},
            }
            r = await c.http.post(f"{API}/notification-channels", headers=c.admin, json=body)
            assert r.status_code == 201, r.text
            assert "TOPIC-SECRET" not in r.text
            r = await c.http.post(
                f"{API}/notification-channels/{r.json()['id']}/test", headers=c.admin
            )
            assert r.json() == {"delivered": True, "error": None}, r.text
    (ntfy, slack) = sink.requests
    assert ntfy[1] == "/ntfy-TOPIC-SECRET"
    assert ntfy[2]["title"].startswith("[TEST] Wrale Fleet")
    assert slack[1] == "/slack-TOPIC-SECRET"
    assert json.loads(slack[3])["text"].startswith("[TEST] Wrale Fleet")


async def test_secrets_are_never_shown(central: Central) -> None:
    cfg = _email(
        587,
        host="smtp.example.org",
        security="starttls",
        username="fleet",
        password="SMTP-PASSWORD",
        events={"min_severity": "MAJOR", "selector": {"tags_any": ["field"]}},
    )
    r = await central.http.post(
        f"{API}/notification-channels",
        headers=central.admin,
        json={"name": "mail", "type": "email", "config": cfg},
    )
    assert r.status_code == 201, r.text
    ch = r.json()
    assert ch["config"]["has_password"] is True
    assert ch["config"]["username"] == "fleet"
    assert ch["config"]["events"] == {"min_severity": "MAJOR", "selector": {"tags_any": ["field"]}}
    url = f"{API}/notification-channels/{ch['id']}"
    kept = {k: v for k, v in cfg.items() if k != "password"} | {"to": ["b@example.org"]}
    r = await central.http.patch(url, headers=central.admin, json={"config": kept})
    assert r.status_code == 200, r.text
    assert r.json()["config"]["has_password"] is True
    moved = kept | {"host": "smtp2.example.org"}
    r = await central.http.patch(url, headers=central.admin, json={"config": moved})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"]["field"] == "config.password"
    seen = [
        (await central.http.get(url, headers=central.admin)).text,
        (await central.http.get(f"{API}/notification-channels", headers=central.admin)).text,
        (await central.http.get(f"{API}/audit", headers=central.admin)).text,
        json.dumps(ch),
    ]
    assert all("SMTP-PASSWORD" not in text for text in seen)


@SQLITE_ONLY  # refused before any SQL; channels' SQL runs on both (test_alerts_api, brain/notify)
@pytest.mark.parametrize(
    ("type_", "config", "field"),
    [
        ("email", _email(25, to=["ops@example.org\r\nBcc: x@evil.example"]), "config.to.0"),
        ("email", _email(25, from_addr="nobody"), "config.from_addr"),
        ("email", _email(25, host="10.0.0.7"), "config.host"),
        ("email", _email(25, username="u", password="p"), "config.password"),
        ("email", _email(25, events={"min_severity": "LOUD"}), "config.events.min_severity"),
        ("chat", {"preset": "teams", "url": "https://chat.example/x"}, "config.preset"),
        ("chat", {"preset": "ntfy", "url": "http://127.0.0.1/t"}, "config.url"),
        (
            "chat",
            {"preset": "slack", "url": "https://c.example/x", "token": "t0ken123"},
            "config.token",
        ),
    ],
)
async def test_bad_configs_are_a_422_with_the_field(
    central: Central, type_: str, config: dict[str, Any], field: str
) -> None:
    body = {"name": "x", "type": type_, "config": config}
    r = await central.http.post(f"{API}/notification-channels", headers=central.admin, json=body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["details"]["field"] == field
    assert error["message"].startswith(f"{field}: ")


async def test_an_unknown_type_is_a_422(central: Central) -> None:
    body = {"name": "x", "type": "pager", "config": {}}
    r = await central.http.post(f"{API}/notification-channels", headers=central.admin, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["message"].startswith("type: ")


async def test_an_events_selector_names_only_own_places(central: Central) -> None:
    cfg = _email(25, host="smtp.example.org", events={"selector": {"rack_id": "r" * 32}})
    body = {"name": "x", "type": "email", "config": cfg}
    r = await central.http.post(f"{API}/notification-channels", headers=central.admin, json=body)
    assert r.status_code == 404, r.text
