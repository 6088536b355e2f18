"""The ``public_url`` setting: validated as an http(s) URL (env ``WRALE_PUBLIC_URL`` and
``wrale central --public-url``), and used instead of the browser's address by every command
the dashboard prints (the enrollment command and the API token example)."""

from __future__ import annotations

import html
import re

import pytest

from tests.conftest import Central
from tests.user.ui.conftest import Browser, SignIn
from tests.user.ui.test_enrollment import COMMAND, parse_enroll
from wrale.shared.central_settings import CentralSettings
from wrale.shared.config import load_settings
from wrale.shared.errors import ConfigError

PUBLIC = "https://fleet.example.com/wrale"


def test_the_setting_is_an_http_url_from_env_or_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    assert CentralSettings().public_url is None
    assert CentralSettings(public_url=PUBLIC + "/").public_url == PUBLIC  # one form
    assert CentralSettings(public_url="  ").public_url is None
    monkeypatch.setenv("WRALE_PUBLIC_URL", "http://10.0.0.5:8080")
    env = load_settings(CentralSettings, flags={})
    assert env.public_url == "http://10.0.0.5:8080"
    flag = load_settings(CentralSettings, flags={"public_url": PUBLIC})
    assert flag.public_url == PUBLIC  # the flag wins over the environment
    for bad in ("fleet.example.com", "ftp://fleet", "https://", "https://u:p@h", "http://h?x=1"):
        monkeypatch.setenv("WRALE_PUBLIC_URL", bad)
        with pytest.raises(ConfigError) as err:
            load_settings(CentralSettings, flags={})
        assert "public_url" in err.value.message
    monkeypatch.setenv("WRALE_PUBLIC_URL", "http://h:99999")
    with pytest.raises(ConfigError, match="port"):
        load_settings(CentralSettings, flags={})


def test_wrale_central_has_the_flag() -> None:
    from typer.testing import CliRunner

    from wrale.user.cli.app import app

    out = CliRunner().invoke(app, ["central", "--help"], env={"COLUMNS": "200"})
    assert out.exit_code == 0
    assert "--public-url" in out.output
    bad = CliRunner().invoke(app, ["central", "--public-url", "nope"], env={"COLUMNS": "200"})
    assert bad.exit_code == 2
    assert "public_url" in bad.output


def _set_public(central: Central, url: str | None) -> None:
    state = central.app.state.wrale
    state.settings = state.settings.model_copy(update={"public_url": url})


async def test_printed_commands_use_the_public_url(
    central: Central, admin_ui: Browser, ui_as: SignIn
) -> None:
    viewer = await ui_as("viewer")
    # without it: the address the browser came by
    page = (await viewer.page("/enrollment")).text
    assert "wrale enroll --central http://central --token &lt;token&gt; --insecure" in page
    _set_public(central, PUBLIC)
    page = (await viewer.page("/enrollment")).text
    assert f"wrale enroll --central {PUBLIC} --token &lt;token&gt;</code>" in page
    assert "http://central" not in page
    # the command a new enrollment token comes with
    r = await admin_ui.post("/enrollment/tokens", {"name": "behind proxy", "max_uses": "1"})
    assert r.status_code == 200, r.text
    m = COMMAND.search(r.text)
    assert m
    params = parse_enroll(html.unescape(m.group(1)))
    assert params["central"] == PUBLIC
    assert params["insecure"] is False  # https: no --insecure
    # the API token's example
    r = await admin_ui.post(
        "/admin/tokens", {"name": "exporter", "role": "viewer", "expires_in_s": "86400"}
    )
    assert r.status_code == 200, r.text
    assert f"{PUBLIC}/api/v1/auth/me" in r.text
    assert "http://central" not in r.text
    # a plain-http public address to another machine still needs --insecure
    _set_public(central, "http://10.0.0.5:8080")
    page = (await viewer.page("/enrollment")).text
    assert re.search(r"--central http://10\.0\.0\.5:8080 --token &lt;token&gt; --insecure", page)
