"""The device registry through the real API: CRUD, filters, pagination, roles, tenants,
quota, status changes (with their bus event), credentials and the audit trail."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from tests.conftest import Central
from wrale.fleet.brain.models import Rack, Room, Site, Tenant, Zone

API = "/api/v1"


async def _create(central: Central, headers: dict[str, str] | None = None, **body: Any) -> Any:
    r = await central.http.post(f"{API}/devices", headers=headers or central.admin, json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def test_crud_and_device_json(central: Central) -> None:
    d = await _create(
        central,
        name="pi-01",
        model="Raspberry Pi 5",
        hardware_profile="pi5-8gb",
        tags=["lab", "env=prod", "lab"],
        capabilities=["gpio", "THERMAL"],
    )
    assert d["status"] == "unknown"
    assert d["tags"] == ["lab", "env=prod"]
    assert d["capabilities"] == ["GPIO", "THERMAL"]
    assert d["location"] == {"rack_id": None, "slot_u": None, "zone_id": None}
    assert set(d) >= {"id", "last_seen_at", "agent_version", "created_at"}
    got = await central.http.get(f"{API}/devices/{d['id']}", headers=central.admin)
    assert got.json() == d
    r = await central.http.patch(
        f"{API}/devices/{d['id']}",
        headers=central.admin,
        json={"name": "pi-01b", "tags": ["edge"], "model": None},
    )
    assert r.status_code == 200, r.text
    assert (r.json()["name"], r.json()["tags"], r.json()["model"]) == ("pi-01b", ["edge"], None)
    assert r.json()["hardware_profile"] == "pi5-8gb"  # untouched
    unnamed = await _create(central)
    assert unnamed["name"].startswith("device-")
    dup = await central.http.post(f"{API}/devices", headers=central.admin, json={"name": "pi-01b"})
    assert dup.status_code == 409
    clash = await central.http.patch(
        f"{API}/devices/{unnamed['id']}", headers=central.admin, json={"name": "pi-01b"}
    )
    assert clash.status_code == 409
    bad = await central.http.patch(
        f"{API}/devices/{d['id']}", headers=central.admin, json={"status": "online"}
    )
    assert bad.status_code == 422  # status has its own endpoint
    assert (
        await central.http.delete(f"{API}/devices/{d['id']}", headers=central.admin)
    ).status_code == 204
    missing = await central.http.get(f"{API}/devices/{d['id']}", headers=central.admin)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


async def test_validation(central: Central) -> None:
    for body in (
        {"name": ""},
        {"tags": ["has space"]},
        {"capabilities": ["9bad"]},
        {"tags": ["x"] * 51},
        {"unknown": 1},
    ):
        r = await central.http.post(f"{API}/devices", headers=central.admin, json=body)
        assert r.status_code == 422, body


async def _topology(central: Central) -> tuple[str, str]:
    async with central.db.session() as s:
        tenant_id = (await central.http.get(f"{API}/auth/me", headers=central.admin)).json()[
            "tenant_id"
        ]
        site = Site(tenant_id=tenant_id, name="hq")
        s.add(site)
        await s.flush()
        room = Room(tenant_id=tenant_id, site_id=site.id, name="lab")
        s.add(room)
        await s.flush()
        rack = Rack(tenant_id=tenant_id, room_id=room.id, name="r1")
        zone = Zone(tenant_id=tenant_id, name="kiosks")
        s.add_all([rack, zone])
        await s.flush()
        return rack.id, zone.id


async def test_filters_and_pagination(central: Central) -> None:
    rack_id, zone_id = await _topology(central)
    a = await _create(central, name="alpha-1", model="pi5", tags=["a", "b"], capabilities=["GPIO"])
    b = await _create(central, name="Alpha-2", model="pi4", tags=["a"], capabilities=["PWM"])
    c = await _create(central, name="beta_%", model="pi5", tags=["b"])
    from wrale.fleet.brain.models import Device

    async with central.db.session() as s:
        await s.execute(update(Device).where(Device.id == a["id"]).values(rack_id=rack_id))
        await s.execute(update(Device).where(Device.id == b["id"]).values(zone_id=zone_id))
    await central.http.post(
        f"{API}/devices/{c['id']}/status", headers=central.admin, json={"status": "maintenance"}
    )

    async def names(query: str) -> list[str]:
        r = await central.http.get(f"{API}/devices?{query}", headers=central.admin)
        assert r.status_code == 200, r.text
        return sorted(d["name"] for d in r.json()["items"])

    assert await names("tag=a") == ["Alpha-2", "alpha-1"]
    assert await names("tag=a&tag=b") == ["alpha-1"]
    assert await names("tag=nope") == []
    assert await names("capability=gpio") == ["alpha-1"]
    assert await names("model=pi5") == ["alpha-1", "beta_%"]
    assert await names("q=ALPHA") == ["Alpha-2", "alpha-1"]
    assert await names("q=_%") == ["beta_%"]  # wildcards are literal
    assert await names(f"rack_id={rack_id}") == ["alpha-1"]
    assert await names(f"zone_id={zone_id}") == ["Alpha-2"]
    assert await names("status=maintenance") == ["beta_%"]
    assert await names("status=maintenance&status=unknown") == ["Alpha-2", "alpha-1", "beta_%"]
    assert (
        await central.http.get(f"{API}/devices?status=bogus", headers=central.admin)
    ).status_code == 422

    seen: list[str] = []
    cursor = None
    while True:
        url = f"{API}/devices?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await central.http.get(url, headers=central.admin)).json()
        seen += [d["id"] for d in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted([a["id"], b["id"], c["id"]])  # id order, each id once


async def test_roles_and_other_tenant(central: Central) -> None:
    viewer = await central.user("viewer")
    operator = await central.user("operator")
    d = await _create(central, operator, name="op-made")
    assert (await central.http.get(f"{API}/devices", headers=viewer)).status_code == 200
    assert (await central.http.get(f"{API}/devices/{d['id']}", headers=viewer)).status_code == 200
    writes = [
        ("post", f"{API}/devices", {"name": "v"}),
        ("patch", f"{API}/devices/{d['id']}", {"tags": ["x"]}),
        ("post", f"{API}/devices/{d['id']}/status", {"status": "maintenance"}),
        ("post", f"{API}/devices/{d['id']}/credentials/rotate", {}),
        ("post", f"{API}/devices/{d['id']}/credentials/revoke", None),
        ("delete", f"{API}/devices/{d['id']}", None),
    ]
    for method, url, body in writes:
        kw: dict[str, Any] = {"headers": viewer} | ({"json": body} if body is not None else {})
        r = await central.http.request(method.upper(), url, **kw)
        assert r.status_code == 403, (method, url, r.text)
    assert (
        await central.http.get(f"{API}/devices/{d['id']}/credentials", headers=viewer)
    ).status_code == 403
    r = await central.http.patch(
        f"{API}/devices/{d['id']}", headers=operator, json={"tags": ["ok"]}
    )
    assert r.status_code == 200
    r = await central.http.post(
        f"{API}/devices/{d['id']}/status", headers=operator, json={"status": "maintenance"}
    )
    assert r.json()["status"] == "maintenance"
    assert (
        await central.http.delete(f"{API}/devices/{d['id']}", headers=operator)
    ).status_code == 403  # deleting is the admin's
    other = await central.other_tenant_admin()
    for method in ("GET", "PATCH", "DELETE"):
        kw = {"json": {"tags": []}} if method == "PATCH" else {}
        r = await central.http.request(method, f"{API}/devices/{d['id']}", headers=other, **kw)
        assert r.status_code == 404, method
    r = await central.http.post(
        f"{API}/devices/{d['id']}/credentials/rotate", headers=other, json={}
    )
    assert r.status_code == 404
    assert (await central.http.get(f"{API}/devices", headers=other)).json()["items"] == []
    assert (await central.http.get(f"{API}/devices")).status_code == 401


async def test_quota(central: Central) -> None:
    async with central.db.session() as s:
        await s.execute(update(Tenant).values(max_devices=2))
    await _create(central, name="q1")
    await _create(central, name="q2")
    r = await central.http.post(f"{API}/devices", headers=central.admin, json={"name": "q3"})
    assert r.status_code == 409
    assert "quota of 2 devices" in r.json()["error"]["message"]


async def test_status_changes_publish_and_audit(central: Central) -> None:
    d = await _create(central, name="st")
    tenant_id = (await central.http.get(f"{API}/auth/me", headers=central.admin)).json()[
        "tenant_id"
    ]
    url = f"{API}/devices/{d['id']}/status"
    async with central.app.state.wrale.bus.subscribe(tenant_id) as queue:
        r = await central.http.post(
            url, headers=central.admin, json={"status": "maintenance", "reason": "fan swap"}
        )
        assert r.json()["status"] == "maintenance"
        event = queue.get_nowait()
    assert event.kind == "device.status"
    assert event.data["status"] == "maintenance"
    assert event.data["previous"] == "unknown"
    assert event.data["reason"] == "fan swap"
    online = await central.http.post(url, headers=central.admin, json={"status": "online"})
    assert online.status_code == 422
    assert online.json()["error"]["message"].startswith("status:")
    for status in ("decommissioned", "unknown"):
        r = await central.http.post(url, headers=central.admin, json={"status": status})
        assert r.json()["status"] == status
    entries = (
        await central.http.get(
            f"{API}/audit?action=device.status&resource_id={d['id']}", headers=central.admin
        )
    ).json()["items"]
    moves = sorted((e["before"]["status"], e["after"]["status"]) for e in entries)
    assert moves == [
        ("decommissioned", "unknown"),
        ("maintenance", "decommissioned"),
        ("unknown", "maintenance"),
    ]


async def test_mutations_are_audited(central: Central) -> None:
    d = await _create(central, name="aud")
    await central.http.patch(
        f"{API}/devices/{d['id']}", headers=central.admin, json={"tags": ["t"]}
    )
    await central.http.post(f"{API}/devices/{d['id']}/credentials/rotate", headers=central.admin)
    await central.http.post(f"{API}/devices/{d['id']}/credentials/revoke", headers=central.admin)
    await central.http.delete(f"{API}/devices/{d['id']}", headers=central.admin)
    items = (
        await central.http.get(f"{API}/audit?resource_id={d['id']}", headers=central.admin)
    ).json()["items"]
    by_action = {e["action"]: e for e in items}
    assert sorted(by_action) == [
        "device.create",
        "device.credentials.revoke",
        "device.credentials.rotate",
        "device.delete",
        "device.update",
    ]
    assert by_action["device.create"]["after"]["name"] == "aud"
    assert by_action["device.update"]["before"]["tags"] == []
    assert by_action["device.update"]["after"]["tags"] == ["t"]
    assert by_action["device.delete"]["before"]["name"] == "aud"
