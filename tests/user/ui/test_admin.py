"""The Administration pages without a browser: admins only (403 otherwise), users (create
with field errors, change role, disable, delete, the service's refusals), API tokens (the
secret once, revoke) and the audit log's filters and pages."""

from __future__ import annotations

import json
import re
import time

from tests.conftest import Central
from tests.user.ui.conftest import Browser, SignIn
from wrale.fleet.brain.models import AuditEntry

API = "/api/v1"
SECRET = re.compile(r'id="created-secret"[^>]*value="([^"]+)"')
AUDIT_ROW = re.compile(r'<tr data-audit-id="([0-9a-f]+)" data-audit-action="([^"]+)"')


def _user_id(page: str, username: str) -> str:
    m = re.search(rf'<tr data-user-id="([0-9a-f]+)" data-username="{re.escape(username)}"', page)
    assert m, username
    return m.group(1)


async def test_administration_is_for_admins_only(ui_as: SignIn) -> None:
    for role in ("operator", "viewer"):
        b = await ui_as(role)
        for path in ("/admin", "/admin/tokens", "/admin/audit"):
            r = await b.page(path)
            assert r.status_code == 403, (role, path)
            assert r.headers["content-type"].startswith("text/html")
            assert 'href="/admin"' not in r.text  # no Admin link in the navigation either
        r = await b.post("/admin/users", {"username": "x" + role, "password": "p" * 12})
        assert r.status_code == 403
        r = await b.post("/admin/tokens", {"name": "x"})
        assert r.status_code == 403


async def test_creating_users_with_field_errors_kept_at_their_fields(
    admin_ui: Browser, central: Central
) -> None:
    r = await admin_ui.page("/admin")
    assert r.status_code == 200
    assert 'id="user-form"' in r.text
    assert 'data-username="admin"' in r.text
    r = await admin_ui.post(
        "/admin/users", {"username": "carol", "password": "short", "role": "operator"}
    )
    assert r.status_code == 422
    assert 'id="password-error"' in r.text
    assert "10 characters" in r.text
    assert 'aria-invalid="true" aria-describedby="password-error password-hint"' in r.text
    assert 'value="carol"' in r.text
    assert 'value="operator" selected' in r.text
    assert 'value="short"' not in r.text  # a refused password is never echoed
    r = await admin_ui.post(
        "/admin/users", {"username": "admin", "password": "long-enough-1", "role": "viewer"}
    )
    assert r.status_code == 422
    assert 'id="username-error"' in r.text
    assert "taken" in r.text
    r = await admin_ui.post("/admin/users", {"username": "no spaces", "password": "x" * 12})
    assert r.status_code == 422
    assert 'id="username-error"' in r.text
    r = await admin_ui.post(
        "/admin/users", {"username": "carol", "password": "long-enough-1", "role": "operator"}
    )
    assert r.status_code == 200, r.text
    assert r.headers["HX-Redirect"] == "/admin?created=carol"
    page = await admin_ui.page("/admin?created=carol")
    assert "User “carol” created." in page.text
    assert 'data-username="carol" data-role="operator"' in page.text
    await central.login("carol", "long-enough-1")  # the new user can sign in


async def test_changing_roles_disabling_and_deleting_users(
    admin_ui: Browser, central: Central
) -> None:
    await central.user("viewer", "dave")
    page = await admin_ui.page("/admin")
    dave = _user_id(page.text, "dave")
    me = _user_id(page.text, "admin")
    assert f"/admin/users/{me}/delete" not in page.text  # no buttons against yourself
    r = await admin_ui.post(f"/admin/users/{dave}/role", {"role": "operator"})
    assert r.status_code == 200
    assert 'data-username="dave" data-role="operator"' in r.text
    assert json.loads(r.headers["HX-Trigger"])["wrale-notice"] == "dave is now operator."
    user = await central.http.get(f"{API}/users/{dave}", headers=central.admin)
    assert user.json()["role"] == "operator"
    r = await admin_ui.post(f"/admin/users/{dave}/role", {"role": "root"})
    assert r.status_code == 422
    r = await admin_ui.post(f"/admin/users/{dave}/disable")
    assert r.status_code == 200
    assert "user-disabled" in r.text
    assert f"/admin/users/{dave}/enable" in r.text
    r = await central.http.post(
        f"{API}/auth/login", json={"username": "dave", "password": "password-123"}
    )
    assert r.status_code == 401
    r = await admin_ui.post(f"/admin/users/{dave}/enable")
    assert r.status_code == 200
    assert "user-active" in r.text
    # the service's refusals come back as its message (a toast for htmx)
    r = await admin_ui.post(f"/admin/users/{me}/delete")
    assert r.status_code == 409
    assert "cannot delete yourself" in json.loads(r.headers["HX-Trigger"])["wrale-error"]
    r = await admin_ui.post(f"/admin/users/{me}/role", {"role": "viewer"}, htmx=False)
    assert r.status_code == 409
    assert "cannot demote or disable yourself" in r.text
    r = await admin_ui.post(f"/admin/users/{dave}/delete")
    assert r.status_code == 200
    assert r.text == ""
    assert 'data-username="dave"' not in (await admin_ui.page("/admin")).text
    assert (await admin_ui.post(f"/admin/users/{dave}/delete")).status_code == 404


async def test_api_tokens_show_their_secret_once_and_can_be_revoked(
    admin_ui: Browser, central: Central
) -> None:
    r = await admin_ui.page("/admin/tokens")
    assert r.status_code == 200
    assert 'id="api-token-form"' in r.text
    r = await admin_ui.post("/admin/tokens", {"name": "", "role": "viewer", "expires_in_s": "1"})
    assert r.status_code == 422
    assert 'id="name-error"' in r.text
    assert 'id="expires_in_s-error"' in r.text
    r = await admin_ui.post(
        "/admin/tokens", {"name": "exporter", "role": "operator", "expires_in_s": "2592000"}
    )
    assert r.status_code == 200, r.text
    assert r.headers["HX-Trigger"] == "admin-tokens-changed"
    m = SECRET.search(r.text)
    assert m
    assert m.group(1).startswith("wrl_")
    secret = m.group(1)
    bearer = {"Authorization": f"Bearer {secret}"}
    me = await central.http.get(f"{API}/auth/me", headers=bearer)
    assert me.status_code == 200
    assert me.json()["role"] == "operator"
    table = await admin_ui.fragment("/admin/tokens/_table")
    assert secret not in table.text
    assert secret not in (await admin_ui.page("/admin/tokens")).text
    row = re.search(r'<tr data-token-id="([0-9a-f]+)" data-state="active"', table.text)
    assert row
    assert "exporter" in table.text
    assert "by admin" in table.text
    r = await admin_ui.post(f"/admin/tokens/{row.group(1)}/revoke")
    assert r.status_code == 200
    assert 'data-state="revoked"' in r.text
    assert (await central.http.get(f"{API}/auth/me", headers=bearer)).status_code == 401


async def test_the_audit_log_filters_and_pages(admin_ui: Browser, central: Central) -> None:
    await central.user("viewer", "erin")
    r = await central.http.post(
        f"{API}/auth/login", json={"username": "erin", "password": "wrong-password"}
    )
    assert r.status_code == 401
    page = await admin_ui.page("/admin/audit")
    assert page.status_code == 200
    everything = AUDIT_ROW.findall(page.text)
    actions = {a for _, a in everything}
    assert {"user.create", "auth.login"} <= actions

    r = await admin_ui.page("/admin/audit", action="user.")
    rows = AUDIT_ROW.findall(r.text)
    assert rows
    assert all(a.startswith("user.") for _, a in rows)
    assert 'value="user."' in r.text
    r = await admin_ui.page("/admin/audit", outcome="failed")
    rows = AUDIT_ROW.findall(r.text)
    assert [a for _, a in rows] == ["auth.login"]
    assert "erin" in r.text
    r = await admin_ui.page("/admin/audit", actor="erin")
    assert {a for _, a in AUDIT_ROW.findall(r.text)} == {"auth.login"}
    user = re.search(r"resource_type=user&amp;resource_id=([0-9a-f]+)", page.text)
    assert user
    r = await admin_ui.page("/admin/audit", resource_type="user", resource_id=user.group(1))
    assert 0 < len(AUDIT_ROW.findall(r.text)) < len(everything)
    # the details expand to the before/after JSON
    assert "<details>" in page.text
    assert "&#34;username&#34;" in page.text

    # a bad time is refused at its field, with the values kept
    r = await admin_ui.page("/admin/audit", since="yesterday", actor="erin")
    assert r.status_code == 422
    assert 'id="since-error"' in r.text
    assert 'value="erin"' in r.text
    assert AUDIT_ROW.findall(r.text) == []
    r = await admin_ui.page("/admin/audit", since="2030-01-02T00:00", until="2030-01-01T00:00")
    assert r.status_code == 422
    assert 'id="until-error"' in r.text
    future = await admin_ui.page("/admin/audit", since="2099-01-01T00:00")
    assert future.status_code == 200
    assert AUDIT_ROW.findall(future.text) == []

    # server-side pages, newest first, both ways
    me = (await central.http.get(f"{API}/auth/me", headers=central.admin)).json()
    t0 = time.time()
    async with central.db.session() as s:
        for i in range(60):
            s.add(
                AuditEntry(
                    tenant_id=me["tenant_id"],
                    actor_type="system",
                    actor_name="bulk",
                    action=f"test.bulk.{i:02d}",
                    outcome="success",
                    created_at=t0 + i / 1000,
                )
            )
    first = await admin_ui.page("/admin/audit", action="test.bulk")
    rows = [a for _, a in AUDIT_ROW.findall(first.text)]
    assert len(rows) == 50
    assert rows[0] == "test.bulk.59"
    assert rows[-1] == "test.bulk.10"
    older = re.search(r'href="/admin/audit\?([^"]+)" rel="next"', first.text)
    assert older
    assert 'rel="prev"' not in first.text
    second = await admin_ui.page("/admin/audit?" + older.group(1).replace("&amp;", "&"))
    rows2 = [a for _, a in AUDIT_ROW.findall(second.text)]
    assert rows2 == [f"test.bulk.{i:02d}" for i in range(9, -1, -1)]
    assert 'rel="next"' not in second.text
    newer = re.search(r'href="/admin/audit\?([^"]+)" rel="prev"', second.text)
    assert newer
    back = await admin_ui.page("/admin/audit?" + newer.group(1).replace("&amp;", "&"))
    assert [a for _, a in AUDIT_ROW.findall(back.text)] == rows
