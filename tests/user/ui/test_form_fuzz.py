"""Fuzz every dashboard form: each POST route of the dashboard (found from the app's own
routes) gets random fields (empty, huge, unicode, NaN and infinity strings, negatives,
repeated and unknown fields) from a signed-in admin with a valid CSRF token, against a
real server on SQLite. No answer may be a 5xx, and a 422 must leave the data unchanged.

The budget is fixed (``WRALE_UI_FUZZ_EXAMPLES`` per route, 12 by default) so that the
whole run adds seconds to CI, not minutes."""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.user.api.central_server import ADMIN_PASSWORD, ThreadedCentral, start_central
from wrale.user.ui.web import TEMPLATES

EXAMPLES = int(os.environ.get("WRALE_UI_FUZZ_EXAMPLES", "12"))
SKIP = {"/login", "/logout"}  # signing in and out are not forms on a session's data
# rows that background loops (leases, retention, audit of the requests) change on their own
VOLATILE = ("audit", "lease", "login_throttle", "alembic")
FIELD = re.compile(r'name="([a-zA-Z_][\w\-\[\]]*)"')
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]*)"')
PARAM = re.compile(r"{(\w+)(?::\w+)?}")

NASTY = st.sampled_from(
    [
        "",
        " ",
        "0",
        "-1",
        "-0",
        "1e300",
        "-1e300",
        "1e999",
        "NaN",
        "nan",
        "inf",
        "-Infinity",
        "9" * 400,
        "1.5",
        "true",
        "null",
        "[]",
        "{}",
        '{"a": [[[[[[[[[[1]]]]]]]]]]}',
        "<script>alert(1)</script>",
        "' OR 1=1 --",
        "../../etc/passwd",
        "\x00",
        "\u202e\u0301\U0001f525",
        "a" * 10_000,
        "tag:" + "x" * 300,
    ]
)
VALUE = st.one_of(NASTY, st.text(max_size=60), st.integers().map(str), st.floats().map(str))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedCentral]:
    """A real central server on SQLite (the schema from the models)."""
    central = start_central(Path(tmp_path_factory.mktemp("ui-fuzz")), migrate=False)
    yield central
    central.stop()


class Admin:
    """A signed-in dashboard session on the threaded server (cookies + a CSRF token)."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=60)
        r = self.http.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', r.text)
        assert token
        r = self.http.post(
            "/login",
            data={"csrf": token.group(1), "username": "admin", "password": ADMIN_PASSWORD},
        )
        assert r.status_code == 303, r.text
        self.csrf = ""
        self.page("/")

    def page(self, path: str) -> str:
        r = self.http.get(path)
        m = CSRF_META.search(r.text)
        if m:
            self.csrf = m.group(1)
        return r.text

    def api(self, method: str, path: str, bearer: str, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {bearer}"}
        r = self.http.request(method, f"/api/v1{path}", headers=headers, **kw)
        assert r.status_code < 300, r.text
        return r.json()


def seed(admin: Admin, bearer: str) -> list[str]:
    """Things the forms act on; their ids are what path parameters are drawn from."""
    device = admin.api("POST", "/devices", bearer, json={"name": "pi-fuzz", "model": "Pi 5"})
    user = admin.api(
        "POST",
        "/users",
        bearer,
        json={"username": "fuzz-op", "password": "password-123", "role": "viewer"},
    )
    group = admin.api("POST", "/groups", bearer, json={"name": "fuzz-group"})
    return [device["id"], user["id"], group["id"]]


def field_names(admin: Admin, ids: list[str]) -> list[str]:
    """Every form field the dashboard's templates and rendered forms name."""
    names = set()
    for path in TEMPLATES.rglob("*.html"):
        names |= set(FIELD.findall(path.read_text(encoding="utf-8")))
    for path in (
        "/policies/new",
        "/alerts/rules",
        "/alerts/rules/new",
        "/groups",
        f"/groups/{ids[2]}",
        f"/devices/{ids[0]}",
        "/enrollment",
        "/admin",
        "/admin/tokens",
        "/devices",
    ):
        names |= set(FIELD.findall(admin.page(path)))
    names -= {"csrf", "csrf-token", "htmx-config", "viewport"}
    return sorted(names)


def snapshot(db: Path) -> str:
    """A digest of every row of every table but the volatile ones."""
    h = hashlib.sha256()
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in sorted(t for t in tables if not any(v in t for v in VOLATILE)):
            rows = conn.execute(f'SELECT * FROM "{table}"').fetchall()
            h.update(table.encode() + repr(sorted(map(repr, rows))).encode())
    return h.hexdigest()


def post_routes(app: Any) -> list[str]:
    return sorted(
        r.path
        for r in iter_route_contexts(app.routes)
        if r.methods
        and "POST" in r.methods
        and not r.path.startswith("/api/")
        and r.path not in SKIP
    )


def make_check(
    route: str,
    admin: Admin,
    db: Path,
    path_value: st.SearchStrategy[str],
    fields: st.SearchStrategy[list[tuple[str, str]]],
) -> Any:
    @given(data=st.data())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(data: st.DataObject) -> None:
        path = PARAM.sub(lambda m: quote(data.draw(path_value, label=m.group(1)), safe=""), route)
        body = data.draw(fields, label="fields")
        htmx = data.draw(st.booleans(), label="htmx")
        headers = {"HX-Request": "true", "X-CSRF-Token": admin.csrf} if htmx else {}
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        form = urlencode([*body, *([] if htmx else [("csrf", admin.csrf)])])
        before = snapshot(db)
        r = admin.http.post(path, content=form.encode(), headers=headers)
        assert r.status_code < 500, f"{route} {path!r} {body!r}: {r.status_code} {r.text[:300]}"
        assert r.status_code not in (401, 403), f"{route}: the session was lost ({r.text[:200]})"
        if r.status_code == 422:
            assert snapshot(db) == before, f"{route} {body!r}: a 422 changed the data"

    return check


def test_no_dashboard_form_answers_5xx_and_a_422_saves_nothing(
    server: ThreadedCentral, tmp_path: Path
) -> None:
    admin = Admin(server.url)
    ids = seed(admin, server.login())
    names = field_names(admin, ids)
    routes = post_routes(server.server.config.app)
    assert len(routes) >= 25, routes
    db = Path(str(server.server.config.app.state.wrale.settings.data_dir)) / "central.db"
    path_value = st.one_of(
        st.sampled_from(ids),
        st.text("0123456789abcdef", min_size=32, max_size=32),
        NASTY.filter(lambda v: v.strip(". ") != ""),
    )
    fields = st.lists(
        st.tuples(st.one_of(st.sampled_from(names), st.text(max_size=20)), VALUE), max_size=8
    )
    failures: list[str] = []
    tried = 0

    for route in routes:
        check = make_check(route, admin, db, path_value, fields)
        try:
            check()
        except Exception as exc:  # every route is tried; the failures are reported together
            failures.append(f"{route}: {str(exc)[:1500]}")
        tried += 1
    assert tried == len(routes)
    assert not failures, "\n\n".join(failures)
