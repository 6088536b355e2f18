"""Login, tokens, users, roles, tenants and the audit log through the real API."""

from __future__ import annotations

from tests.conftest import ADMIN_PASSWORD, Central


async def test_login_contract_refresh_and_me(central: Central) -> None:
    r = await central.http.post(
        "/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
    )
    body = r.json()
    assert r.status_code == 200
    assert body["token_type"] == "bearer"
    assert body["access_token"]
    me = await central.http.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.json()["role"] == "admin"
    r2 = await central.http.post(
        "/api/v1/auth/refresh", json={"refresh_token": body["refresh_token"]}
    )
    assert r2.status_code == 200
    again = await central.http.post(
        "/api/v1/auth/refresh", json={"refresh_token": body["refresh_token"]}
    )
    assert again.status_code == 401  # a refresh token is spent by its exchange


async def test_wrong_password_then_lockout(central: Central) -> None:
    for _ in range(5):
        r = await central.http.post(
            "/api/v1/auth/login", json={"username": "admin", "password": "wrong-password"}
        )
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "unauthorized"
    r = await central.http.post(
        "/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
    )
    assert r.status_code == 429
    assert "too many failed logins" in r.json()["error"]["message"]
    audit = await central.http.get(
        "/api/v1/audit?action=auth.login&outcome=failed", headers=central.admin
    )
    assert len(audit.json()["items"]) == 5


async def test_roles_users_and_other_tenants(central: Central) -> None:
    viewer = await central.user("viewer")
    r = await central.http.post(
        "/api/v1/users", headers=viewer, json={"username": "nope", "password": "password-123"}
    )
    assert r.status_code == 403
    denied = await central.http.get(
        "/api/v1/audit?action=auth.permission_denied", headers=central.admin
    )
    assert denied.json()["items"][0]["outcome"] == "denied"
    other = await central.other_tenant_admin()
    users = (await central.http.get("/api/v1/users", headers=central.admin)).json()["items"]
    mine = users[0]["id"]
    assert (await central.http.get(f"/api/v1/users/{mine}", headers=other)).status_code == 404
    assert (await central.http.get("/api/v1/users", headers={})).status_code == 401


async def test_api_tokens_scope_and_revoke(central: Central) -> None:
    r = await central.http.post(
        "/api/v1/api-tokens", headers=central.admin, json={"name": "ci", "role": "viewer"}
    )
    assert r.status_code == 201
    token = r.json()
    auth = {"Authorization": f"Bearer {token['token']}"}
    assert (await central.http.get("/api/v1/auth/me", headers=auth)).json()["role"] == "viewer"
    assert (await central.http.get("/api/v1/users", headers=auth)).status_code == 403
    revoked = await central.http.delete(f"/api/v1/api-tokens/{token['id']}", headers=central.admin)
    assert revoked.json()["revoked_at"] is not None
    assert (await central.http.get("/api/v1/auth/me", headers=auth)).status_code == 401


async def test_pagination_and_bad_cursor(central: Central) -> None:
    for _ in range(3):
        await central.user("viewer")
    page1 = (await central.http.get("/api/v1/users?limit=2", headers=central.admin)).json()
    assert len(page1["items"]) == 2
    assert page1["next_cursor"]
    page2 = (
        await central.http.get(
            f"/api/v1/users?limit=2&cursor={page1['next_cursor']}", headers=central.admin
        )
    ).json()
    assert {u["id"] for u in page2["items"]}.isdisjoint({u["id"] for u in page1["items"]})
    bad = await central.http.get("/api/v1/users?cursor=%%%", headers=central.admin)
    assert bad.status_code == 422
