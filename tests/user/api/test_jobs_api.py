"""Jobs and the decision log through the real API on both databases: the contract's
shapes (docs/jobs.md), hostile bodies refused with a 422 that names the field, roles
(viewers read, operators create and stop), another organisation's jobs not found, cursor
pages, a placement's history, and the board's twin carrying its jobs."""

from __future__ import annotations

import time
from typing import Any

from tests.conftest import Central

API = "/api/v1"
SIM = {"kind": "sim_load", "cpu_pct": 30}


async def _boards(c: Central, *names: str) -> dict[str, str]:
    """Simulated boards, online now."""
    from wrale.fleet.brain.models import Device

    ids = {}
    for name in names:
        r = await c.http.post(
            f"{API}/devices", headers=c.admin, json={"name": name, "capabilities": ["sim"]}
        )
        assert r.status_code == 201, r.text
        ids[name] = r.json()["id"]
    async with c.db.session() as s:
        for device_id in ids.values():
            d = await s.get(Device, device_id)
            assert d is not None
            d.status, d.last_seen_at = "online", time.time()
    return ids


async def _create(c: Central, body: dict[str, Any], headers: Any = None) -> dict[str, Any]:
    r = await c.http.post(f"{API}/jobs", headers=headers or c.admin, json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_contract_shapes_roles_and_stop(central: Central) -> None:
    c = central
    boards = await _boards(c, "sim-a", "sim-b")
    operator, viewer = await c.user("operator"), await c.user("viewer")
    job = await _create(
        c,
        {"name": "render-42", "workload": SIM, "replicas": 3, "strategy": "spread"},
        operator,
    )
    assert {"id", "name", "state", "placements"} <= set(job)
    assert (job["name"], job["state"], job["priority"], job["strategy"]) == (
        "render-42",
        "pending",  # two boards for three replicas: one waits
        50,
        "spread",
    )
    assert (job["restartable"], job["allow_battery"], job["duration_s"]) == (True, False, None)
    assert (job["cpu_pct"], job["watts"], job["stopped_at"]) == (30.0, 1.5, None)
    placements = job["placements"]
    assert [(p["device_id"], p["state"]) for p in placements] == [
        (boards["sim-a"], "starting"),
        (boards["sim-b"], "starting"),
        (None, "pending"),
    ]
    assert {"id", "device_id", "state", "reason"} <= set(placements[0])
    assert placements[2]["reason"] == ("no eligible board of 2: 2 already running a replica of it")

    got = await c.http.get(f"{API}/jobs/{job['id']}", headers=viewer)
    assert got.status_code == 200, got.text
    assert got.json()["placements"] == placements

    # the board's twin carries its placement in the desired jobs section
    twin = (await c.http.get(f"{API}/devices/{boards['sim-a']}/twin", headers=viewer)).json()
    assert twin["desired"]["doc"]["jobs"] == {
        placements[0]["id"]: {
            "job": job["id"],
            "name": "render-42",
            "workload": SIM,
            "duration_s": None,
            "cpu_quota_pct": None,
        }
    }
    assert f"jobs.{placements[0]['id']}" in [d["path"] for d in twin["diff"]]

    history = await c.http.get(f"{API}/jobs/{job['id']}/transitions", headers=viewer)
    assert history.status_code == 200, history.text
    steps = [(t["from_state"], t["to_state"], t["actor"]) for t in history.json()]
    creator = steps[0][2]
    assert creator.startswith("operator-")
    assert steps.count((None, "pending", creator)) == 3
    assert steps.count(("pending", "starting", "brain")) == 2

    for method in ("post", "delete"):
        url = f"{API}/jobs" if method == "post" else f"{API}/jobs/{job['id']}"
        kwargs: dict[str, Any] = {"json": {"name": "x", "workload": SIM, "replicas": 1}}
        r = await getattr(c.http, method)(
            url, headers=viewer, **(kwargs if method == "post" else {})
        )
        assert r.status_code == 403, r.text
    other = await c.other_tenant_admin()
    assert (await c.http.get(f"{API}/jobs/{job['id']}", headers=other)).status_code == 404
    assert (await c.http.delete(f"{API}/jobs/{job['id']}", headers=other)).status_code == 404
    assert (await c.http.get(f"{API}/jobs", headers=other)).json()["items"] == []
    assert (await c.http.get(f"{API}/jobs/{'0' * 32}", headers=viewer)).status_code == 404
    assert (await c.http.get(f"{API}/jobs/not-an-id", headers=viewer)).status_code == 404

    stopped = await c.http.delete(f"{API}/jobs/{job['id']}", headers=operator)
    assert stopped.status_code == 200, stopped.text
    body = stopped.json()
    assert body["stopped_at"] is not None
    assert [p["state"] for p in body["placements"]] == ["starting", "starting", "stopped"]
    again = await c.http.delete(f"{API}/jobs/{job['id']}", headers=operator)
    assert again.json()["stopped_at"] == body["stopped_at"]
    twin = (await c.http.get(f"{API}/devices/{boards['sim-a']}/twin", headers=viewer)).json()
    assert twin["desired"]["doc"]["jobs"] == {}

    audit = (await c.http.get(f"{API}/audit", headers=c.admin, params={"limit": 500})).json()
    actions = [e["action"] for e in audit["items"]]
    assert actions.count("job.create") == 1
    assert actions.count("job.stop") == 1
    assert actions.count("job.placement") == 6


HOSTILE: list[tuple[dict[str, Any], str]] = [
    ({"workload": {"kind": "process", "argv": ["/x"] * 65}}, "workload.process.argv"),
    ({"workload": {"kind": "process", "argv": ["a" * 5000]}}, "workload.process.argv.0"),
    ({"workload": {"kind": "process", "argv": []}}, "workload.process.argv"),
    ({"workload": {"kind": "process", "argv": ["/x"], "env": {"1A": "v"}}}, "env"),
    ({"workload": {"kind": "process", "argv": ["/x\u0000y"]}}, "NUL"),
    ({"workload": {"kind": "shell", "argv": ["/x"]}}, "workload"),
    ({"workload": {"kind": "sim_load", "cpu_pct": 140}}, "workload.sim_load.cpu_pct"),
    ({"workload": {"kind": "sim_load", "cpu_pct": 40, "seed": 1}}, "seed"),
    ({"replicas": -3}, "replicas"),
    ({"replicas": "3"}, "replicas"),
    ({"replicas": 10_000}, "replicas"),
    ({"priority": 500}, "priority"),
    ({"strategy": "bin-pack"}, "strategy"),
    ({"max_per_rack": 0}, "max_per_rack"),
    ({"selector": {"colour": "red"}}, "selector.colour"),
    ({"hostname": "evil"}, "hostname"),
]


async def test_hostile_bodies_are_refused_naming_the_field(central: Central) -> None:
    c = central
    base = {"name": "job", "workload": SIM, "replicas": 1}
    for extra, where in HOSTILE:
        r = await c.http.post(f"{API}/jobs", headers=c.admin, json={**base, **extra})
        assert r.status_code == 422, (extra, r.text)
        error = r.json()["error"]
        assert error["code"] == "invalid_request"
        assert where in error["message"], (extra, error["message"])
    for raw in (b"[]", b"not json", b'{"name": "x", "workload": ' + b"[" * 5000):
        r = await c.http.post(
            f"{API}/jobs", headers={**c.admin, "content-type": "application/json"}, content=raw
        )
        assert r.status_code == 422, r.text
    missing = {"name": "job", "workload": SIM, "replicas": 1, "selector": {"rack_id": "f" * 32}}
    assert (await c.http.post(f"{API}/jobs", headers=c.admin, json=missing)).status_code == 404
    assert (await c.http.get(f"{API}/jobs", headers=c.admin)).json()["items"] == []


async def test_cursor_pages_and_the_decision_log(central: Central) -> None:
    c = central
    boards = await _boards(c, "b-1", "b-2", "b-3")
    made = [
        (await _create(c, {"name": f"j-{i}", "workload": SIM, "replicas": 1}))["id"]
        for i in range(5)
    ]
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await c.http.get(f"{API}/jobs", headers=c.admin, params=params)).json()
        assert len(page["items"]) <= 2
        assert all(len(j["placements"]) == 1 for j in page["items"])
        seen += [j["id"] for j in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made  # oldest first, each once
    running = await c.http.get(f"{API}/jobs", headers=c.admin, params={"state": "running"})
    assert len(running.json()["items"]) == 5
    bad = await c.http.get(f"{API}/jobs", headers=c.admin, params={"state": "exploded"})
    assert bad.status_code == 422

    viewer = await c.user("viewer")
    log = (await c.http.get(f"{API}/decisions", headers=viewer)).json()
    assert [d["action"] for d in log["items"]] == ["place"] * 5
    newest = log["items"][0]
    assert newest["loop"] == "placement"
    assert newest["subjects"]["job"] == made[-1]
    assert newest["summary"].startswith("replica 0 of j-4 on b-")
    assert newest["reasons"]
    assert newest["inputs"]["eligible_boards"] == 3
    on_b1 = await c.http.get(f"{API}/decisions", headers=viewer, params={"subject": boards["b-1"]})
    assert {d["subjects"]["device"] for d in on_b1.json()["items"]} == {boards["b-1"]}
    assert len(on_b1.json()["items"]) == 2  # j-0 and j-3: the boards in turn
    none = await c.http.get(f"{API}/decisions", headers=viewer, params={"loop": "capping"})
    assert none.json()["items"] == []
    later = await c.http.get(f"{API}/decisions", headers=viewer, params={"since": time.time() + 60})
    assert later.json()["items"] == []
    pages: list[str] = []
    cursor = None
    for _ in range(10):
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await c.http.get(f"{API}/decisions", headers=viewer, params=params)).json()
        pages += [d["id"] for d in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [d["id"] for d in log["items"]]
    for params in ({"subject": "b-1"}, {"loop": "DROP TABLE"}, {"since": -1}):
        r = await c.http.get(f"{API}/decisions", headers=viewer, params=params)
        assert r.status_code == 422, (params, r.text)
    other = await c.other_tenant_admin()
    assert (await c.http.get(f"{API}/decisions", headers=other)).json()["items"] == []
