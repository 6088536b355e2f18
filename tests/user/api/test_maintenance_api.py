"""Maintenance windows through the real API on both databases: operators write, viewers
read, hostile bodies answer 4xx naming the field (never 5xx), another organisation's
window is 404; a board's maintenance status; a reboot posted outside its window waits with
its reason, and an override needs a reason and is audited."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import SQLITE_ONLY, Central

API = "/api/v1"
NIGHTLY = {"name": "nightly", "cron": "0 2 * * *", "duration_s": 3600, "timezone": "Etc/GMT-14"}


async def _device(c: Central) -> str:
    r = await c.http.post(f"{API}/devices", headers=c.admin, json={"name": "edge-9"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_crud_roles_and_tenancy(central: Central) -> None:
    c = central
    viewer = await c.user("viewer")
    r = await c.http.post(f"{API}/maintenance/windows", headers=viewer, json=NIGHTLY)
    assert r.status_code == 403
    r = await c.http.post(
        f"{API}/maintenance/windows",
        headers=c.admin,
        json=NIGHTLY | {"conditions": {"battery_min_pct": 40, "case_closed": True}},
    )
    assert r.status_code == 201, r.text
    w = r.json()
    assert w["conditions"] == {"battery_min_pct": 40.0, "case_closed": True}
    assert w["scope"] == "fleet"
    listed = await c.http.get(f"{API}/maintenance/windows", headers=viewer)
    assert [x["id"] for x in listed.json()] == [w["id"]]
    r = await c.http.patch(
        f"{API}/maintenance/windows/{w['id']}", headers=c.admin, json={"cron": "30 3 * * 6"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["cron"] == "30 3 * * 6"
    other = await c.other_tenant_admin()
    one = f"{API}/maintenance/windows/{w['id']}"
    assert (await c.http.get(one, headers=other)).status_code == 404
    assert (await c.http.get(f"{API}/maintenance/windows", headers=other)).json() == []
    r = await c.http.delete(f"{API}/maintenance/windows/{w['id']}", headers=c.admin)
    assert r.status_code == 204
    assert (await c.http.get(one, headers=viewer)).status_code == 404


@SQLITE_ONLY  # refused before any SQL; the service's run on both (brain/test_maintenance_windows)
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"cron": "0 25 * * *"}, "cron"),
        ({"cron": "0 2 * *"}, "cron"),
        ({"timezone": "Nowhere/Land"}, "timezone"),
        ({"duration_s": 5}, "duration_s"),
        ({"duration_s": "1e999"}, "duration_s"),
        ({"scope": "site", "scope_id": "0" * 32}, "scope_id"),
        ({"scope": "group"}, "scope_id"),
        ({"conditions": {"battery_min_pct": -1}}, "battery_min_pct"),
        ({"conditions": {"warp": True}}, "warp"),
        ({"name": "x" * 500}, "name"),
        ({"extra": 1}, "extra"),
    ],
)
async def test_hostile_bodies_are_4xx_naming_the_field(
    central: Central, body: dict[str, Any], field: str
) -> None:
    r = await central.http.post(
        f"{API}/maintenance/windows", headers=central.admin, json=NIGHTLY | body
    )
    assert 400 <= r.status_code < 500, r.text
    assert field in r.text


async def test_device_status_and_a_waiting_reboot_with_override(central: Central) -> None:
    c = central
    dev = await _device(c)
    r = await c.http.get(f"{API}/devices/{dev}/maintenance", headers=c.admin)
    assert r.json() == {
        "device_id": dev,
        "may_disrupt": True,
        "reason": None,
        "windows": [],
        "next_open": None,
    }
    # a window that never opens soon: 29 February only
    body = NIGHTLY | {"cron": "0 2 29 2 *", "conditions": {"not_on_battery": True}}
    r = await c.http.post(f"{API}/maintenance/windows", headers=c.admin, json=body)
    assert r.status_code == 201, r.text
    r = await c.http.get(f"{API}/devices/{dev}/maintenance", headers=c.admin)
    status = r.json()
    assert status["may_disrupt"] is False
    assert status["reason"].startswith("next window opens ")
    assert status["reason"].endswith(" 02:00 Etc/GMT-14")
    assert status["windows"][0]["name"] == "nightly"
    assert status["next_open"] is not None

    r = await c.http.post(f"{API}/devices/{dev}/commands", headers=c.admin, json={"op": "reboot"})
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "queued"
    assert r.json()["reason"].startswith("waiting for maintenance window: next window opens")

    bad = {"op": "reboot", "override_window": True}
    r = await c.http.post(f"{API}/devices/{dev}/commands", headers=c.admin, json=bad)
    assert r.status_code == 422
    assert "override_reason" in r.text
    ok = bad | {"override_reason": "urgent kernel fix"}
    r = await c.http.post(f"{API}/devices/{dev}/commands", headers=c.admin, json=ok)
    assert r.status_code == 201, r.text
    cmd = r.json()
    assert cmd["reason"] == "maintenance window overridden by admin: urgent kernel fix"
    r = await c.http.get(
        f"{API}/audit", headers=c.admin, params={"action": "command.override_window"}
    )
    assert r.status_code == 200, r.text
    assert [e["resource_id"] for e in r.json()["items"]] == [cmd["id"]]
