"""Policies through the API: versioning, validation, roles, tenants, audit, and a device's
effective policy inherited from fleet → groups (farthest first) → device."""

from __future__ import annotations

from typing import Any

from tests.conftest import Central

API = "/api/v1"


async def _post(c: Central, path: str, body: dict[str, Any], status: int = 201) -> Any:
    r = await c.http.post(f"{API}{path}", headers=c.admin, json=body)
    assert r.status_code == status, r.text
    return r.json()


async def test_versions_history_and_conflicts(central: Central) -> None:
    pol = await _post(
        central,
        "/policies",
        {"scope_type": "fleet", "kind": "thermal", "document": {"profile": "quiet"}},
    )
    assert (pol["version"], pol["scope_id"]) == (1, None)
    again = await central.http.post(
        f"{API}/policies",
        headers=central.admin,
        json={"scope_type": "fleet", "kind": "thermal", "document": {}},
    )
    assert again.status_code == 409
    url = f"{API}/policies/{pol['id']}"
    r = await central.http.put(
        url, headers=central.admin, json={"document": {"profile": "cool"}, "expected_version": 1}
    )
    assert r.json()["version"] == 2
    stale = await central.http.put(
        url, headers=central.admin, json={"document": {}, "expected_version": 1}
    )
    assert stale.status_code == 409
    versions = (await central.http.get(f"{url}/versions?limit=1", headers=central.admin)).json()
    assert [v["version"] for v in versions["items"]] == [1]
    rest = await central.http.get(
        f"{url}/versions?cursor={versions['next_cursor']}", headers=central.admin
    )
    assert rest.status_code == 200, rest.text
    assert [(v["version"], v["document"]) for v in rest.json()["items"]] == [
        (2, {"profile": "cool"})
    ]
    audit = (
        await central.http.get(f"{API}/audit?resource_id={pol['id']}", headers=central.admin)
    ).json()["items"]
    assert [e["action"] for e in audit] == ["policy.update", "policy.create"]
    assert (await central.http.delete(url, headers=central.admin)).status_code == 204
    assert (await central.http.get(url, headers=central.admin)).status_code == 404


async def test_validation_roles_and_tenants(central: Central) -> None:
    for body, where in (
        (
            {"scope_type": "fleet", "kind": "thermal", "document": {"cpu_warning_c": 500}},
            "cpu_warning_c",
        ),
        ({"scope_type": "fleet", "kind": "power", "document": {"shutdown": True}}, "shutdown"),
        ({"scope_type": "group", "kind": "power", "document": {}}, "scope_id"),
        ({"scope_type": "fleet", "scope_id": "x", "kind": "power", "document": {}}, "scope_id"),
        ({"scope_type": "fleet", "kind": "weather", "document": {}}, "kind"),
    ):
        r = await central.http.post(f"{API}/policies", headers=central.admin, json=body)
        assert r.status_code == 422, r.text
        assert where in r.json()["error"]["message"]
    missing = await central.http.post(
        f"{API}/policies",
        headers=central.admin,
        json={"scope_type": "device", "scope_id": "0" * 32, "kind": "power", "document": {}},
    )
    assert missing.status_code == 404
    pol = await _post(
        central,
        "/policies",
        {"scope_type": "fleet", "kind": "sampling", "document": {"interval_s": 2}},
    )
    operator = await central.user("operator")
    viewer = await central.user("viewer")
    r = await central.http.put(
        f"{API}/policies/{pol['id']}", headers=operator, json={"document": {}}
    )
    assert r.status_code == 403
    assert (await central.http.get(f"{API}/policies", headers=viewer)).json()["items"][0][
        "id"
    ] == pol["id"]
    other = await central.other_tenant_admin()
    assert (await central.http.get(f"{API}/policies/{pol['id']}", headers=other)).status_code == 404
    assert (await central.http.get(f"{API}/policies", headers=other)).json()["items"] == []
    r = await central.http.put(f"{API}/policies/{pol['id']}", headers=other, json={"document": {}})
    assert r.status_code == 404


async def test_effective_policy_inherits_with_sources(central: Central) -> None:
    dev = await _post(central, "/devices", {"name": "pi-1"})
    parent = await _post(central, "/groups", {"name": "site-a"})
    child = await _post(central, "/groups", {"name": "rack-row-1", "parent_id": parent["id"]})
    r = await central.http.post(
        f"{API}/groups/{child['id']}/members",
        headers=central.admin,
        json={"device_ids": [dev["id"]]},
    )
    assert r.status_code == 200, r.text
    fleet = await _post(
        central,
        "/policies",
        {
            "scope_type": "fleet",
            "kind": "thermal",
            "document": {"profile": "quiet", "cpu_warning_c": 60},
        },
    )
    far = await _post(
        central,
        "/policies",
        {
            "scope_type": "group",
            "scope_id": parent["id"],
            "kind": "thermal",
            "document": {"cpu_warning_c": 62, "hysteresis_c": 3},
        },
    )
    near = await _post(
        central,
        "/policies",
        {
            "scope_type": "group",
            "scope_id": child["id"],
            "kind": "thermal",
            "document": {"cpu_warning_c": 64},
        },
    )
    own = await _post(
        central,
        "/policies",
        {
            "scope_type": "device",
            "scope_id": dev["id"],
            "kind": "power",
            "document": {"low_battery_pct": 30},
        },
    )
    await central.http.put(
        f"{API}/policies/{near['id']}",
        headers=central.admin,
        json={"document": {"cpu_warning_c": 66}},
    )
    viewer = await central.user("viewer")
    r = await central.http.get(f"{API}/devices/{dev['id']}/effective-policy", headers=viewer)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [s["scope_type"] for s in body["chain"]] == ["fleet", "group", "group", "device"]
    assert [s["scope_id"] for s in body["chain"][1:3]] == [parent["id"], child["id"]]
    thermal = body["kinds"]["thermal"]["fields"]
    assert thermal["cpu_warning_c"]["value"] == 66
    assert thermal["cpu_warning_c"]["source"] == {
        "scope_type": "group",
        "scope_id": child["id"],
        "policy_id": near["id"],
        "version": 2,
    }
    assert thermal["hysteresis_c"]["source"]["policy_id"] == far["id"]
    assert thermal["profile"] == {
        "value": "quiet",
        "source": {"scope_type": "fleet", "scope_id": None, "policy_id": fleet["id"], "version": 1},
    }
    assert thermal["cpu_critical_c"] == {"value": 80.0, "source": None}
    assert body["kinds"]["thermal"]["document"]["cpu_warning_c"] == 66
    assert body["kinds"]["thermal"]["errors"] == []
    power = body["kinds"]["power"]["fields"]["low_battery_pct"]
    assert (power["value"], power["source"]["policy_id"]) == (30, own["id"])
    assert body["kinds"]["sampling"]["document"]["interval_s"] == 1.0
    other = await central.other_tenant_admin()
    r = await central.http.get(f"{API}/devices/{dev['id']}/effective-policy", headers=other)
    assert r.status_code == 404


async def test_fleet_change_recomposes_in_the_background(central: Central) -> None:
    """A fleet policy answers at once with its recompose; the duty does the boards, the
    status route says how far; bulk tag and group changes queue theirs the same way."""
    from sqlalchemy import select

    from wrale.fleet.brain.models import Device
    from wrale.fleet.brain.models.twin import DeviceTwin
    from wrale.fleet.brain.services import twin_recompose

    me = (await central.http.get(f"{API}/auth/me", headers=central.admin)).json()
    async with central.db.session() as s:
        boards = [
            Device(tenant_id=me["tenant_id"], num=990_000 + i, name=f"rc-{i}") for i in range(3)
        ]
        s.add_all(boards)
        await s.flush()
        ids = [d.id for d in boards]
    pol = await _post(
        central, "/policies", {"scope_type": "fleet", "kind": "sampling", "document": {}}
    )
    job = pol["recompose"]
    assert (job["scope_type"], job["total"], job["done"], job["state"]) == ("fleet", 3, 0, "queued")
    status_url = f"{API}/policies/recompose/{job['id']}"
    r = await central.http.put(
        f"{API}/policies/{pol['id']}",
        headers=central.admin,
        json={"document": {"interval_s": 4.0}},
    )
    newer = r.json()["recompose"]
    old = (await central.http.get(status_url, headers=central.admin)).json()
    assert (old["state"], old["superseded_by"]) == ("superseded", newer["id"])
    assert await twin_recompose.recompose_pending(central.db, None, budget_s=None) == 3
    done = (
        await central.http.get(f"{API}/policies/recompose/{newer['id']}", headers=central.admin)
    ).json()
    assert (done["state"], done["done"], done["changed"]) == ("done", 3, 3)
    async with central.db.session() as s:
        stored = [
            t.desired["sampling"]["interval_s"]
            for t in await s.scalars(select(DeviceTwin).where(DeviceTwin.device_id.in_(ids)))
        ]
    assert stored == [4.0] * 3
    missing = await central.http.get(f"{API}/policies/recompose/{'0' * 32}", headers=central.admin)
    assert missing.status_code == 404

    grp = await _post(central, "/groups", {"name": "rc-lab"})
    await _post(
        central,
        "/policies",
        {
            "scope_type": "group",
            "scope_id": grp["id"],
            "kind": "thermal",
            "document": {"hysteresis_c": 2},
        },
    )
    r = await central.http.post(
        f"{API}/groups/{grp['id']}/members", headers=central.admin, json={"device_ids": ids}
    )
    assert r.status_code == 200, r.text
    assert (r.json()["added"], r.json()["recompose"]["total"]) == (3, 3)
    r = await central.http.post(
        f"{API}/devices/tags", headers=central.admin, json={"device_ids": ids, "tag": "rc"}
    )
    assert r.json() == {"changed": 3, "unchanged": 0, "recompose": None}
    r = await central.http.post(
        f"{API}/devices/tags",
        headers=central.admin,
        json={"device_ids": [*ids, "0" * 32], "tag": "rc2"},
    )
    assert r.status_code == 404
