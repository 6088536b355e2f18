"""A rack's power draw (each device's latest ``power_w``, through the real telemetry
service) against its budget, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import time
from typing import Any

from tests.conftest import Central

API = "/api/v1"
_num = itertools.count(600_000)


async def rack_with_devices(c: Central, count: int, budget: float | None) -> tuple[str, list[str]]:
    from wrale.fleet.brain.models import Device

    tenant = (await c.http.get(f"{API}/auth/me", headers=c.admin)).json()["tenant_id"]
    site = (await c.http.post(f"{API}/sites", json={"name": "s"}, headers=c.admin)).json()
    room = await c.http.post(
        f"{API}/rooms", json={"site_id": site["id"], "name": "r"}, headers=c.admin
    )
    body: dict[str, Any] = {"room_id": room.json()["id"], "name": "k", "power_budget_w": budget}
    rack = (await c.http.post(f"{API}/racks", json=body, headers=c.admin)).json()["id"]
    ids = []
    async with c.db.session() as s:
        for i in range(count):
            d = Device(tenant_id=tenant, num=next(_num), name=f"pi-{i}", rack_id=rack, slot_u=i + 1)
            s.add(d)
            await s.flush()
            ids.append(d.id)
    return rack, ids


async def report(c: Central, device_id: str, seq: int, points: list[tuple[float, float]]) -> None:
    from wrale.fleet.brain.models import Device
    from wrale.fleet.brain.services.telemetry import ingest_batch

    async with c.db.session() as s:
        device = await s.get(Device, device_id)
        assert device is not None
        await ingest_batch(s, device, seq, [("power_w", ts, v) for ts, v in points])


async def test_rack_power_against_budget(central: Central) -> None:
    c = central
    rack, (a, b, silent) = await rack_with_devices(c, 3, budget=12)
    t = time.time() - 60
    await report(c, a, 1, [(t, 9.0), (t + 10, 6.5)])  # the latest counts, not the sum
    await report(c, b, 1, [(t + 5, 7.0)])
    viewer = await c.user("viewer")
    r = await c.http.get(f"{API}/racks/{rack}/power", headers=viewer)
    assert r.status_code == 200, r.text
    power = r.json()
    assert power["budget_w"] == 12
    assert power["draw_w"] == 13.5
    assert power["devices_reporting"] == 2
    assert power["headroom_w"] == -1.5
    assert power["over_budget"] is True
    by_id = {d["id"]: d for d in power["devices"]}
    assert by_id[a]["power_w"] == 6.5
    assert by_id[a]["at"] == t + 10
    assert by_id[silent]["power_w"] is None
    assert [d["slot_u"] for d in power["devices"]] == [1, 2, 3]


async def test_rack_power_without_budget_or_readings(central: Central) -> None:
    c = central
    rack, _ = await rack_with_devices(c, 2, budget=None)
    power = (await c.http.get(f"{API}/racks/{rack}/power", headers=c.admin)).json()
    assert power["draw_w"] == 0
    assert power["devices_reporting"] == 0
    assert power["headroom_w"] is None
    assert power["over_budget"] is False
    other = await c.other_tenant_admin()
    assert (await c.http.get(f"{API}/racks/{rack}/power", headers=other)).status_code == 404
