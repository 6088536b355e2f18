"""Login throttling through the API and the dashboard: per address+username and per
address, with back-off (429 + Retry-After) rather than a lockout a stranger could cause;
unknown users cost a password hash; form, schema and column lengths agree."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from argon2 import PasswordHasher

from tests.conftest import ADMIN_PASSWORD, Central

LOGIN = "/api/v1/auth/login"


@pytest.fixture
async def from_address(central: Central) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """Clients of the same app that connect from given addresses."""
    clients: dict[str, httpx.AsyncClient] = {}
    for ip in ("203.0.113.7", "198.51.100.9"):
        transport = httpx.ASGITransport(app=central.app, client=(ip, 40000))
        clients[ip] = httpx.AsyncClient(transport=transport, base_url="http://central")
    yield clients
    for c in clients.values():
        await c.aclose()


async def _login(http: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await http.post(LOGIN, json={"username": username, "password": password})


async def test_guessing_from_one_address_backs_off_that_address_only(
    central: Central, from_address: dict[str, httpx.AsyncClient]
) -> None:
    attacker, colleague = from_address["203.0.113.7"], from_address["198.51.100.9"]
    for _ in range(5):
        r = await _login(attacker, "admin", "wrong-password")
        assert r.status_code == 401
    r = await _login(attacker, "admin", ADMIN_PASSWORD)  # even the right password waits
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "too_many_attempts"
    retry = int(r.headers["Retry-After"])
    assert 0 < retry <= 300
    assert r.json()["error"]["details"]["retry_after_s"] == retry
    # the admin is not locked out: another address signs in
    assert (await _login(colleague, "admin", ADMIN_PASSWORD)).status_code == 200
    denied = await central.http.get(
        "/api/v1/audit?action=auth.login&outcome=denied", headers=central.admin
    )
    assert len(denied.json()["items"]) == 1  # the back-off is recorded once, not per request


async def test_one_address_guessing_many_usernames_hits_the_address_limit(
    central: Central, from_address: dict[str, httpx.AsyncClient]
) -> None:
    state = central.app.state.wrale
    state.auth = dataclasses.replace(state.auth, address_max_failures=8)
    attacker, colleague = from_address["203.0.113.7"], from_address["198.51.100.9"]
    for i in range(8):
        r = await _login(attacker, f"user-{i}", "wrong-password")
        assert r.status_code == 401
    r = await _login(attacker, "someone-else", "wrong-password")
    assert r.status_code == 429
    assert (await _login(colleague, "admin", ADMIN_PASSWORD)).status_code == 200


@pytest.fixture
def hash_checks(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Records every argon2 verification (and still performs it)."""
    calls: list[str] = []
    real = PasswordHasher.verify

    def counting(self: PasswordHasher, hash: str | bytes, password: str | bytes) -> bool:
        calls.append(str(password))
        return real(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", counting)
    return calls


async def test_an_unknown_or_disabled_user_costs_a_password_hash(
    central: Central, hash_checks: list[str]
) -> None:
    r = await _login(central.http, "nobody-here", "some-password-1")
    assert r.status_code == 401
    assert hash_checks == ["some-password-1"]
    r = await central.http.post(
        "/api/v1/users",
        headers=central.admin,
        json={"username": "sleepy", "password": "password-123", "role": "viewer"},
    )
    await central.http.patch(
        f"/api/v1/users/{r.json()['id']}", headers=central.admin, json={"disabled": True}
    )
    hash_checks.clear()
    r = await _login(central.http, "sleepy", "password-123")
    assert r.status_code == 401
    assert hash_checks == ["password-123"]


async def test_lengths_agree_between_form_schema_and_column(central: Central) -> None:
    longest, too_long = "u" * 64, "u" * 65
    r = await central.http.post(
        "/api/v1/users",
        headers=central.admin,
        json={"username": longest, "password": "p" * 256, "role": "viewer"},
    )
    assert r.status_code == 201, r.text
    assert (await _login(central.http, longest, "p" * 256)).status_code == 200
    assert (await _login(central.http, too_long, "p" * 256)).status_code == 422
    assert (await _login(central.http, longest, "p" * 257)).status_code == 422
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=central.app), base_url="http://central"
    ) as browser:
        page = await browser.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf
        assert 'maxlength="64"' in page.text
        assert 'maxlength="256"' in page.text
        form = {"csrf": csrf.group(1), "next": "/"}
        r = await browser.post("/login", data={**form, "username": longest, "password": "p" * 256})
        assert r.status_code == 303
        r = await browser.post("/login", data={**form, "username": too_long, "password": "x" * 10})
        assert r.status_code == 422
        r = await browser.post("/login", data={**form, "username": longest, "password": "p" * 257})
        assert r.status_code == 422


async def test_the_dashboard_login_goes_through_the_same_throttle(
    central: Central, from_address: dict[str, httpx.AsyncClient]
) -> None:
    attacker = from_address["203.0.113.7"]
    for _ in range(5):
        assert (await _login(attacker, "admin", "wrong-password")).status_code == 401
    page = await attacker.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf
    r = await attacker.post(
        "/login",
        data={"csrf": csrf.group(1), "username": "admin", "password": ADMIN_PASSWORD, "next": "/"},
    )
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) > 0
    assert "try again in" in r.text
