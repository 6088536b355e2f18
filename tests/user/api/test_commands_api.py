"""Commands through the real API on both databases: one device (201, 422, 403, 409), a
group and a selector as batches that list refused devices, lists with filters and
cursors, cancel, and results from the device side."""

from __future__ import annotations

import time
from typing import Any

from tests.conftest import Central

API = "/api/v1"


async def _post(c: Central, path: str, body: dict[str, Any], headers: Any = None) -> Any:
    r = await c.http.post(f"{API}{path}", headers=headers or c.admin, json=body)
    assert r.status_code in (200, 201), r.text
    return r.json()


async def test_single_device_commands_validation_roles_and_state(central: Central) -> None:
    from wrale.fleet.brain.models import Device
    from wrale.fleet.brain.services import commands, twin

    real = await _post(central, "/devices", {"name": "real-1", "tags": ["rack-a"]})
    sim = await _post(central, "/devices", {"name": "sim-1", "capabilities": ["sim"]})
    viewer = await central.user("viewer")
    operator = await central.user("operator")
    url = f"{API}/devices/{real['id']}/commands"

    r = await central.http.post(
        url, headers=operator, json={"op": "set_fan", "args": {"percent": 80}}
    )
    assert r.status_code == 201, r.text
    cmd = r.json()
    assert (cmd["status"], cmd["args"], cmd["batch_id"]) == (
        "queued",
        {"percent": 80.0, "duration_s": 300.0},
        None,
    )
    assert 290 < cmd["deadline"] - time.time() <= 300

    for body, status, where in (
        ({"op": "set_fan", "args": {"percent": 180}}, 422, "args.percent"),
        ({"op": "reboot", "args": {"delay_s": "soon"}}, 422, "args.delay_s"),
        ({"op": "fly"}, 422, "op"),
        ({"op": "run_diag", "deadline": time.time() - 10}, 422, "deadline"),
        ({"op": "run_diag", "deadline": time.time() + 10, "timeout_s": 5}, 422, "deadline"),
        ({"op": "sim_load", "args": {"percent": 10}}, 409, "simulated"),
        ({"op": "disarm"}, 403, "admin"),
    ):
        r = await central.http.post(url, headers=operator, json=body)
        assert r.status_code == status, (body, r.text)
        assert where in r.json()["error"]["message"], r.text
    assert (
        await central.http.post(url, headers=viewer, json={"op": "run_diag"})
    ).status_code == 403
    r = await central.http.post(
        f"{API}/devices/{sim['id']}/commands",
        headers=operator,
        json={"op": "sim_ambient", "args": {"celsius": 35}},
    )
    assert r.status_code == 201, r.text
    r = await central.http.post(url, headers=central.admin, json={"op": "disarm", "timeout_s": 60})
    assert r.status_code == 201, r.text

    # lockdown (from the device's report) and maintenance refuse with 409
    async with central.db.session() as s:
        device = await s.get(Device, real["id"])
        assert device is not None
        await twin.record_reported(s, device, 1, {"tamper": {"lockdown": True}}, 0, {}, time.time())
    r = await central.http.post(url, headers=operator, json={"op": "arm"})
    assert (r.status_code, r.json()["error"]["code"]) == (409, "lockdown")
    assert (
        await central.http.post(url, headers=operator, json={"op": "run_diag"})
    ).status_code == 201
    await _post(central, f"/devices/{real['id']}/status", {"status": "maintenance"})
    r = await central.http.post(url, headers=operator, json={"op": "run_diag"})
    assert r.status_code == 409
    assert "maintenance" in r.json()["error"]["message"]

    # the device side: sent, then its result
    async with central.db.session() as s:
        device = await s.get(Device, real["id"])
        assert device is not None
        due = await commands.due_for(s, device, time.time())
        assert [c.op for c in due] == ["set_fan", "disarm", "run_diag"]
        await commands.mark_sent(s, [due[0].id], time.time())
        await commands.record_result(
            s, device, due[0].id, "succeeded", "", {"fan_pct": 80}, time.time()
        )
    got = (await central.http.get(f"{API}/commands/{cmd['id']}", headers=viewer)).json()
    assert (got["status"], got["result"]) == ("succeeded", {"fan_pct": 80})
    assert got["sent_at"] is not None
    assert got["finished_at"] is not None

    # cancel: queued only
    r = await central.http.post(f"{API}/commands/{due[1].id}/cancel", headers=operator)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "failed"
    assert r.json()["reason"].startswith("cancelled by operator-")
    r = await central.http.post(f"{API}/commands/{cmd['id']}/cancel", headers=operator)
    assert r.status_code == 409
    assert (
        await central.http.post(f"{API}/commands/{cmd['id']}/cancel", headers=viewer)
    ).status_code == 403

    # lists: per device, filters, cursor; other tenants see nothing
    page = (await central.http.get(f"{url}?limit=2", headers=viewer)).json()
    rest = (await central.http.get(f"{url}?cursor={page['next_cursor']}", headers=viewer)).json()
    ids = [c["id"] for c in page["items"] + rest["items"]]
    assert len(ids) == len(set(ids)) == 3
    r = await central.http.get(
        f"{API}/commands",
        params={"status": ["succeeded", "queued"], "device_id": real["id"]},
        headers=viewer,
    )
    assert sorted(c["op"] for c in r.json()["items"]) == ["run_diag", "set_fan"]
    other = await central.other_tenant_admin()
    assert (await central.http.get(f"{API}/commands", headers=other)).json()["items"] == []
    assert (await central.http.get(f"{API}/commands/{cmd['id']}", headers=other)).status_code == 404
    assert (await central.http.get(url, headers=other)).status_code == 404


async def test_batches_to_a_group_and_a_selector(central: Central) -> None:
    site = await _post(central, "/sites", {"name": "s"})
    room = await _post(central, "/rooms", {"site_id": site["id"], "name": "r"})
    rack = await _post(central, "/racks", {"room_id": room["id"], "name": "k"})
    made = {}
    for name, tags in (("a", ["edge", "cam"]), ("b", ["edge"]), ("c", ["cam"])):
        made[name] = await _post(central, "/devices", {"name": name, "tags": tags})
    r = await central.http.put(
        f"{API}/devices/{made['a']['id']}/location",
        headers=central.admin,
        json={"rack_id": rack["id"], "slot_u": 1},
    )
    assert r.status_code == 200, r.text
    await _post(central, f"/devices/{made['b']['id']}/status", {"status": "maintenance"})
    group = await _post(
        central, "/groups", {"name": "edge", "kind": "dynamic", "selector": {"tags_all": ["edge"]}}
    )

    batch = await _post(
        central, f"/groups/{group['id']}/commands", {"op": "reboot", "args": {"delay_s": 5}}
    )
    assert batch["count"] == 1
    assert [c["device_id"] for c in batch["commands"]] == [made["a"]["id"]]
    assert [(x["name"], "maintenance" in x["reason"]) for x in batch["refused"]] == [("b", True)]
    listed = (
        await central.http.get(
            f"{API}/commands?batch_id={batch['batch_id']}", headers=central.admin
        )
    ).json()
    assert [c["id"] for c in listed["items"]] == [batch["commands"][0]["id"]]

    sel = await _post(central, "/commands", {"op": "run_diag", "selector": {"tags": ["cam"]}})
    assert sorted(c["device_id"] for c in sel["commands"]) == sorted(
        [made["a"]["id"], made["c"]["id"]]
    )
    sel = await _post(
        central,
        "/commands",
        {"op": "run_diag", "selector": {"site_id": site["id"], "tags_any": ["cam", "x"]}},
    )
    assert [c["device_id"] for c in sel["commands"]] == [made["a"]["id"]]
    for body, status in (
        ({"op": "run_diag", "selector": {}}, 422),
        ({"op": "run_diag", "selector": {"rack_id": "0" * 32}}, 404),
        ({"op": "run_diag", "selector": {"colour": "red"}}, 422),
        ({"op": "set_fan", "args": {}, "selector": {"tags": ["cam"]}}, 422),
    ):
        r = await central.http.post(f"{API}/commands", headers=central.admin, json=body)
        assert r.status_code == status, (body, r.text)
    audit = (
        await central.http.get(f"{API}/audit?action=command.batch", headers=central.admin)
    ).json()
    assert len(audit["items"]) == 3
