"""Static and dynamic groups, nesting, cycle prevention, selectors, roles, tenants and audit
through the real API, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from typing import Any

from tests.conftest import Central

API = "/api/v1"
_num = itertools.count(800_000)


async def tenant_of(c: Central, headers: dict[str, str]) -> str:
    return str((await c.http.get(f"{API}/auth/me", headers=headers)).json()["tenant_id"])


async def make_device(c: Central, tenant_id: str, name: str, **fields: Any) -> str:
    """A device row made directly in the database (the registry API is another area)."""
    from wrale.fleet.brain.models import Device

    async with c.db.session() as s:
        d = Device(tenant_id=tenant_id, num=next(_num), name=name, **fields)
        s.add(d)
        await s.flush()
        return d.id


async def group(
    c: Central, name: str, headers: dict[str, str] | None = None, **body: Any
) -> dict[str, Any]:
    r = await c.http.post(f"{API}/groups", json={"name": name, **body}, headers=headers or c.admin)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def names(c: Central, path: str, headers: dict[str, str] | None = None) -> list[str]:
    r = await c.http.get(f"{API}{path}", headers=headers or c.admin)
    assert r.status_code == 200, r.text
    return sorted(d["name"] for d in r.json()["items"])


async def test_static_members(central: Central) -> None:
    c = central
    t = await tenant_of(c, c.admin)
    a, b = await make_device(c, t, "pi-a"), await make_device(c, t, "pi-b")
    g = await group(c, "lab", description="bench boards")
    assert g["kind"] == "static"
    assert g["selector"] is None
    assert (
        await c.http.post(f"{API}/groups", json={"name": "lab"}, headers=c.admin)
    ).status_code == 409
    r = await c.http.post(
        f"{API}/groups/{g['id']}/members", json={"device_ids": [a, b, a]}, headers=c.admin
    )
    assert r.json() == {"added": 2, "already": 0, "recompose": None}  # no policy on it
    r = await c.http.post(
        f"{API}/groups/{g['id']}/members", json={"device_ids": [a]}, headers=c.admin
    )
    assert r.json() == {"added": 0, "already": 1, "recompose": None}
    assert await names(c, f"/groups/{g['id']}/members") == ["pi-a", "pi-b"]
    assert await names(c, f"/groups/{g['id']}/devices") == ["pi-a", "pi-b"]
    page = (await c.http.get(f"{API}/groups/{g['id']}/devices?limit=1", headers=c.admin)).json()
    assert len(page["items"]) == 1
    assert page["next_cursor"]
    rest = await c.http.get(
        f"{API}/groups/{g['id']}/devices?limit=1&cursor={page['next_cursor']}", headers=c.admin
    )
    assert rest.json()["items"][0]["id"] != page["items"][0]["id"]
    assert rest.json()["next_cursor"] is None
    assert (
        await c.http.delete(f"{API}/groups/{g['id']}/members/{b}", headers=c.admin)
    ).status_code == 204
    assert (
        await c.http.delete(f"{API}/groups/{g['id']}/members/{b}", headers=c.admin)
    ).status_code == 404
    assert await names(c, f"/groups/{g['id']}/members") == ["pi-a"]
    r = await c.http.post(
        f"{API}/groups/{g['id']}/members", json={"device_ids": ["f" * 32]}, headers=c.admin
    )
    assert r.status_code == 404
    actions = [
        e["action"]
        for e in (await c.http.get(f"{API}/audit?resource_type=group", headers=c.admin)).json()[
            "items"
        ]
    ]
    assert actions == [  # a bulk add is one entry with its count; adding nothing, none
        "group.member_remove",
        "group.bulk_member_add",
        "group.create",
    ]


async def test_dynamic_membership(central: Central) -> None:
    c = central
    t = await tenant_of(c, c.admin)
    site = (await c.http.post(f"{API}/sites", json={"name": "s"}, headers=c.admin)).json()
    room = (
        await c.http.post(
            f"{API}/rooms", json={"site_id": site["id"], "name": "r"}, headers=c.admin
        )
    ).json()
    rack = (
        await c.http.post(
            f"{API}/racks", json={"room_id": room["id"], "name": "k"}, headers=c.admin
        )
    ).json()
    await make_device(c, t, "cam-1", tags=["camera", "north"], status="online", model="pi5")
    await make_device(c, t, "cam-2", tags=["camera"], status="offline", model="pi4")
    racked = await make_device(c, t, "srv-1", tags=["server"], status="online", model="pi5")
    await c.http.put(
        f"{API}/devices/{racked}/location",
        json={"rack_id": rack["id"], "slot_u": 1},
        headers=c.admin,
    )
    cams = await group(c, "cameras", kind="dynamic", selector={"tags_all": ["camera"]})
    assert await names(c, f"/groups/{cams['id']}/devices") == ["cam-1", "cam-2"]
    online = await group(
        c, "online-pi5", kind="dynamic", selector={"status": ["online"], "model": "pi5"}
    )
    assert await names(c, f"/groups/{online['id']}/devices") == ["cam-1", "srv-1"]
    any_ = await group(c, "any", kind="dynamic", selector={"tags_any": ["north", "server"]})
    assert await names(c, f"/groups/{any_['id']}/devices") == ["cam-1", "srv-1"]
    here = await group(c, "in-site", kind="dynamic", selector={"site_id": site["id"]})
    assert await names(c, f"/groups/{here['id']}/devices") == ["srv-1"]
    # the selector is live: a device changing status changes membership
    await c.http.put(
        f"{API}/devices/{racked}/location", json={"rack_id": None, "slot_u": None}, headers=c.admin
    )
    assert await names(c, f"/groups/{here['id']}/devices") == []
    # no explicit members on a dynamic group
    r = await c.http.post(
        f"{API}/groups/{cams['id']}/members", json={"device_ids": [racked]}, headers=c.admin
    )
    assert r.status_code == 409
    assert "dynamic" in r.json()["error"]["message"]
    assert (
        await c.http.get(f"{API}/groups/{cams['id']}/members", headers=c.admin)
    ).status_code == 409
    r = await c.http.patch(
        f"{API}/groups/{cams['id']}", json={"selector": {"tags_all": ["server"]}}, headers=c.admin
    )
    assert r.status_code == 200
    assert r.json()["selector"] == {"tags_all": ["server"]}
    assert await names(c, f"/groups/{cams['id']}/devices") == ["srv-1"]


async def test_selector_validation(central: Central) -> None:
    c = central
    bad = [
        {"colour": "red"},
        {"status": ["sleeping"]},
        {"tags_all": "camera"},
        {"tags_any": [""]},
        {"site_id": "not hex"},
    ]
    for selector in bad:
        r = await c.http.post(
            f"{API}/groups",
            json={"name": "x", "kind": "dynamic", "selector": selector},
            headers=c.admin,
        )
        assert r.status_code == 422, (selector, r.text)
    r = await c.http.post(
        f"{API}/groups", json={"name": "x", "selector": {"status": ["online"]}}, headers=c.admin
    )
    assert r.status_code == 422  # a static group has no selector
    for name in ("", " padded", "tab\there", "x" * 101):
        r = await c.http.post(f"{API}/groups", json={"name": name}, headers=c.admin)
        assert r.status_code == 422, name
    r = await c.http.post(f"{API}/groups", json={"name": "x", "kind": "smart"}, headers=c.admin)
    assert r.status_code == 422
    # a selector naming a rack that is not there (or not ours) is "not found"
    r = await c.http.post(
        f"{API}/groups",
        json={"name": "x", "kind": "dynamic", "selector": {"rack_id": "f" * 32}},
        headers=c.admin,
    )
    assert r.status_code == 404
    assert "no rack" in r.json()["error"]["message"]
    # an empty selector is every device
    every = await group(c, "every", kind="dynamic")
    assert every["selector"] == {}


async def test_nesting_recursion_and_cycles(central: Central) -> None:
    c = central
    t = await tenant_of(c, c.admin)
    fleet = await group(c, "fleet")
    eu = await group(c, "eu", parent_id=fleet["id"])
    nl = await group(c, "nl", parent_id=eu["id"])
    dyn = await group(
        c, "nl-cams", parent_id=nl["id"], kind="dynamic", selector={"tags_all": ["cam"]}
    )
    d1, d2 = await make_device(c, t, "ams-1"), await make_device(c, t, "ams-cam", tags=["cam"])
    await c.http.post(
        f"{API}/groups/{nl['id']}/members", json={"device_ids": [d1]}, headers=c.admin
    )
    assert await names(c, f"/groups/{fleet['id']}/devices") == []
    assert await names(c, f"/groups/{fleet['id']}/devices?recursive=true") == ["ams-1", "ams-cam"]
    assert await names(c, f"/groups/{nl['id']}/devices?recursive=true") == ["ams-1", "ams-cam"]
    # groups of a device: direct ones and their ancestors
    r = (await c.http.get(f"{API}/devices/{d2}/groups", headers=c.admin)).json()["items"]
    assert {(g["name"], g["direct"]) for g in r} == {
        ("nl-cams", True),
        ("nl", False),
        ("eu", False),
        ("fleet", False),
    }
    # cycles: a group under itself or under its own descendant
    r = await c.http.patch(
        f"{API}/groups/{fleet['id']}", json={"parent_id": dyn["id"]}, headers=c.admin
    )
    assert r.status_code == 409
    assert "cycle" in r.json()["error"]["message"]
    r = await c.http.patch(
        f"{API}/groups/{eu['id']}", json={"parent_id": eu["id"]}, headers=c.admin
    )
    assert r.status_code == 409
    # a legal move, and back to the top level
    r = await c.http.patch(
        f"{API}/groups/{nl['id']}", json={"parent_id": fleet["id"]}, headers=c.admin
    )
    assert r.status_code == 200
    assert r.json()["parent_id"] == fleet["id"]
    r = await c.http.patch(f"{API}/groups/{nl['id']}", json={"parent_id": None}, headers=c.admin)
    assert r.json()["parent_id"] is None
    assert await names(c, "/groups?root=true") == ["fleet", "nl"]
    assert await names(c, f"/groups?parent_id={nl['id']}") == ["nl-cams"]
    assert await names(c, "/groups?name=eu") == ["eu"]
    assert await names(c, "/groups?kind=dynamic") == ["nl-cams"]
    # a group with subgroups is not deleted
    r = await c.http.delete(f"{API}/groups/{nl['id']}", headers=c.admin)
    assert r.status_code == 409
    assert "subgroup" in r.json()["error"]["message"]
    assert (await c.http.delete(f"{API}/groups/{dyn['id']}", headers=c.admin)).status_code == 204
    assert (await c.http.delete(f"{API}/groups/{nl['id']}", headers=c.admin)).status_code == 204


async def test_depth_limit(central: Central) -> None:
    c = central
    parent = None
    chain = []
    for i in range(10):
        g = await group(c, f"level-{i}", **({"parent_id": parent} if parent else {}))
        chain.append(g)
        parent = g["id"]
    r = await c.http.post(
        f"{API}/groups", json={"name": "too-deep", "parent_id": parent}, headers=c.admin
    )
    assert r.status_code == 409
    assert "10 levels" in r.json()["error"]["message"]
    # moving a two-level subtree under level-8 would reach 11
    top = await group(c, "top")
    await group(c, "below", parent_id=top["id"])
    r = await c.http.patch(
        f"{API}/groups/{top['id']}", json={"parent_id": chain[8]["id"]}, headers=c.admin
    )
    assert r.status_code == 409
    r = await c.http.patch(
        f"{API}/groups/{top['id']}", json={"parent_id": chain[7]["id"]}, headers=c.admin
    )
    assert r.status_code == 200


async def test_roles_and_other_tenant(central: Central) -> None:
    c = central
    t = await tenant_of(c, c.admin)
    viewer, operator = await c.user("viewer"), await c.user("operator")
    other = await c.other_tenant_admin()
    dev = await make_device(c, t, "pi")
    g = await group(c, "ops", operator)
    assert (await c.http.get(f"{API}/groups/{g['id']}", headers=viewer)).status_code == 200
    assert (
        await c.http.post(f"{API}/groups", json={"name": "v"}, headers=viewer)
    ).status_code == 403
    assert (
        await c.http.patch(f"{API}/groups/{g['id']}", json={"name": "v"}, headers=viewer)
    ).status_code == 403
    r = await c.http.post(
        f"{API}/groups/{g['id']}/members", json={"device_ids": [dev]}, headers=viewer
    )
    assert r.status_code == 403
    assert (await c.http.delete(f"{API}/groups/{g['id']}", headers=viewer)).status_code == 403
    r = await c.http.post(
        f"{API}/groups/{g['id']}/members", json={"device_ids": [dev]}, headers=operator
    )
    assert r.status_code == 200
    for method, path, body in (
        ("GET", f"/groups/{g['id']}", None),
        ("PATCH", f"/groups/{g['id']}", {"name": "mine"}),
        ("DELETE", f"/groups/{g['id']}", None),
        ("GET", f"/groups/{g['id']}/members", None),
        ("GET", f"/groups/{g['id']}/devices", None),
        ("DELETE", f"/groups/{g['id']}/members/{dev}", None),
        ("GET", f"/devices/{dev}/groups", None),
    ):
        r = await c.http.request(method, f"{API}{path}", json=body, headers=other)
        assert r.status_code == 404, (method, path, r.text)
    assert (await c.http.get(f"{API}/groups", headers=other)).json()["items"] == []
    # another tenant cannot hang its group under ours, nor add our device to its group
    r = await c.http.post(f"{API}/groups", json={"name": "x", "parent_id": g["id"]}, headers=other)
    assert r.status_code == 404
    theirs = await group(c, "theirs", other)
    r = await c.http.post(
        f"{API}/groups/{theirs['id']}/members", json={"device_ids": [dev]}, headers=other
    )
    assert r.status_code == 404


async def test_update_and_delete_audited(central: Central) -> None:
    c = central
    g = await group(c, "before")
    r = await c.http.patch(
        f"{API}/groups/{g['id']}", json={"name": "after", "description": "d"}, headers=c.admin
    )
    assert r.json()["name"] == "after"
    assert (await c.http.delete(f"{API}/groups/{g['id']}", headers=c.admin)).status_code == 204
    entries = (await c.http.get(f"{API}/audit?resource_id={g['id']}", headers=c.admin)).json()[
        "items"
    ]
    assert [e["action"] for e in entries] == ["group.delete", "group.update", "group.create"]
    assert entries[1]["before"]["name"] == "before"
    assert entries[1]["after"]["name"] == "after"
    assert (await c.http.get(f"{API}/groups/{g['id']}", headers=c.admin)).status_code == 404
