"""``GET /devices/{id}/wear`` and ``GET /maintenance/queue`` on SQLite and PostgreSQL: a
board whose fan lost RPM at equal duty is worn with its evidence and date and queued;
unknown and other organisations' boards are 404."""

from __future__ import annotations

from tests.conftest import Central
from tests.fleet.brain.wear_kit import DAYS, worn_fan


async def test_a_worn_fan_shows_in_the_board_and_the_queue(central: Central) -> None:
    c = central
    r = await c.http.post("/api/v1/devices", headers=c.admin, json={"name": "worn"})
    assert r.status_code == 201, r.text
    worn = r.json()["id"]
    r = await c.http.post("/api/v1/devices", headers=c.admin, json={"name": "fine"})
    fine = r.json()["id"]
    await worn_fan(c.db, worn)
    viewer = await c.user("viewer")
    r = await c.http.get(f"/api/v1/devices/{worn}/wear", headers=viewer)
    assert r.status_code == 200, r.text
    body = r.json()
    (fan,) = [t for t in body["trends"] if t["kind"] == "fan_wear"]
    assert fan["worn"] is True
    assert fan["wear_pct"] > 10
    assert fan["replace_before"] is not None
    assert len(fan["points"]) == DAYS
    assert body["due"] == fan["replace_before"]
    assert body["device_name"] == "worn"
    r = await c.http.get(f"/api/v1/devices/{fine}/wear", headers=viewer)
    assert r.status_code == 200
    assert r.json()["trends"] == []
    r = await c.http.get("/api/v1/maintenance/queue", headers=viewer)
    assert r.status_code == 200, r.text
    q = r.json()
    assert q["boards_read"] == 2
    assert q["truncated"] is False
    assert [[d["device_id"] for d in v["devices"]] for v in q["visits"]] == [[worn]]
    assert q["visits"][0]["rack_id"] is None
    assert q["visits"][0]["devices"][0]["device_name"] == "worn"


async def test_unknown_and_foreign_boards_are_404(central: Central) -> None:
    c = central
    r = await c.http.post("/api/v1/devices", headers=c.admin, json={"name": "mine"})
    mine = r.json()["id"]
    other = await c.other_tenant_admin()
    assert (await c.http.get(f"/api/v1/devices/{mine}/wear", headers=other)).status_code == 404
    r = await c.http.get("/api/v1/devices/no-such-board/wear", headers=c.admin)
    assert r.status_code == 404
    r = await c.http.get("/api/v1/maintenance/queue", headers=other)
    assert r.status_code == 200
    assert r.json()["visits"] == []
