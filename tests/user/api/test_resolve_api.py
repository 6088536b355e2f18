"""``/resolve`` and ``/resolve/short-ids`` through the real API: names and id parts,
404 / 409 (with candidates) / 422 as JSON errors, the role of each kind, and another
tenant's objects invisible.

On SQLite only: the lookups' SQL (names, id prefixes and suffixes, wildcards and
injections, NUL and control characters, deleted objects, other tenants, short-id lengths)
runs on both databases in ``tests/fleet/brain/test_resolve_service.py``, and the route
only maps its answers and errors to HTTP, which does not depend on the database."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Central

pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)

API = "/api/v1"


async def make(c: Central, path: str, body: dict[str, Any]) -> str:
    r = await c.http.post(f"{API}{path}", json=body, headers=c.admin)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def resolve(c: Central, kind: str, ref: str, headers: dict[str, str] | None = None) -> Any:
    return await c.http.get(
        f"{API}/resolve", params={"kind": kind, "ref": ref}, headers=headers or c.admin
    )


async def test_names_and_short_ids_resolve(central: Central) -> None:
    c = central
    ids = {n: await make(c, "/devices", {"name": n}) for n in ("pi-1", "pi-2", "pi-3")}
    site = await make(c, "/sites", {"name": "Lab"})
    room = await make(c, "/rooms", {"site_id": site, "name": "Cellar"})
    rack = await make(c, "/racks", {"room_id": room, "name": "R1"})
    r = await resolve(c, "device", "pi-2")
    assert r.status_code == 200
    assert r.json() == {"kind": "device", "id": ids["pi-2"], "name": "pi-2"}
    assert (await resolve(c, "rack", "R1")).json()["id"] == rack
    assert (await resolve(c, "rack", rack[-6:])).json()["id"] == rack
    assert (await resolve(c, "room", room)).json()["name"] == "Cellar"
    r = await c.http.get(f"{API}/resolve/short-ids", params={"kind": "device"}, headers=c.admin)
    assert r.status_code == 200
    n = r.json()["length"]
    assert r.json()["kind"] == "device"
    assert 4 <= n <= 32
    for name, id_ in ids.items():
        assert (await resolve(c, "device", id_[-n:])).json()["name"] == name


async def test_ambiguous_and_missing(central: Central) -> None:
    c = central
    sites = [await make(c, "/sites", {"name": n}) for n in ("North", "South")]
    rooms = [await make(c, "/rooms", {"site_id": s, "name": "Hall"}) for s in sites]
    r = await resolve(c, "room", "Hall")
    assert r.status_code == 409
    err = r.json()["error"]
    assert err["code"] == "conflict"
    assert sorted(x["id"] for x in err["details"]["candidates"]) == sorted(rooms)
    assert "Hall (" in err["message"]
    r = await resolve(c, "device", "ghost")
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "no device matches 'ghost'"
    dev = await make(c, "/devices", {"name": "gone"})
    assert (await c.http.delete(f"{API}/devices/{dev}", headers=c.admin)).status_code == 204
    for ref in ("gone", dev, dev[-8:]):
        assert (await resolve(c, "device", ref)).status_code == 404


@pytest.mark.parametrize(
    ("kind", "ref"),
    [
        ("devices", "x"),
        ("", "x"),
        ("device", ""),
        ("device", "a" * 201),
        ("device", "pi\x00"),
        ("device", "pi\n1"),
        ("x" * 41, "x"),
    ],
)
async def test_bad_kinds_and_refs_are_422(central: Central, kind: str, ref: str) -> None:
    r = await resolve(central, kind, ref)
    assert r.status_code in (400, 422), r.text
    assert "error" in r.json()


@pytest.mark.parametrize("ref", ["%", "_", "%%%%", "____", "pi-%", "' or '1'='1"])
async def test_wildcards_find_nothing(central: Central, ref: str) -> None:
    await make(central, "/devices", {"name": "pi-1"})
    r = await resolve(central, "device", ref)
    assert r.status_code == 404, r.text


async def test_roles_and_tenants(central: Central) -> None:
    c = central
    dev = await make(c, "/devices", {"name": "mine"})
    tok = await c.http.post(f"{API}/api-tokens", json={"name": "ci"}, headers=c.admin)
    viewer, other = await c.user("viewer"), await c.other_tenant_admin()
    assert (await resolve(c, "device", "mine", viewer)).status_code == 200
    assert (await resolve(c, "token", "ci")).json()["id"] == tok.json()["id"]
    for kind in ("token", "user", "enrollment-token", "channel"):
        r = await resolve(c, kind, "ci", viewer)
        assert r.status_code == 403, r.text
        r = await c.http.get(f"{API}/resolve/short-ids", params={"kind": kind}, headers=viewer)
        assert r.status_code == 403
    for ref in ("mine", dev, dev[-8:]):
        assert (await resolve(c, "device", ref, other)).status_code == 404
    assert (await resolve(c, "token", "ci", other)).status_code == 404
    assert (
        await c.http.get(f"{API}/resolve", params={"kind": "device", "ref": "mine"})
    ).status_code == 401
