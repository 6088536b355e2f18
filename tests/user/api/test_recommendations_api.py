"""Recommendations through the real API on both databases: listed newest first with cursor
pages and filters (viewers read), accepted by operators (a room on battery: its
low-priority job stopped; a failed fan: acknowledged), dismissed with a reason; a decided
one is 409, an unknown or another organisation's one 404, hostile bodies and ids 4xx,
never 5xx."""

from __future__ import annotations

import time
from typing import Any

from tests.conftest import Central
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.telemetry import TelemetryLatest
from wrale.fleet.brain.services import recommendations
from wrale.fleet.brain.services.telemetry_store import metric_ids

API = "/api/v1"
SIM = {"kind": "sim_load", "cpu_pct": 30}


async def _post(c: Central, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = await c.http.post(f"{API}{path}", headers=c.admin, json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def _room(c: Central) -> tuple[str, dict[str, str]]:
    """Room A with racks A1 (a1, a2) and A2 (b1, b2), simulated boards online now; returns
    the organisation and the boards' ids."""
    site = await _post(c, "/sites", {"name": "dc"})
    room = await _post(c, "/rooms", {"site_id": site["id"], "name": "Room A"})
    racks = {
        n: (await _post(c, "/racks", {"room_id": room["id"], "name": n}))["id"]
        for n in ("A1", "A2")
    }
    ids = {}
    for name in ("a1", "a2", "b1", "b2"):
        ids[name] = (await _post(c, "/devices", {"name": name, "capabilities": ["sim"]}))["id"]
    async with c.db.session() as s:
        for name, device_id in ids.items():
            d = await s.get(Device, device_id)
            assert d is not None
            d.status, d.last_seen_at = "online", time.time()
            d.rack_id = racks["A1" if name.startswith("a") else "A2"]
            tenant = d.tenant_id
    return tenant, ids


async def _readings(c: Central, device_id: str, at: float, **values: float) -> None:
    async with c.db.session() as s:
        d = await s.get(Device, device_id)
        assert d is not None
        ids = await metric_ids(s, list(values))
        for name, value in values.items():
            s.add(TelemetryLatest(device_num=d.num, metric_id=ids[name], ts=at, value=value))


async def _situation(c: Central) -> tuple[str, dict[str, str], dict[str, Any]]:
    """A room on battery running a priority-20 job, rack A2 10 °C hotter at equal load, b1's
    fan failed; one pass of the loop."""
    tenant, ids = await _room(c)
    body = {"name": "batch", "workload": SIM, "replicas": 4, "priority": 20}
    job = await _post(c, "/jobs", {**body, "strategy": "spread"})
    now = time.time()
    for name, device_id in ids.items():
        hot = name.startswith("b")
        await _readings(
            c, device_id, now - 2,
            cpu_temp_c=60.0 if hot else 50.0, power_w=4.0, on_battery=1.0, battery_pct=40.0,
            fan_pct=90.0 if name == "b1" else 40.0, fan_rpm=0.0 if name == "b1" else 3000.0,
        )  # fmt: skip
    async with c.db.session() as s:
        assert await recommendations.recommend_tenant(s, tenant, now) == 3
    return tenant, ids, job


async def _list(c: Central, headers: Any, **params: Any) -> Any:
    r = await c.http.get(f"{API}/recommendations", headers=headers, params=params)
    assert r.status_code == 200, r.text
    return r.json()


async def test_list_accept_dismiss_and_roles(central: Central) -> None:
    c = central
    _, _, job = await _situation(c)
    viewer, operator = await c.user("viewer"), await c.user("operator")
    items = (await _list(c, viewer, state="open"))["items"]
    by_kind = {r["kind"]: r for r in items}
    assert set(by_kind) == {"battery_runtime", "rack_hot", "fan_failed"}
    battery = by_kind["battery_runtime"]
    assert battery["title"] == (
        "Room A on battery: runtime unknown (battery at 40 %); stop priority < 50 jobs?"
    )
    assert battery["action"] == {"kind": "stop_jobs", "job_ids": [job["id"]], "below_priority": 50}
    assert by_kind["rack_hot"]["title"].startswith("Rack A2 runs 10 °C above the room")
    assert by_kind["rack_hot"]["evidence"]["delta_c"] == 10.0
    assert by_kind["fan_failed"]["severity"] == "critical"
    assert {"id", "score", "advice", "state", "created_at", "result"} <= set(battery)
    only = await _list(c, viewer, kind="fan_failed")
    assert [r["kind"] for r in only["items"]] == ["fan_failed"]

    url = f"{API}/recommendations/{battery['id']}"
    r = await c.http.post(f"{url}/accept", headers=viewer)
    assert r.status_code == 403, r.text
    r = await c.http.post(f"{url}/accept", headers=operator)
    assert r.status_code == 200, r.text
    done = r.json()
    assert (done["state"], done["result"]) == ("accepted", f"stopped 1 job(s): {job['id']}")
    assert done["decided_by"]
    got = (await c.http.get(f"{API}/jobs/{job['id']}", headers=viewer)).json()
    assert got["stopped_at"] is not None
    for verb in ("accept", "dismiss"):
        r = await c.http.post(f"{url}/{verb}", headers=operator)
        assert r.status_code == 409, r.text
        assert r.json()["error"]["code"] == "conflict"

    fan = by_kind["fan_failed"]["id"]
    r = await c.http.post(f"{API}/recommendations/{fan}/accept", headers=operator)
    assert r.status_code == 200, r.text
    assert r.json()["result"].startswith("acknowledged (no automatic action)")

    hot = by_kind["rack_hot"]["id"]
    r = await c.http.post(
        f"{API}/recommendations/{hot}/dismiss", headers=operator, json={"reason": "door open"}
    )
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["result"]) == ("dismissed", "dismissed: door open")
    assert (await _list(c, viewer, state="open"))["items"] == []
    states = {r["kind"]: r["state"] for r in (await _list(c, viewer))["items"]}
    assert states == {
        "battery_runtime": "accepted",
        "fan_failed": "accepted",
        "rack_hot": "dismissed",
    }
    params = {"loop": "recommendations"}
    log = (await c.http.get(f"{API}/decisions", headers=viewer, params=params)).json()
    assert sorted(d["action"] for d in log["items"]) == ["accept", "accept"] + ["recommend"] * 3


async def test_cursor_pages_newest_first(central: Central) -> None:
    c = central
    await _situation(c)
    everything = [r["id"] for r in (await _list(c, c.admin))["items"]]
    assert everything == sorted(everything, reverse=True)
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = await _list(c, c.admin, **params)
        seen += [r["id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == everything


async def test_hostile_input_is_4xx_never_5xx(central: Central) -> None:
    c = central
    await _situation(c)
    rec = (await _list(c, c.admin, state="open"))["items"][0]["id"]
    url = f"{API}/recommendations/{rec}/dismiss"
    for body in ({"reason": "x" * 301}, {"reason": 5}, {"why": "x"}, {"reason": ["a"]}):
        r = await c.http.post(url, headers=c.admin, json=body)
        assert r.status_code == 422, (body, r.text)
    for raw in (b"[]", b"not json", b'{"reason": ' + b"[" * 5000):
        r = await c.http.post(
            url, headers={**c.admin, "content-type": "application/json"}, content=raw
        )
        assert r.status_code == 422, r.text
    for params in ({"state": "exploded"}, {"kind": "x"}, {"cursor": "zz"}, {"limit": 0}):
        r = await c.http.get(f"{API}/recommendations", headers=c.admin, params=params)
        assert r.status_code == 422, (params, r.text)
    for bad in ("0" * 32, "F" * 32, "x" * 2000, "%00", "..%2F..%2Fetc", "1;DROP TABLE x"):
        for verb in ("accept", "dismiss"):
            r = await c.http.post(f"{API}/recommendations/{bad}/{verb}", headers=c.admin)
            assert r.status_code in (404, 405, 422), (bad, verb, r.status_code, r.text)
    other = await c.other_tenant_admin()
    assert (await _list(c, other))["items"] == []
    for verb in ("accept", "dismiss"):
        r = await c.http.post(f"{API}/recommendations/{rec}/{verb}", headers=other)
        assert r.status_code == 404, r.text
    # still open: nothing hostile changed it
    assert rec in [r["id"] for r in (await _list(c, c.admin, state="open"))["items"]]
