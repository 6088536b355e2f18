"""The notification channels page without a browser: admins only; creating an e-mail, a
chat and a webhook channel with each type's fields, errors at their fields (nothing saved),
secrets never shown nor echoed, editing that keeps the stored secrets, the Test button
against a real SMTP server, and deleting."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.conftest import ADMIN_PASSWORD, Central
from tests.fleet.brain.notify_servers import smtp_sink
from tests.user.ui.conftest import Browser, SignIn, sign_in
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models.alerts import NotificationChannel

ROW = re.compile(r'<tr data-channel-id="([0-9a-f]+)" data-type="(\w+)">')


@pytest.fixture
async def local_admin(database: Database, tmp_path: Path) -> AsyncIterator[Browser]:
    """The first admin, signed in to a central whose operator lets notifications reach
    127.0.0.1 (the test's SMTP server)."""
    from wrale.shared.central_settings import CentralSettings
    from wrale.user.api.app import create_app

    settings = CentralSettings(
        data_dir=tmp_path,
        secret_key="test-secret-key-0123456789abcdef",
        admin_password=ADMIN_PASSWORD,
        dev=True,
        webhook_allowed_hosts=["127.0.0.1"],
    )
    app = create_app(settings, database=database, migrate=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://central") as http:
            b = await sign_in(Central(http=http, db=database, app=app), "admin", ADMIN_PASSWORD)
            await b.page("/admin/channels")
            yield b
            await b.http.aclose()


async def _channels(db: Database) -> list[NotificationChannel]:
    async with db.session() as s:
        return list(await s.scalars(select(NotificationChannel).order_by(NotificationChannel.name)))


def _email_form(smtp_port: int, **over: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "name": "on-call mail",
        "type": "email",
        "host": "127.0.0.1",
        "port": str(smtp_port),
        "security": "none",
        "from_addr": "fleet@example.org",
        "to": "ops@example.org\noncall@example.org",
        "subject_prefix": "[fleet]",
        "events": "on",
        "events_min_severity": "MAJOR",
        "events_tags": "field, kiosk",
        "enabled": "on",
    }
    form.update(over)
    return form


async def test_channels_are_for_admins_only(ui_as: SignIn) -> None:
    for role in ("operator", "viewer"):
        b = await ui_as(role)
        assert (await b.page("/admin/channels")).status_code == 403
        r = await b.post("/admin/channels", {"name": "x", "type": "chat"})
        assert r.status_code == 403


async def test_the_type_picks_the_fields(admin_ui: Browser) -> None:
    r = await admin_ui.page("/admin/channels")
    assert r.status_code == 200
    assert 'href="/admin/channels" aria-current="page"' in r.text
    assert 'name="url"' in r.text  # webhook first
    assert 'name="host"' not in r.text
    r = await admin_ui.fragment("/admin/channels/_form", type="email", name="kept")
    assert 'name="host"' in r.text
    assert 'name="from_addr"' in r.text
    assert 'value="kept"' in r.text
    r = await admin_ui.fragment("/admin/channels/_form", type="chat")
    assert 'name="preset"' in r.text
    assert 'name="token"' in r.text


async def test_email_channel_created_tested_edited_deleted(
    local_admin: Browser, database: Database
) -> None:
    b = local_admin
    async with smtp_sink() as sink:
        r = await b.post("/admin/channels", _email_form(sink.port))
        assert r.status_code == 200, r.text
        assert r.headers["HX-Redirect"] == "/admin/channels?created=on-call mail"
        (ch,) = await _channels(database)
        assert ch.type == "email"
        assert ch.config["to"] == ["ops@example.org", "oncall@example.org"]
        assert ch.config["events"] == {
            "min_severity": "MAJOR",
            "selector": {"tags_any": ["field", "kiosk"]},
        }
        page = (await b.page("/admin/channels")).text
        assert ROW.search(page) is not None
        assert "MAJOR and above, tags any of field, kiosk" in page
        r = await b.post(f"/admin/channels/{ch.id}/test")
        assert r.status_code == 200, r.text
        assert 'data-test="delivered"' in r.text
        assert "wrale-notice" in r.headers["HX-Trigger"]
    (mail,) = sink.mails
    assert mail.message["Subject"].startswith("[fleet] [TEST] Wrale Fleet")
    assert mail.rcpt_tos == ["ops@example.org", "oncall@example.org"]

    # the test of a server that is gone says why, in the row
    r = await b.post(f"/admin/channels/{ch.id}/test")
    assert 'data-test="failed"' in r.text
    assert "refused" in r.text.lower()

    # editing: the form shows no secret; saving without one keeps it
    r = await b.post(
        f"/admin/channels/{ch.id}",
        _email_form(sink.port, security="tls", username="fleet", password="SMTP-PASSWORD"),
    )
    assert r.status_code == 200, r.text
    edit = (await b.page(f"/admin/channels/{ch.id}")).text
    assert "SMTP-PASSWORD" not in edit
    assert "stored: leave empty to keep" in edit
    r = await b.post(
        f"/admin/channels/{ch.id}", _email_form(sink.port, security="tls", username="fleet")
    )
    assert r.status_code == 200, r.text
    (ch,) = await _channels(database)
    assert ch.config["password"] == "SMTP-PASSWORD"
    assert ch.config["security"] == "tls"

    r = await b.post(f"/admin/channels/{ch.id}/delete")
    assert r.status_code == 200
    assert await _channels(database) == []


@pytest.mark.parametrize(
    ("over", "field", "words"),
    [
        ({"to": "ops@example.org\r\nBcc: x@evil.example"}, "to", "e-mail address"),
        ({"from_addr": "nobody"}, "from_addr", "e-mail address"),
        ({"host": "10.0.0.9"}, "host", "private address"),
        ({"username": "fleet", "password": "pw"}, "password", "in clear"),
        ({"port": "99999"}, "port", "65535"),
        ({"events_min_severity": "LOUD"}, "events_min_severity", "use one of"),
        ({"name": ""}, "name", "1 to 100 characters"),
    ],
)
async def test_email_errors_at_their_fields(
    admin_ui: Browser, database: Database, over: dict[str, str], field: str, words: str
) -> None:
    r = await admin_ui.post("/admin/channels", _email_form(25, **over))
    assert r.status_code == 422, r.text
    assert f'id="{field}-error"' in r.text
    error = re.search(rf'id="{field}-error" role="alert">([^<]*)<', r.text)
    assert error is not None
    assert words.lower() in error.group(1).lower()
    assert not error.group(1).startswith(("config", "Config"))  # plain words at the field
    assert "pw" not in re.findall(r'name="password"[^>]*value="([^"]*)"', r.text)
    assert await _channels(database) == []


async def test_chat_and_webhook_channels(admin_ui: Browser, database: Database) -> None:
    r = await admin_ui.post(
        "/admin/channels",
        {
            "name": "phones",
            "type": "chat",
            "preset": "ntfy",
            "url": "https://ntfy.example/TOPIC-SECRET",
            "token": "tk_SECRET123",
            "enabled": "on",
        },
    )
    assert r.status_code == 200, r.text
    r = await admin_ui.post(
        "/admin/channels",
        {"name": "team", "type": "chat", "preset": "slack", "url": "https://chat.example/h"},
    )
    assert r.status_code == 200, r.text
    r = await admin_ui.post(
        "/admin/channels",
        {"name": "hook", "type": "webhook", "url": "https://hooks.example/x", "secret": "s" * 10},
    )
    assert r.status_code == 200, r.text
    hook, phones, team = await _channels(database)
    assert (phones.config["preset"], phones.config["token"]) == ("ntfy", "tk_SECRET123")
    assert team.enabled is False  # the box was not ticked
    assert hook.config["secret"] == "s" * 10
    page = (await admin_ui.page("/admin/channels")).text
    for secret in ("TOPIC-SECRET", "tk_SECRET123", "s" * 10):
        assert secret not in page
    assert "https://ntfy.example/…" in page
    assert "rule alerts only" in page
    # a token is only for ntfy: the error is at the token field
    r = await admin_ui.post(
        f"/admin/channels/{team.id}",
        {"name": "team", "preset": "slack", "token": "tk_12345678"},
    )
    assert r.status_code == 422
    assert 'id="token-error"' in r.text


async def test_a_plain_form_post_comes_back_as_the_page(admin_ui: Browser) -> None:
    """Without htmx: a refused form is the whole page with the errors; a saved one a 303."""
    r = await admin_ui.post("/admin/channels", _email_form(25, to="nobody"), htmx=False)
    assert r.status_code == 422
    assert "<h1>Administration</h1>" in r.text
    assert 'id="to-error"' in r.text
    form = {"name": "team", "type": "chat", "preset": "slack", "url": "https://chat.example/h"}
    r = await admin_ui.post("/admin/channels", form, htmx=False)
    assert r.status_code == 303
    assert r.headers["Location"] == "/admin/channels?created=team"
    page = await admin_ui.page("/admin/channels", created="team")
    assert "Channel “team” created." in page.text
