"""Dry-runs through the real API and the real worker on both databases (docs/dry-run.md):
queued with 202, run by the worker with the digital copy (never by the request), read
with the result; a rack budget cut, a new job and a stopped job; hostile bodies 422 that
name the field, unknown racks, jobs and dry-runs 404, viewers read but do not create,
runs that cannot be done fail with the reason; a lost run fails; the app wired with a
copy runs queued dry-runs from its maintenance loop."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from sqlalchemy import update

from tests.conftest import Central
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.dry_runs import DryRun
from wrale.fleet.brain.models.telemetry import TelemetryLatest
from wrale.fleet.brain.services.dry_runs import LOST_AFTER_S, DryRunWorker, fail_lost
from wrale.fleet.brain.services.telemetry_store import metric_ids
from wrale.shared.central_settings import CentralSettings
from wrale.user.api.app import create_app
from wrale.user.simfleet.digital_copy import DigitalCopy

API = "/api/v1"
SIM = {"kind": "sim_load", "cpu_pct": 25}


async def _post(c: Central, path: str, body: dict[str, Any], status: int = 201) -> Any:
    r = await c.http.post(f"{API}{path}", headers=c.admin, json=body)
    assert r.status_code == status, r.text
    return r.json()


async def _fleet(c: Central, *, readings: bool = True) -> dict[str, str]:
    """Racks A1 (a1-a3, 60 °C) and A2 (b1-b3, 45 °C), 30 W budgets, simulated boards
    online with fresh readings; returns the racks' and boards' ids."""
    site = await _post(c, "/sites", {"name": "dc"})
    room = await _post(c, "/rooms", {"site_id": site["id"], "name": "Room A"})
    ids = {
        n: (await _post(c, "/racks", {"room_id": room["id"], "name": n, "power_budget_w": 30.0}))[
            "id"
        ]
        for n in ("A1", "A2")
    }
    for name in ("a1", "a2", "a3", "b1", "b2", "b3"):
        ids[name] = (await _post(c, "/devices", {"name": name, "capabilities": ["sim"]}))["id"]
    now = time.time()
    async with c.db.session() as s:
        mids = await metric_ids(s, ["cpu_temp_c", "power_w", "fan_pct", "fan_rpm"])
        for name in ("a1", "a2", "a3", "b1", "b2", "b3"):
            d = await s.get(Device, ids[name])
            assert d is not None
            d.status, d.last_seen_at = "online", now
            d.rack_id = ids["A1" if name.startswith("a") else "A2"]
            if not readings:
                continue
            values = {
                "cpu_temp_c": 60.0 if name.startswith("a") else 45.0,
                "power_w": 5.0,
                "fan_pct": 40.0,
                "fan_rpm": 3000.0,
            }
            for metric, value in values.items():
                s.add(
                    TelemetryLatest(device_num=d.num, metric_id=mids[metric], ts=now, value=value)
                )
    return ids


async def _run(c: Central) -> str | None:
    return await DryRunWorker(DigitalCopy(), "test-worker").run_once(c.db, time.time())


async def _get(c: Central, dry_run_id: str, headers: Any = None) -> dict[str, Any]:
    r = await c.http.get(f"{API}/dry-runs/{dry_run_id}", headers=headers or c.admin)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_a_rack_budget_cut_queued_run_by_the_worker_and_read(central: Central) -> None:
    c = central
    ids = await _fleet(c)
    job = await _post(c, "/jobs", {"name": "render", "workload": SIM, "replicas": 6})
    assert all(p["device_id"] for p in job["placements"]), job
    change = {"kind": "rack_budget", "rack": ids["A1"], "watts": 18.0}
    queued = await _post(c, "/dry-runs", {"change": change, "minutes": 3}, 202)
    assert set(queued) == {"id", "state"}
    assert queued["state"] == "queued"
    viewer = await c.user("viewer")
    got = await _get(c, queued["id"], viewer)
    assert (got["state"], got["result"], got["change"], got["minutes"]) == (
        "queued",
        None,
        change,
        3,
    )

    assert await _run(c) == queued["id"]
    assert await _run(c) is None  # nothing else queued
    done = await _get(c, queued["id"], viewer)
    assert done["state"] == "done", done
    assert done["error"] is None
    assert done["started_at"] <= done["finished_at"]
    result = done["result"]
    assert result["boards_modelled"] == 6
    racks = {r["rack"]: r for r in result["racks"]}
    assert racks[ids["A1"]]["budget_w"] == {"without": 30.0, "with": 18.0}
    a1 = racks[ids["A1"]]
    assert a1["with"]["mean_draw_w"] < a1["without"]["mean_draw_w"]
    assert a1["difference"]["work_done"] < 0 or a1["difference"]["throttled_board_s"] > 0
    assert result["summary"].startswith("rack A1 budget 18 W, next 3 min:")
    assert {r["name"] for r in result["racks"]} == {"A1", "A2"}

    listed = await c.http.get(f"{API}/dry-runs", headers=viewer)
    assert listed.status_code == 200, listed.text
    assert [d["id"] for d in listed.json()["items"]] == [queued["id"]]
    done_only = await c.http.get(f"{API}/dry-runs?state=queued", headers=viewer)
    assert done_only.json()["items"] == []

    r = await c.http.post(f"{API}/dry-runs", headers=viewer, json={"change": change})
    assert r.status_code == 403, r.text


async def test_a_new_job_and_stopping_one(central: Central) -> None:
    c = central
    ids = await _fleet(c)
    job = await _post(c, "/jobs", {"name": "render", "workload": SIM, "replicas": 4})
    new = {"kind": "job", "name": "heat", "workload": {"kind": "sim_load", "cpu_pct": 50}}
    add = await _post(c, "/dry-runs", {"change": {**new, "replicas": 2}, "minutes": 2}, 202)
    stop = await _post(
        c, "/dry-runs", {"change": {"kind": "stop_job", "job": job["id"]}, "minutes": 2}, 202
    )
    assert await _run(c) == add["id"]  # oldest first
    assert await _run(c) == stop["id"]
    added, stopped = await _get(c, add["id"]), await _get(c, stop["id"])
    assert added["state"] == stopped["state"] == "done", (added, stopped)
    assert added["change"]["strategy"] == "physical"  # the job's defaults, as stored
    assert added["result"]["fleet"]["difference"]["work_done"] > 0
    assert stopped["result"]["fleet"]["difference"]["work_done"] < 0
    assert "job 'heat' (2 × 50 % CPU, physical)" in added["result"]["summary"]
    assert ids["A1"] in {r["rack"] for r in stopped["result"]["racks"]}


async def test_hostile_bodies_and_unknown_names(central: Central) -> None:
    c = central
    ids = await _fleet(c)
    rack = {"kind": "rack_budget", "rack": ids["A1"], "watts": 20.0}
    cases: list[tuple[Any, int, str]] = [
        ({"change": rack, "minutes": 0}, 422, "minutes"),
        ({"change": rack, "minutes": 61}, 422, "minutes"),
        ({"change": rack, "minutes": "5"}, 422, "minutes"),
        ({"change": rack, "minutes": True}, 422, "minutes"),
        ({"change": rack, "minutes": 5, "extra": 1}, 422, "extra"),
        ({"change": "rack_budget"}, 422, "change"),
        ({"change": [rack]}, 422, "change"),
        ({"minutes": 5}, 422, "change"),
        ({"change": {"kind": "reboot"}}, 422, "job, stop_job, rack_budget"),
        ({"change": {"kind": ["job"]}}, 422, "change.kind"),
        ({"change": {**rack, "watts": -1}}, 422, "change.watts"),
        ({"change": {**rack, "watts": "20"}}, 422, "change.watts"),
        ({"change": {**rack, "colour": "red"}}, 422, "change.colour"),
        ({"change": {"kind": "rack_budget", "rack": "../../etc", "watts": 5}}, 422, "change.rack"),
        ({"change": {"kind": "stop_job", "job": "x" * 5000}}, 422, "change.job"),
        ({"change": {"kind": "job", "name": "x", "workload": SIM}}, 422, "change.replicas"),
        (
            {"change": {"kind": "job", "name": "x", "workload": SIM, "replicas": 1, "p": 1}},
            422,
            "change.p",
        ),
        ({"change": {**rack, "rack": "f" * 32}}, 404, "no rack"),
        ({"change": {"kind": "stop_job", "job": "f" * 32}}, 404, "no job"),
        (
            {
                "change": {
                    "kind": "job",
                    "name": "x",
                    "workload": SIM,
                    "replicas": 1,
                    "selector": {"rack_id": "f" * 32},
                }
            },
            404,
            "rack",
        ),
    ]
    for body, status, words in cases:
        r = await c.http.post(f"{API}/dry-runs", headers=c.admin, json=body)
        assert r.status_code == status, (body, r.text)
        assert words in r.text, (body, r.text)
    rack_id = ids["A1"]
    raw = f'{{"change": {{"kind": "rack_budget", "rack": "{rack_id}", "watts": 1e999}}}}'
    for text in ("{", raw, '{"change": {"kind": "rack_budget", "watts": NaN}}'):
        bad = await c.http.post(
            f"{API}/dry-runs",
            headers={**c.admin, "content-type": "application/json"},
            content=text.encode(),
        )
        assert bad.status_code == 422, (text, bad.text)
    for path, status in (("f" * 32, 404), ("nope", 404), ("%00", 422)):
        r = await c.http.get(f"{API}/dry-runs/{path}", headers=c.admin)
        assert r.status_code == status, r.text
    mine = await _post(c, "/dry-runs", {"change": rack}, 202)
    other = await c.other_tenant_admin()
    r = await c.http.get(f"{API}/dry-runs/{mine['id']}", headers=other)
    assert r.status_code == 404, r.text
    r = await c.http.get(f"{API}/dry-runs", headers=other)
    assert r.json()["items"] == []
    r = await c.http.post(f"{API}/dry-runs", headers=other, json={"change": rack})
    assert r.status_code == 404, r.text  # another organisation's rack is not found


async def test_runs_that_cannot_be_done_fail_with_the_reason(central: Central) -> None:
    c = central
    ids = await _fleet(c, readings=False)
    job = await _post(c, "/jobs", {"name": "render", "workload": SIM, "replicas": 1})
    rack = {"kind": "rack_budget", "rack": ids["A1"], "watts": 20.0}
    blind = await _post(c, "/dry-runs", {"change": rack, "minutes": 1}, 202)
    late = await _post(
        c, "/dry-runs", {"change": {"kind": "stop_job", "job": job["id"]}, "minutes": 1}, 202
    )
    r = await c.http.delete(f"{API}/jobs/{job['id']}", headers=c.admin)
    assert r.status_code == 200, r.text
    assert await _run(c) == blind["id"]
    assert await _run(c) == late["id"]
    failed = await _get(c, blind["id"])
    assert (failed["state"], failed["result"]) == ("failed", None)
    assert "nothing to copy" in failed["error"]
    assert "already stopped" in (await _get(c, late["id"]))["error"]

    lost = await _post(c, "/dry-runs", {"change": rack}, 202)
    async with c.db.session() as s:
        await s.execute(
            update(DryRun).where(DryRun.id == lost["id"]).values(state="running", started_at=0.0)
        )
    assert await fail_lost(c.db, LOST_AFTER_S + 1.0) == 1
    assert "worker was lost" in (await _get(c, lost["id"]))["error"]


async def test_the_wired_app_runs_queued_dry_runs_in_its_maintenance_loop(
    database: Database, tmp_path: Path
) -> None:
    settings = CentralSettings(
        data_dir=tmp_path,
        secret_key="test-secret-key-0123456789abcdef",
        admin_password="admin-password-1",
        dev=True,
    )
    app = create_app(settings, database=database, migrate=False, dry_runner=DigitalCopy())
    import httpx

    async with app.router.lifespan_context(app):
        runner = app.state.background
        assert "dry_runs" in [j.name for j in runner.jobs]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://central") as http:
            c = Central(http=http, db=database, app=app)
            c.admin = await c.login("admin", "admin-password-1")
            ids = await _fleet(c)
            rack = {"kind": "rack_budget", "rack": ids["A2"], "watts": 20.0}
            queued = await _post(c, "/dry-runs", {"change": rack, "minutes": 1}, 202)
            assert (await _get(c, queued["id"]))["state"] == "queued"  # not in the request
            await runner.run_once(time.time())
            for _ in range(400):
                got = await _get(c, queued["id"])
                if got["state"] in ("done", "failed"):
                    break
                await asyncio.sleep(0.05)
            assert got["state"] == "done", got["error"]


async def test_listed_newest_first_in_cursor_pages(central: Central) -> None:
    c = central
    ids = await _fleet(c)
    made = []
    for watts in (10.0, 20.0, 30.0):
        change = {"kind": "rack_budget", "rack": ids["A1"], "watts": watts}
        made.append((await _post(c, "/dry-runs", {"change": change, "minutes": 1}, 202))["id"])
    first = (await c.http.get(f"{API}/dry-runs?limit=2", headers=c.admin)).json()
    assert [d["id"] for d in first["items"]] == [made[2], made[1]]
    r = await c.http.get(f"{API}/dry-runs?limit=2&cursor={first['next_cursor']}", headers=c.admin)
    assert [d["id"] for d in r.json()["items"]] == [made[0]]
    assert r.json()["next_cursor"] is None


async def test_one_dry_run_at_a_time_per_worker(central: Central) -> None:
    c = central
    ids = await _fleet(c)
    queued = [
        (await _post(c, "/dry-runs", {"change": {"kind": "rack_budget", "rack": ids[r],
                                                 "watts": 20.0}, "minutes": 1}, 202))["id"]
        for r in ("A1", "A2")
    ]  # fmt: skip
    worker = DryRunWorker(DigitalCopy(), "one-at-a-time")
    assert await worker.run_once(c.db, time.time(), wait=False) == queued[0]
    busy_now = worker.busy
    assert busy_now
    assert await worker.run_once(c.db, time.time(), wait=False) is None  # busy: not claimed
    assert (await _get(c, queued[1]))["state"] == "queued"
    await worker.wait_idle()
    assert not worker.busy
    assert (await _get(c, queued[0]))["state"] == "done"
    assert await worker.run_once(c.db, time.time()) == queued[1]
    assert (await _get(c, queued[1]))["state"] == "done"
