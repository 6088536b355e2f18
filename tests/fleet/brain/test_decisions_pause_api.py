"""``GET /api/v1/decisions/loops`` and ``PUT /api/v1/decisions/loops/{loop}`` through the
real app on SQLite and PostgreSQL: operators pause and resume a loop everywhere or in one
site, everyone reads where each loop is paused, unknown loops and sites are 404."""

from __future__ import annotations

from tests.conftest import Central

API = "/api/v1"


async def test_pause_and_resume_a_loop(central: Central) -> None:
    c = central
    r = await c.http.post(f"{API}/sites", headers=c.admin, json={"name": "dc-1"})
    assert r.status_code == 201, r.text
    site = r.json()["id"]
    operator, viewer = await c.user("operator"), await c.user("viewer")
    r = await c.http.put(
        f"{API}/decisions/loops/capping", headers=operator, json={"paused": True, "site_id": site}
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"loop": "capping", "site_id": site, "paused": True}
    r = await c.http.put(
        f"{API}/decisions/loops/balancing", headers=operator, json={"paused": True}
    )
    assert r.status_code == 200, r.text
    r = await c.http.get(f"{API}/decisions/loops", headers=viewer)
    assert r.status_code == 200, r.text
    loops = {x["loop"]: x["paused"] for x in r.json()}
    assert [p["site_id"] for p in loops["capping"]] == [site]
    assert [p["site_id"] for p in loops["balancing"]] == [None]
    assert loops["placement"] == []
    assert loops["capping"][0]["paused_by"]

    r = await c.http.put(f"{API}/decisions/loops/capping", headers=viewer, json={"paused": False})
    assert r.status_code == 403
    r = await c.http.put(f"{API}/decisions/loops/cooking", headers=operator, json={"paused": True})
    assert r.status_code == 404
    r = await c.http.put(
        f"{API}/decisions/loops/capping",
        headers=operator,
        json={"paused": True, "site_id": "0" * 32},
    )
    assert r.status_code == 404
    r = await c.http.put(
        f"{API}/decisions/loops/capping", headers=operator, json={"paused": 1, "x": 2}
    )
    assert r.status_code == 422

    r = await c.http.put(
        f"{API}/decisions/loops/capping", headers=operator, json={"paused": False, "site_id": site}
    )
    assert r.json()["paused"] is False
    r = await c.http.get(f"{API}/decisions/loops", headers=viewer)
    assert {x["loop"]: x["paused"] for x in r.json()}["capping"] == []
