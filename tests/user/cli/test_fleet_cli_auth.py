"""``wrale login / whoami / logout`` against a real central: the session file (0600), the
refresh of an expired access token, API tokens from the environment, and the error paths."""

from __future__ import annotations

import json
import socket
import time

import jwt
import pytest

from tests.user.cli.conftest import SECRET_KEY, CliCentral
from wrale.user.cli import session

pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


def test_login_whoami_logout(cli: CliCentral) -> None:
    out = cli.login()
    assert "logged in" in out
    assert "admin" in out
    assert cli.session_file.stat().st_mode & 0o777 == 0o600
    stored = json.loads(cli.session_file.read_text())
    assert stored["central_url"] == cli.url
    assert stored["access_token"]
    assert stored["refresh_token"]

    assert "admin" in cli.ok("whoami")
    me = cli.json("whoami")
    assert me["role"] == "admin"
    assert me["name"] == "admin"
    assert me["central_url"] == cli.url

    assert "logged out" in cli.ok("logout")
    assert not cli.session_file.exists()
    r = cli.run("whoami")
    assert r.exit_code == 1
    assert "wrale login" in r.output
    # the refresh token was spent on the server: it cannot bring the session back
    assert "not logged in" in cli.ok("logout")


def test_password_is_prompted_for(cli: CliCentral) -> None:
    r = cli.run("login", "--username", "admin", "--password", "x")
    assert r.exit_code == 2
    assert "--central" in r.output
    out = cli.ok("login", "--central", cli.url, "--username", "admin", input="admin-password-1\n")
    assert "logged in" in out
    # logging in again goes to the same central; the username defaults to admin
    out = cli.ok("login", input="\nadmin-password-1\n")
    assert f"logged in to {cli.url} as admin" in out


def _expire_access_token(cli: CliCentral) -> dict[str, str]:
    stored = json.loads(cli.session_file.read_text())
    claims = jwt.decode(stored["access_token"], SECRET_KEY, algorithms=["HS256"])
    claims["exp"] = int(time.time()) - 60
    stored["access_token"] = jwt.encode(claims, SECRET_KEY, algorithm="HS256")
    cli.session_file.write_text(json.dumps(stored))
    return stored


def test_two_processes_refreshing_at_once(cli: CliCentral) -> None:
    """The second one finds the tokens the first stored instead of spending the refresh
    token again (which the server would refuse)."""
    cli.login()
    _expire_access_token(cli)
    first, second = session.connect(), session.connect()
    with first, second:
        assert first.get("/auth/me")["name"] == "admin"  # refreshes, stores new tokens
        assert second.get("/auth/me")["name"] == "admin"  # picks them up from the file


def test_wrong_password_exits_1_with_message(cli: CliCentral) -> None:
    r = cli.run("login", "--central", cli.url, "--username", "admin", "--password", "nope-nope")
    assert r.exit_code == 1
    assert "wrong username or password" in r.output
    assert "Traceback" not in r.output
    assert not cli.session_file.exists()


def test_unreachable_central_exits_1_with_message(cli: CliCentral) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    r = cli.run("login", "--central", url, "--username", "admin", "--password", "x-password")
    assert r.exit_code == 1
    assert f"cannot reach the central at {url}" in r.output
    r = cli.run("login", "--central", "ftp://example", "--password", "x")
    assert r.exit_code == 2
    assert "http://" in r.output


def test_expired_access_token_is_refreshed(cli: CliCentral) -> None:
    cli.login()
    stored = _expire_access_token(cli)
    assert cli.json("whoami")["name"] == "admin"
    renewed = json.loads(cli.session_file.read_text())
    assert renewed["access_token"] != stored["access_token"]
    assert renewed["refresh_token"] != stored["refresh_token"]  # spent and replaced
    assert cli.session_file.stat().st_mode & 0o777 == 0o600

    # a spent refresh token cannot refresh again: the user is told to log in
    renewed["access_token"] = stored["access_token"]
    renewed["refresh_token"] = stored["refresh_token"]
    cli.session_file.write_text(json.dumps(renewed))
    r = cli.run("whoami")
    assert r.exit_code == 1
    assert "session has expired" in r.output
    assert "wrale login" in r.output


def test_api_token_from_the_environment(cli: CliCentral, monkeypatch: pytest.MonkeyPatch) -> None:
    cli.login()
    created = cli.json("api-tokens", "create", "--name", "ci-bot", "--role", "operator")
    assert created["token"]
    assert created["role"] == "operator"
    listed = cli.json("api-tokens", "list")
    assert [t["name"] for t in listed] == ["ci-bot"]
    assert "token" not in listed[0]
    assert "ci-bot" in cli.ok("api-tokens", "list")

    cli.ok("logout")
    monkeypatch.setenv("WRALE_CENTRAL_URL", cli.url)
    monkeypatch.setenv("WRALE_TOKEN", created["token"])
    me = cli.json("whoami")
    assert me["role"] == "operator"
    assert me["actor_type"] != "user"

    monkeypatch.delenv("WRALE_TOKEN")
    r = cli.run("whoami")  # no login, no token
    assert r.exit_code == 1
    assert "bearer" in r.output.lower()

    cli.login()
    assert "revoked" in cli.ok("api-tokens", "revoke", "ci-bot")
    monkeypatch.setenv("WRALE_TOKEN", created["token"])
    r = cli.run("whoami")
    assert r.exit_code == 1
    assert "revoked" in r.output


def test_viewer_is_refused_with_message(cli: CliCentral) -> None:
    cli.login()
    cli.ok("users", "create", "vera", "--role", "viewer", "--password", "password-123")
    cli.login("vera", "password-123")
    r = cli.run("users", "create", "eve", "--role", "admin", "--password", "password-123")
    assert r.exit_code == 1
    assert "error:" in r.output
    assert "Traceback" not in r.output


def test_logout_when_the_central_is_gone_still_forgets_the_session(cli: CliCentral) -> None:
    cli.login()
    stored = json.loads(cli.session_file.read_text())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        stored["central_url"] = f"http://127.0.0.1:{s.getsockname()[1]}"
    cli.session_file.write_text(json.dumps(stored))
    out = cli.ok("logout")
    assert "cannot reach" in out
    assert "logged out" in out
    assert not cli.session_file.exists()
