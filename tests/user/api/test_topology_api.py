"""Sites, rooms, racks, zones, placement and the topology tree through the real API, on
SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from typing import Any

from tests.conftest import Central

API = "/api/v1"
_num = itertools.count(900_000)


async def tenant_of(c: Central, headers: dict[str, str]) -> str:
    r = await c.http.get(f"{API}/auth/me", headers=headers)
    return str(r.json()["tenant_id"])


async def make_device(c: Central, tenant_id: str, name: str, **fields: Any) -> str:
    """A device row made directly in the database (the registry API is another area)."""
    from wrale.fleet.brain.models import Device

    async with c.db.session() as s:
        d = Device(tenant_id=tenant_id, num=next(_num), name=name, **fields)
        s.add(d)
        await s.flush()
        return d.id


async def post(
    c: Central, path: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> Any:
    r = await c.http.post(f"{API}{path}", json=body, headers=headers or c.admin)
    assert r.status_code == 201, r.text
    return r.json()


async def make_rack(c: Central, units: int = 42, budget: float | None = None) -> dict[str, Any]:
    site = await post(c, "/sites", {"name": f"site-{next(_num)}"})
    room = await post(c, "/rooms", {"site_id": site["id"], "name": "hall"})
    return dict(
        await post(
            c,
            "/racks",
            {"room_id": room["id"], "name": "r1", "units": units, "power_budget_w": budget},
        )
    )


async def test_crud_uniqueness_and_validation(central: Central) -> None:
    c = central
    site = await post(c, "/sites", {"name": "Amsterdam", "address": "Keizersgracht 1"})
    dup = await c.http.post(f"{API}/sites", json={"name": "Amsterdam"}, headers=c.admin)
    assert dup.status_code == 409
    assert "already exists" in dup.json()["error"]["message"]
    room = await post(c, "/rooms", {"site_id": site["id"], "name": "DC-1"})
    assert (
        await c.http.post(
            f"{API}/rooms", json={"site_id": site["id"], "name": "DC-1"}, headers=c.admin
        )
    ).status_code == 409
    other_site = await post(c, "/sites", {"name": "Berlin"})
    await post(
        c, "/rooms", {"site_id": other_site["id"], "name": "DC-1"}
    )  # same name, other parent
    rack = await post(
        c,
        "/racks",
        {
            "room_id": room["id"],
            "name": "A01",
            "units": 42,
            "power_budget_w": 500,
            "cooling_zone": "cold-1",
            "power_feed": "pdu-a",
        },
    )
    assert rack["units"] == 42
    assert rack["power_budget_w"] == 500
    assert rack["power_feed"] == "pdu-a"
    for bad in ({"units": 0}, {"units": 61}, {"power_budget_w": -1}):
        r = await c.http.post(
            f"{API}/racks", json={"room_id": room["id"], "name": "x", **bad}, headers=c.admin
        )
        assert r.status_code == 422, r.text
    r = await c.http.patch(
        f"{API}/racks/{rack['id']}", json={"units": 48, "name": "A1"}, headers=c.admin
    )
    assert r.status_code == 200
    assert r.json()["units"] == 48
    assert r.json()["name"] == "A1"
    assert r.json()["power_feed"] == "pdu-a"  # kept when not given
    r = await c.http.patch(f"{API}/racks/{rack['id']}", json={"power_feed": None}, headers=c.admin)
    assert r.json()["power_feed"] is None
    r = await c.http.patch(
        f"{API}/racks/{rack['id']}", json={"power_feed": "x" * 65}, headers=c.admin
    )
    assert r.status_code == 422, r.text
    listed = (await c.http.get(f"{API}/rooms?site_id={site['id']}", headers=c.admin)).json()
    assert [x["name"] for x in listed["items"]] == ["DC-1"]
    racks = (await c.http.get(f"{API}/racks?room_id={room['id']}", headers=c.admin)).json()
    assert [x["id"] for x in racks["items"]] == [rack["id"]]
    zone = await post(c, "/zones", {"name": "kiosks-north"})
    assert (
        await c.http.post(f"{API}/zones", json={"name": "kiosks-north"}, headers=c.admin)
    ).status_code == 409
    r = await c.http.patch(
        f"{API}/zones/{zone['id']}", json={"description": "lobby"}, headers=c.admin
    )
    assert r.json()["description"] == "lobby"
    assert (await c.http.get(f"{API}/sites/{'f' * 32}", headers=c.admin)).status_code == 404
    assert (await c.http.get(f"{API}/sites/not-an-id", headers=c.admin)).status_code == 404


async def test_delete_refuses_non_empty_unless_admin_forces(central: Central) -> None:
    c = central
    operator = await c.user("operator")
    rack = await make_rack(c)
    tenant = await tenant_of(c, c.admin)
    dev = await make_device(c, tenant, "pi-1")
    assert (
        await c.http.put(
            f"{API}/devices/{dev}/location",
            json={"rack_id": rack["id"], "slot_u": 3},
            headers=operator,
        )
    ).status_code == 200
    room_id = rack["room_id"]
    site_id = (await c.http.get(f"{API}/rooms/{room_id}", headers=c.admin)).json()["site_id"]
    r = await c.http.delete(f"{API}/sites/{site_id}", headers=operator)
    assert r.status_code == 409
    assert "still has 1 room" in r.json()["error"]["message"]
    r = await c.http.delete(f"{API}/rooms/{room_id}", headers=c.admin)
    assert r.status_code == 409
    assert "rack" in r.json()["error"]["message"]
    r = await c.http.delete(f"{API}/racks/{rack['id']}", headers=operator)
    assert r.status_code == 409
    assert "1 device" in r.json()["error"]["message"]
    assert (
        await c.http.delete(f"{API}/sites/{site_id}?force=true", headers=operator)
    ).status_code == 403
    assert (
        await c.http.delete(f"{API}/sites/{site_id}?force=true", headers=c.admin)
    ).status_code == 204
    assert (await c.http.get(f"{API}/racks/{rack['id']}", headers=c.admin)).status_code == 404
    tree = (await c.http.get(f"{API}/topology", headers=c.admin)).json()
    assert tree["sites"] == []
    assert tree["unplaced_devices"] == 1
    # an empty one goes for an operator
    empty = await post(c, "/sites", {"name": "empty"}, operator)
    assert (await c.http.delete(f"{API}/sites/{empty['id']}", headers=operator)).status_code == 204
    audit = (await c.http.get(f"{API}/audit?action=site.delete", headers=c.admin)).json()["items"]
    assert len(audit) == 2
    assert audit[1]["details"]["force"] is True


async def test_placement_validation(central: Central) -> None:
    c = central
    rack = await make_rack(c, units=4)
    tenant = await tenant_of(c, c.admin)
    a = await make_device(c, tenant, "pi-a")
    b = await make_device(c, tenant, "pi-b")
    url = f"{API}/devices/{a}/location"
    r = await c.http.put(url, json={"rack_id": rack["id"], "slot_u": 5}, headers=c.admin)
    assert r.status_code == 422
    assert "slots 1 to 4" in r.json()["error"]["message"]
    assert (
        await c.http.put(url, json={"rack_id": rack["id"], "slot_u": 0}, headers=c.admin)
    ).status_code == 422
    assert (await c.http.put(url, json={"rack_id": rack["id"]}, headers=c.admin)).status_code == 422
    assert (await c.http.put(url, json={}, headers=c.admin)).status_code == 422
    assert (
        await c.http.put(url, json={"rack_id": "f" * 32, "slot_u": 1}, headers=c.admin)
    ).status_code == 404
    r = await c.http.put(url, json={"rack_id": rack["id"], "slot_u": 4}, headers=c.admin)
    assert r.status_code == 200
    assert r.json() == {"device_id": a, "rack_id": rack["id"], "slot_u": 4, "zone_id": None}
    # the same slot again is fine for the same device, taken for another
    assert (
        await c.http.put(url, json={"rack_id": rack["id"], "slot_u": 4}, headers=c.admin)
    ).status_code == 200
    r = await c.http.put(
        f"{API}/devices/{b}/location", json={"rack_id": rack["id"], "slot_u": 4}, headers=c.admin
    )
    assert r.status_code == 409
    assert "pi-a" in r.json()["error"]["message"]
    assert r.json()["error"]["details"]["occupant_id"] == a
    # the rack cannot shrink below an occupied slot
    r = await c.http.patch(f"{API}/racks/{rack['id']}", json={"units": 3}, headers=c.admin)
    assert r.status_code == 409
    assert "pi-a" in r.json()["error"]["message"]
    # a zone alongside the slot; null clears
    zone = await post(c, "/zones", {"name": "cab-row"})
    r = await c.http.put(url, json={"zone_id": zone["id"]}, headers=c.admin)
    assert r.json()["slot_u"] == 4
    assert r.json()["zone_id"] == zone["id"]
    r = await c.http.put(url, json={"rack_id": None, "slot_u": None}, headers=c.admin)
    assert r.json()["rack_id"] is None
    assert r.json()["zone_id"] == zone["id"]
    assert (
        await c.http.patch(f"{API}/racks/{rack['id']}", json={"units": 3}, headers=c.admin)
    ).status_code == 200
    r = await c.http.delete(url, headers=c.admin)
    assert r.json() == {"device_id": a, "rack_id": None, "slot_u": None, "zone_id": None}
    audit = (
        await c.http.get(f"{API}/audit?action=device.place&resource_id={a}", headers=c.admin)
    ).json()["items"]
    assert len(audit) == 4
    assert audit[-1]["before"]["rack_id"] is None
    assert audit[-1]["after"]["slot_u"] == 4
    assert (
        await c.http.put(
            f"{API}/devices/{'e' * 32}/location", json={"zone_id": zone["id"]}, headers=c.admin
        )
    ).status_code == 404


async def test_topology_tree(central: Central) -> None:
    c = central
    rack = await make_rack(c, units=10, budget=100)
    tenant = await tenant_of(c, c.admin)
    for slot, name in ((7, "top"), (2, "bottom")):
        dev = await make_device(c, tenant, name, status="online")
        await c.http.put(
            f"{API}/devices/{dev}/location",
            json={"rack_id": rack["id"], "slot_u": slot},
            headers=c.admin,
        )
    zone = await post(c, "/zones", {"name": "field"})
    z = await make_device(c, tenant, "kiosk", zone_id=zone["id"])
    await make_device(c, tenant, "loose")
    viewer = await c.user("viewer")
    tree = (await c.http.get(f"{API}/topology", headers=viewer)).json()
    (site,) = tree["sites"]
    (room,) = site["rooms"]
    (r,) = room["racks"]
    assert r["id"] == rack["id"]
    assert r["units"] == 10
    assert r["power_budget_w"] == 100
    assert [(d["name"], d["slot_u"], d["status"]) for d in r["devices"]] == [
        ("bottom", 2, "online"),
        ("top", 7, "online"),
    ]
    assert tree["zones"] == [{**zone, "device_count": 1}]
    assert tree["unplaced_devices"] == 1
    assert z


async def test_roles_and_other_tenant(central: Central) -> None:
    c = central
    viewer = await c.user("viewer")
    other = await c.other_tenant_admin()
    rack = await make_rack(c)
    tenant = await tenant_of(c, c.admin)
    dev = await make_device(c, tenant, "pi-x")
    assert (await c.http.get(f"{API}/racks/{rack['id']}", headers=viewer)).status_code == 200
    assert (
        await c.http.post(f"{API}/sites", json={"name": "v"}, headers=viewer)
    ).status_code == 403
    assert (
        await c.http.patch(f"{API}/racks/{rack['id']}", json={"units": 2}, headers=viewer)
    ).status_code == 403
    r = await c.http.put(
        f"{API}/devices/{dev}/location", json={"rack_id": rack["id"], "slot_u": 1}, headers=viewer
    )
    assert r.status_code == 403
    # another organisation sees none of it and cannot place into it
    assert (await c.http.get(f"{API}/racks/{rack['id']}", headers=other)).status_code == 404
    assert (
        await c.http.patch(f"{API}/racks/{rack['id']}", json={"units": 2}, headers=other)
    ).status_code == 404
    assert (await c.http.delete(f"{API}/racks/{rack['id']}", headers=other)).status_code == 404
    assert (await c.http.get(f"{API}/racks/{rack['id']}/power", headers=other)).status_code == 404
    r = await c.http.put(
        f"{API}/devices/{dev}/location", json={"rack_id": rack["id"], "slot_u": 1}, headers=other
    )
    assert r.status_code == 404
    other_tenant = await tenant_of(c, other)
    theirs = await make_device(c, other_tenant, "their-pi")
    r = await c.http.put(
        f"{API}/devices/{theirs}/location", json={"rack_id": rack["id"], "slot_u": 1}, headers=other
    )
    assert r.status_code == 404
    assert "rack" in r.json()["error"]["message"]
    assert (await c.http.get(f"{API}/topology", headers=other)).json()["sites"] == []
    room = rack["room_id"]
    r = await c.http.post(f"{API}/racks", json={"room_id": room, "name": "sneaky"}, headers=other)
    assert r.status_code == 404
    assert (await c.http.get(f"{API}/racks", headers=other)).json()["items"] == []


async def test_audit_before_after(central: Central) -> None:
    c = central
    rack = await make_rack(c, units=42, budget=300)
    await c.http.patch(f"{API}/racks/{rack['id']}", json={"power_budget_w": 250}, headers=c.admin)
    (entry,) = (await c.http.get(f"{API}/audit?action=rack.update", headers=c.admin)).json()[
        "items"
    ]
    assert entry["before"]["power_budget_w"] == 300
    assert entry["after"]["power_budget_w"] == 250
    created = (await c.http.get(f"{API}/audit?resource_type=rack", headers=c.admin)).json()["items"]
    assert {e["action"] for e in created} == {"rack.create", "rack.update"}
