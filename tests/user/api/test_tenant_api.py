"""An organisation's own view (status, quotas, usage) and the platform operator's commands
(create, suspend, activate, quotas) run on the server."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from tests.conftest import Central
from wrale.fleet.brain.services import tenants
from wrale.user.cli.app import app


async def test_tenant_view_rename_and_roles(central: Central) -> None:
    viewer = await central.user("viewer")
    r = await central.http.get("/api/v1/tenant", headers=viewer)
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "active"
    assert body["usage"]["users"] == 2
    assert body["quotas"]["users"] == 100
    denied = await central.http.patch("/api/v1/tenant", headers=viewer, json={"name": "x"})
    assert denied.status_code == 403
    r = await central.http.patch("/api/v1/tenant", headers=central.admin, json={"name": "Acme"})
    assert r.json()["name"] == "Acme"
    audit = await central.http.get("/api/v1/audit?action=tenant.update", headers=central.admin)
    assert audit.json()["items"][0]["after"] == {"name": "Acme"}


async def test_suspension_locks_everyone_out_until_activated(central: Central) -> None:
    token = await central.http.post(
        "/api/v1/api-tokens", headers=central.admin, json={"name": "ci", "role": "viewer"}
    )
    api = {"Authorization": f"Bearer {token.json()['token']}"}
    async with central.db.session() as s:
        tenant = await tenants.find(s, "default")
        await tenants.set_status(s, tenant, "suspended")
    assert (await central.http.get("/api/v1/auth/me", headers=central.admin)).status_code == 401
    assert (await central.http.get("/api/v1/auth/me", headers=api)).status_code == 401
    login = await central.http.post(
        "/api/v1/auth/login", json={"username": "admin", "password": "admin-password-1"}
    )
    assert login.status_code == 401
    async with central.db.session() as s:
        await tenants.set_status(s, await tenants.find(s, "default"), "active")
    assert (await central.http.get("/api/v1/auth/me", headers=api)).status_code == 200


async def test_quota_of_users_is_enforced(central: Central) -> None:
    async with central.db.session() as s:
        tenant = await tenants.find(s, "default")
        await tenants.set_quotas(s, tenant, max_devices=None, max_users=2)
    await central.user("viewer")
    r = await central.http.post(
        "/api/v1/users",
        headers=central.admin,
        json={"username": "third", "password": "password-123"},
    )
    assert r.status_code == 409
    assert "quota" in r.json()["error"]["message"]


def test_platform_commands_on_the_server(tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["central", "--data-dir", str(tmp_path)]
    assert runner.invoke(app, [*base, "migrate"]).exit_code == 0
    made = runner.invoke(
        app, [*base, "tenants", "create", "acme", "--admin", "acme-admin", "--max-devices", "5"]
    )
    assert made.exit_code == 0, made.output
    assert "password:" in made.output
    assert runner.invoke(app, [*base, "tenants", "suspend", "acme"]).exit_code == 0
    listed = runner.invoke(app, [*base, "tenants", "list"])
    assert "acme" in listed.output
    assert "suspended" in listed.output
    again = runner.invoke(app, [*base, "tenants", "create", "acme", "--admin", "other"])
    assert again.exit_code == 1
    bad = runner.invoke(app, [*base, "tenants", "quota", "acme", "--users", "0"])
    assert bad.exit_code == 1
