"""Maintenance rules and tasks through the real API on both databases: operators write,
viewers read, a 422 names the field (never 5xx), another organisation's rule and task are
404; a rule's task listed with its board, merged into the maintenance queue as an item of
kind "task" beside the wear fields, done with a note (409 the second time)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.conftest import SQLITE_ONLY, Central
from tests.fleet.brain.rules_kit import minutes
from wrale.fleet.brain.services.maintenance.rules_runner import evaluate_all

API = "/api/v1"
HOT = {"metric": "cpu_temp_c", "op": ">", "value": 75, "for_s": 3600}
RULE = {"name": "hot boards", "title": "clean the heatsink", "condition": {"all": [HOT]}}


async def test_crud_roles_and_tenancy(central: Central) -> None:
    c = central
    viewer = await c.user("viewer")
    operator = await c.user("operator")
    r = await c.http.post(f"{API}/maintenance/rules", headers=viewer, json=RULE)
    assert r.status_code == 403
    r = await c.http.post(f"{API}/maintenance/rules", headers=operator, json=RULE)
    assert r.status_code == 201, r.text
    rule = r.json()
    assert (rule["scope"], rule["due_in_s"], rule["enabled"]) == ("fleet", 7 * 86_400.0, True)
    assert rule["condition"] == {"all": [{**HOT, "value": 75.0, "for_s": 3600.0}]}
    one = f"{API}/maintenance/rules/{rule['id']}"
    assert [
        x["id"] for x in (await c.http.get(f"{API}/maintenance/rules", headers=viewer)).json()
    ] == [rule["id"]]
    assert (await c.http.get(one, headers=viewer)).json()["title"] == "clean the heatsink"
    assert (await c.http.patch(one, headers=viewer, json={"enabled": False})).status_code == 403
    r = await c.http.patch(one, headers=operator, json={"due_in_s": 86_400, "enabled": False})
    assert r.status_code == 200, r.text
    assert (r.json()["due_in_s"], r.json()["enabled"]) == (86_400.0, False)
    other = await c.other_tenant_admin()
    assert (await c.http.get(one, headers=other)).status_code == 404
    assert (await c.http.patch(one, headers=other, json={"enabled": True})).status_code == 404
    assert (await c.http.delete(one, headers=other)).status_code == 404
    assert (await c.http.get(f"{API}/maintenance/rules", headers=other)).json() == []
    assert (await c.http.delete(one, headers=viewer)).status_code == 403
    assert (await c.http.delete(one, headers=operator)).status_code == 204
    assert (await c.http.get(one, headers=viewer)).status_code == 404


@SQLITE_ONLY  # refused before any SQL; the service's run on both (brain/test_maintenance_rules)
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"condition": {"all": [HOT, {**HOT, "value": 900}]}}, "condition.all[1].value"),
        ({"condition": {"any": [{**HOT, "metric": "warp_core_c"}]}}, "condition.any[0].metric"),
        ({"condition": {"any": [{**HOT, "op": "~"}]}}, "condition.any[0].op"),
        ({"condition": {"any": [{**HOT, "for_s": -1}]}}, "condition.any[0].for_s"),
        ({"condition": {"any": "hot"}}, "condition.any"),
        ({"condition": {}}, "condition.metric"),
        ({"condition": "hot"}, "condition"),
        ({"due_in_s": 1}, "due_in_s"),
        ({"due_in_s": "soon"}, "due_in_s"),
        ({"scope": "rack", "scope_id": "f" * 32}, "scope_id"),
        ({"scope": "galaxy"}, "scope"),
        ({"name": ""}, "name"),
        ({"extra": 1}, "extra"),
    ],
)
async def test_bad_rules_are_422_naming_the_field(
    central: Central, body: dict[str, Any], field: str
) -> None:
    r = await central.http.post(f"{API}/maintenance/rules", headers=central.admin, json=RULE | body)
    assert r.status_code == 422, r.text
    assert field in r.text


async def _placed_device(c: Central) -> tuple[str, str]:
    site = (await c.http.post(f"{API}/sites", headers=c.admin, json={"name": "dc-berlin"})).json()
    room = await c.http.post(
        f"{API}/rooms", headers=c.admin, json={"site_id": site["id"], "name": "hall"}
    )
    rack = await c.http.post(
        f"{API}/racks", headers=c.admin, json={"room_id": room.json()["id"], "name": "r7"}
    )
    dev = (await c.http.post(f"{API}/devices", headers=c.admin, json={"name": "pi-hot"})).json()
    r = await c.http.put(
        f"{API}/devices/{dev['id']}/location",
        headers=c.admin,
        json={"rack_id": rack.json()["id"], "slot_u": 2},
    )
    assert r.status_code == 200, r.text
    return dev["id"], rack.json()["id"]


async def test_tasks_listed_queued_and_done(central: Central) -> None:
    c = central
    device, rack = await _placed_device(c)
    cool = (await c.http.post(f"{API}/devices", headers=c.admin, json={"name": "pi-cool"})).json()
    r = await c.http.post(f"{API}/maintenance/rules", headers=c.admin, json=RULE)
    assert r.status_code == 201, r.text
    now = time.time()
    await minutes(c.db, device, "cpu_temp_c", [82.0] * 70, now)
    await minutes(c.db, cool["id"], "cpu_temp_c", [50.0] * 70, now)
    assert (await evaluate_all(c.db, now))["opened"] == 1
    assert (await evaluate_all(c.db, now + 5))["opened"] == 0

    viewer = await c.user("viewer")
    listed = (
        await c.http.get(f"{API}/maintenance/tasks", headers=viewer, params={"state": "open"})
    ).json()
    assert [(t["device_name"], t["title"], t["kind"]) for t in listed] == [
        ("pi-hot", "clean the heatsink", "task")
    ]
    task = listed[0]
    assert task["due_at"] == pytest.approx(now + 7 * 86_400)
    by_device = await c.http.get(
        f"{API}/maintenance/tasks", headers=viewer, params={"device_id": cool["id"]}
    )
    assert by_device.json() == []
    bad = await c.http.get(f"{API}/maintenance/tasks", headers=viewer, params={"state": "later"})
    assert bad.status_code == 422

    q = (await c.http.get(f"{API}/maintenance/queue", headers=viewer)).json()
    assert set(q) == {"visits", "boards_read", "truncated"}
    (visit,) = q["visits"]
    assert (visit["rack_id"], visit["rack_name"], visit["site_name"]) == (rack, "r7", "dc-berlin")
    assert visit["due"] == pytest.approx(task["due_at"])
    (board,) = visit["devices"]
    assert (board["device_name"], board["trends"], board["throttled_days"]) == ("pi-hot", [], 0)
    assert [(x["kind"], x["id"], x["title"]) for x in board["tasks"]] == [
        ("task", task["id"], "clean the heatsink")
    ]

    done = f"{API}/maintenance/tasks/{task['id']}/done"
    assert (await c.http.post(done, headers=viewer, json={"note": "x"})).status_code == 403
    other = await c.other_tenant_admin()
    assert (await c.http.post(done, headers=other, json={"note": "x"})).status_code == 404
    r = await c.http.post(done, headers=c.admin, json={"note": "heatsink cleaned"})
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["note"], r.json()["close_reason"]) == (
        "done",
        "heatsink cleaned",
        "done",
    )
    assert (await c.http.post(done, headers=c.admin, json={"note": "again"})).status_code == 409
    assert (await c.http.get(f"{API}/maintenance/queue", headers=viewer)).json()["visits"] == []
    r = await c.http.get(
        f"{API}/audit", headers=c.admin, params={"resource_type": "maintenance_task"}
    )
    assert r.status_code == 200, r.text
    assert {"maintenance_task.open", "maintenance_task.done"} <= {
        e["action"] for e in r.json()["items"]
    }
