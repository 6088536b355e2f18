"""The Enrollment page without a browser: a token's secret shown once with a `wrale enroll`
command that the real CLI parses, field errors (422, nothing created), revoking, what other
roles see, and the live list of devices enrolled through the REST endpoint."""

from __future__ import annotations

import html
import re
import shlex
import time
from typing import Any

import pytest
import typer

from tests.conftest import Central
from tests.user.ui.conftest import Browser, SignIn
from wrale.user.cli.app import app as cli_app

API = "/api/v1"
SECRET = re.compile(r'id="created-secret"[^>]*value="([^"]+)"')
COMMAND = re.compile(r'<textarea id="enroll-command"[^>]*>([^<]*)</textarea>')
POSTS = re.compile(r'<form[^>]*method="post"[^>]*action="([^"]+)"')


def parse_enroll(command: str) -> dict[str, object]:
    """Parse ``command`` with the real ``wrale`` CLI (without running it): its parameters."""
    args = shlex.split(command)
    assert args[:2] == ["wrale", "enroll"], command
    group: Any = typer.main.get_command(cli_app)
    parent = group.make_context("wrale", args[1:])  # parses; nothing is invoked
    enroll = group.get_command(parent, "enroll")
    assert enroll is not None
    ctx = enroll.make_context("enroll", args[2:], parent=parent)  # unknown flags raise
    return dict(ctx.params)


async def test_a_new_token_shows_its_secret_once_and_a_command_the_cli_parses(
    admin_ui: Browser, central: Central
) -> None:
    r = await admin_ui.page("/enrollment")
    assert r.status_code == 200
    assert 'id="token-form"' in r.text
    r = await admin_ui.post(
        "/enrollment/tokens",
        {
            "name": "rack A1 batch",
            "max_uses": "3",
            "expires_in_s": "86400",
            "target_tags": "site=hq, batch:1",
        },
    )
    assert r.status_code == 200, r.text
    assert r.headers["HX-Trigger"] == "enrollment-tokens-changed"
    secret_m = SECRET.search(r.text)
    command_m = COMMAND.search(r.text)
    assert secret_m
    assert command_m
    secret = secret_m.group(1)
    command = html.unescape(command_m.group(1))
    assert secret.startswith("wet_")
    assert "http://central" in command
    assert secret in command
    params = parse_enroll(command)
    assert params["central"] == "http://central"
    assert params["token"] == secret
    assert params["insecure"] is True  # plain http to another host needs it, or it refuses

    # listed without its secret, and the secret is never shown again
    tokens = await admin_ui.fragment("/enrollment/_tokens")
    row = re.search(r'<tr data-token-id="[0-9a-f]+" data-state="active".*?</tr>', tokens.text, re.S)
    assert row
    assert "rack A1 batch" in row.group(0)
    assert "3" in row.group(0)
    assert "site=hq" in row.group(0)
    assert "batch:1" in row.group(0)
    for path in ("/enrollment", "/enrollment?show=all"):
        assert secret not in (await admin_ui.page(path)).text
    assert secret not in tokens.text
    listed = await central.http.get(f"{API}/enrollment-tokens", headers=central.admin)
    (item,) = listed.json()["items"]
    assert item["max_uses"] == 3
    assert item["target_tags"] == ["site=hq", "batch:1"]
    assert item["expires_at"] == pytest.approx(time.time() + 86400, abs=60)

    # without JavaScript the form posts as a page: the secret is on that page, once
    r = await admin_ui.post("/enrollment/tokens", {"name": "no js", "max_uses": "1"}, htmx=False)
    assert r.status_code == 200
    assert "<!doctype html>" in r.text
    m = SECRET.search(r.text)
    assert m
    assert m.group(1) != secret
    assert m.group(1) in r.text


async def test_a_refused_form_keeps_its_values_and_creates_nothing(
    admin_ui: Browser, central: Central
) -> None:
    await admin_ui.page("/enrollment")
    r = await admin_ui.post(
        "/enrollment/tokens",
        {"name": "  ", "max_uses": "0", "expires_in_s": "86400", "target_tags": "ok bad!tag"},
    )
    assert r.status_code == 422
    for name in ("name", "max_uses", "target_tags"):
        assert f'id="{name}-error"' in r.text, name
    assert 'aria-describedby="max_uses-error max_uses-hint"' in r.text
    assert 'value="ok bad!tag"' in r.text
    assert 'value="0"' in r.text
    assert 'id="created-secret"' not in r.text
    r = await admin_ui.post(
        "/enrollment/tokens",
        {"name": "x", "max_uses": "many", "expires_in_s": "12", "target_rack_id": "f" * 32},
    )
    assert r.status_code == 422
    assert 'id="max_uses-error"' in r.text
    assert 'id="expires_in_s-error"' in r.text
    # a rack that does not exist: the service's own refusal, at its field
    r = await admin_ui.post(
        "/enrollment/tokens", {"name": "x", "max_uses": "", "target_rack_id": "f" * 32}
    )
    assert r.status_code == 422
    assert 'id="target_rack_id-error"' in r.text
    listed = await central.http.get(f"{API}/enrollment-tokens", headers=central.admin)
    assert listed.json()["items"] == []


async def test_revoking_a_token_refuses_boards_that_have_not_enrolled_yet(
    admin_ui: Browser, central: Central
) -> None:
    await admin_ui.page("/enrollment")
    r = await admin_ui.post("/enrollment/tokens", {"name": "to revoke", "max_uses": ""})
    assert r.status_code == 200, r.text
    m = SECRET.search(r.text)
    assert m
    secret = m.group(1)
    token_id = re.search(r'id="token-created"[^>]*data-token-id="([0-9a-f]+)"', r.text)
    assert token_id
    page = await admin_ui.page("/enrollment")
    assert f"/enrollment/tokens/{token_id.group(1)}/revoke" in page.text
    r = await admin_ui.post(f"/enrollment/tokens/{token_id.group(1)}/revoke")
    assert r.status_code == 200
    assert 'data-state="revoked"' in r.text
    assert "/revoke" not in r.text  # nothing more to revoke
    r = await central.http.post(f"{API}/enroll", json={"token": secret, "name": "late-board"})
    assert r.status_code == 401
    # the usable list no longer has it; "all" does
    page = await admin_ui.page("/enrollment")
    assert token_id.group(1) not in page.text
    page = await admin_ui.page("/enrollment", show="all")
    assert f'data-token-id="{token_id.group(1)}" data-state="revoked"' in page.text
    # an unknown token is a 404, not a 5xx
    r = await admin_ui.post("/enrollment/tokens/not-an-id/revoke")
    assert r.status_code == 404


async def test_new_devices_appear_in_the_live_list(
    admin_ui: Browser, central: Central, ui_as: SignIn
) -> None:
    page = await admin_ui.page("/enrollment")
    since = re.search(r'hx-get="/enrollment/_devices\?since=([0-9.]+)"', page.text)
    assert since
    assert 'hx-trigger="enrollment-devices-refresh"' in page.text
    created = await central.http.post(
        f"{API}/enrollment-tokens", headers=central.admin, json={"name": "t", "max_uses": 2}
    )
    secret = created.json()["token"]
    for name in ("pi-first", "pi-second"):
        r = await central.http.post(f"{API}/enroll", json={"token": secret, "name": name})
        assert r.status_code == 201, r.text
    r = await admin_ui.fragment("/enrollment/_devices", since=since.group(1))
    assert r.status_code == 200
    rows = re.findall(r'<tr data-device-id="([0-9a-f]+)"( class="new")?>', r.text)
    assert len(rows) == 2
    assert all(new for _, new in rows)
    assert r.text.index("pi-second") < r.text.index("pi-first")  # newest first
    assert "status-unknown" in r.text
    # a viewer watches too, but sees no token, form or action
    viewer = await ui_as("viewer")
    page = await viewer.page("/enrollment")
    assert page.status_code == 200
    assert "pi-second" in page.text
    assert "wrale enroll --central http://central --token &lt;token&gt; --insecure" in page.text
    assert "data-action" not in page.text
    assert [a for a in POSTS.findall(page.text) if a != "/logout"] == []
    assert (await viewer.fragment("/enrollment/_devices")).status_code == 200


async def test_only_admins_manage_tokens(ui_as: SignIn) -> None:
    operator = await ui_as("operator")
    page = await operator.page("/enrollment")
    assert page.status_code == 200
    assert 'id="token-form"' not in page.text
    assert "enroll-tokens" not in page.text
    r = await operator.post("/enrollment/tokens", {"name": "nope"})
    assert r.status_code == 403
    assert (await operator.fragment("/enrollment/_tokens")).status_code == 403
