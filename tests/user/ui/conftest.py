"""Dashboard tests without a browser: a real app and database, driven by an httpx client
that holds the browser's cookies and sends the page's CSRF token like htmx does.

The pages run on SQLite only: what they read and write goes through the services and
queries that ``tests/fleet/brain`` and ``tests/user/api`` run on both databases, so a
second pass on PostgreSQL would render the same HTML again (tests/README.md)."""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.conftest import ADMIN_PASSWORD, Central, sqlite_database

if TYPE_CHECKING:
    from wrale.fleet.brain.db import Database

_names = itertools.count(1)
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]*)"')


@pytest.fixture(params=["sqlite"])
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    """The page tests' database: SQLite only (the storage is tested on both elsewhere)."""
    async with sqlite_database(tmp_path) as db:
        yield db


@dataclass
class Browser:
    """One signed-in browser session against the in-process central server."""

    http: httpx.AsyncClient
    csrf: str = ""

    async def page(self, path: str, **params: Any) -> httpx.Response:
        """GET a page; remembers its CSRF token for the next actions."""
        r = await self.http.get(path, params=params or None)
        m = CSRF_META.search(r.text)
        if m:
            self.csrf = m.group(1)
        return r

    async def fragment(self, path: str, **params: Any) -> httpx.Response:
        """GET as htmx does (HX-Request), for a partial."""
        return await self.http.get(path, params=params or None, headers={"HX-Request": "true"})

    async def post(
        self, path: str, data: dict[str, Any] | None = None, *, htmx: bool = True
    ) -> httpx.Response:
        """POST a form with the CSRF token, as an htmx request (or a plain form post)."""
        headers = {"HX-Request": "true", "X-CSRF-Token": self.csrf} if htmx else {}
        body = dict(data or {})
        if not htmx:
            body["csrf"] = self.csrf
        return await self.http.post(path, data=body, headers=headers)


SignIn = Callable[[str], Awaitable[Browser]]


async def sign_in(central: Central, username: str, password: str) -> Browser:
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=central.app), base_url="http://central"
    )
    b = Browser(http)
    r = await b.page("/login")
    assert r.status_code == 200, r.text
    token = re.search(r'name="csrf" value="([^"]+)"', r.text)
    assert token
    r = await http.post(
        "/login",
        data={"csrf": token.group(1), "username": username, "password": password, "next": "/"},
    )
    assert r.status_code == 303, r.text
    await b.page("/")
    return b


@pytest.fixture
async def admin_ui(central: Central) -> AsyncIterator[Browser]:
    """The first admin, signed in to the dashboard."""
    b = await sign_in(central, "admin", ADMIN_PASSWORD)
    yield b
    await b.http.aclose()


@pytest.fixture
async def ui_as(central: Central) -> AsyncIterator[SignIn]:
    """``await ui_as("viewer")``: a new user of that role, signed in to the dashboard."""
    opened: list[Browser] = []

    async def make(role: str) -> Browser:
        name = f"ui-{role}-{next(_names)}"
        await central.user(role, name)
        b = await sign_in(central, name, "password-123")
        opened.append(b)
        return b

    yield make
    for b in opened:
        await b.http.aclose()
