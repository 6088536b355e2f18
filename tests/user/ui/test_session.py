"""Signing in and out of the dashboard, its cookies, CSRF protection and error pages."""

from __future__ import annotations

import re

import httpx

from tests.conftest import ADMIN_PASSWORD, Central
from tests.user.ui.conftest import Browser, sign_in


def _client(central: Central) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=central.app), base_url="http://central"
    )


async def test_a_page_without_a_session_redirects_to_login_and_back(central: Central) -> None:
    async with _client(central) as http:
        r = await http.get("/?metric=power_w")
        assert r.status_code == 303
        assert r.headers["location"] == "/login?next=/%3Fmetric%3Dpower_w"
        r = await http.get("/", headers={"HX-Request": "true"})
        assert r.headers["HX-Redirect"].startswith("/login")


async def test_login_sets_httponly_samesite_cookies_and_redirects_to_next(central: Central) -> None:
    async with _client(central) as http:
        r = await http.get("/login?next=/alerts")
        token = re.search(r'name="csrf" value="([^"]+)"', r.text)
        assert token
        assert 'value="/alerts"' in r.text
        r = await http.post(
            "/login",
            data={
                "csrf": token.group(1),
                "username": "admin",
                "password": ADMIN_PASSWORD,
                "next": "/alerts",
            },
        )
        assert r.status_code == 303
        assert r.headers["location"] == "/alerts"
        cookies = {c.split("=", 1)[0]: c.lower() for c in r.headers.get_list("set-cookie")}
        assert set(cookies) == {"wrale_session", "wrale_refresh", "wrale_csrf"}
        for value in cookies.values():
            assert "httponly" in value
            assert "samesite=" in value
        assert "samesite=strict" in cookies["wrale_refresh"]


async def test_login_refuses_a_wrong_password_and_a_missing_csrf_token(central: Central) -> None:
    async with _client(central) as http:
        r = await http.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', r.text)
        assert token
        r = await http.post(
            "/login", data={"csrf": token.group(1), "username": "admin", "password": "nope"}
        )
        assert r.status_code == 401
        assert "wrong username or password" in r.text
        r = await http.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD})
        assert r.status_code == 403
        assert "wrale_session" not in r.headers.get("set-cookie", "")


async def test_login_never_redirects_off_the_server(central: Central) -> None:
    async with _client(central) as http:
        r = await http.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', r.text)
        assert token
        r = await http.post(
            "/login",
            data={
                "csrf": token.group(1),
                "username": "admin",
                "password": ADMIN_PASSWORD,
                "next": "//evil.example/x",
            },
        )
        assert r.headers["location"] == "/"


async def test_unsafe_requests_need_the_csrf_token(admin_ui: Browser) -> None:
    r = await admin_ui.http.post("/logout", data={})
    assert r.status_code == 403
    r = await admin_ui.post("/logout", htmx=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/login"
    r = await admin_ui.http.get("/")
    assert r.status_code == 303  # signed out: the refresh token was revoked too


async def test_an_expired_access_cookie_is_renewed_from_the_refresh_cookie(
    central: Central,
) -> None:
    b = await sign_in(central, "admin", ADMIN_PASSWORD)
    b.http.cookies.set("wrale_session", "expired-or-garbage")
    r = await b.page("/")
    assert r.status_code == 200
    assert any(c.startswith("wrale_session=ey") for c in r.headers.get_list("set-cookie"))
    await b.http.aclose()


async def test_unknown_pages_are_html_and_api_errors_stay_json(admin_ui: Browser) -> None:
    r = await admin_ui.page("/no-such-page")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")
    r = await admin_ui.http.get("/api/v1/devices")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"


async def test_the_alert_counter_and_static_files(admin_ui: Browser) -> None:
    r = await admin_ui.http.get("/ui/nav-count")
    assert r.status_code == 200
    assert r.text == "0"
    for path in (
        "/static/wrale.css",
        "/static/wrale.js",
        "/static/vendor/htmx.min.js",
        "/static/vendor/uPlot.iife.min.js",
    ):
        assert (await admin_ui.http.get(path)).status_code == 200, path
