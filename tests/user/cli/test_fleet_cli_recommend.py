"""``wrale recommend`` against a real central: the open recommendations listed highest score
first, one accepted (a room on battery: its low-priority job stopped), one dismissed with a
reason, a decided one refused with the central's message, bad ids and options refused
before anything is sent."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import run_sync
from tests.user.cli.conftest import CliCentral
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.telemetry import TelemetryLatest
from wrale.fleet.brain.services import recommendations
from wrale.fleet.brain.services.telemetry_store import metric_ids
from wrale.user.cli.client import CentralClient

pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)
SIM = {"kind": "sim_load", "cpu_pct": 30}


def _situation(cli: CliCentral, database_url: str) -> str:
    """Rack A2 10 °C hotter than A1 at equal load, the room on battery running a job of
    priority 20; one pass of the loop. Returns the job's id."""
    token = json.loads(cli.session_file.read_text())["access_token"]
    with CentralClient(cli.url, token) as c:
        tenant = c.get("/auth/me")["tenant_id"]
        site = c.post("/sites", {"name": "dc"})["id"]
        room = c.post("/rooms", {"site_id": site, "name": "Room A"})["id"]
        racks = {n: c.post("/racks", {"room_id": room, "name": n})["id"] for n in ("A1", "A2")}
        boards = {
            n: c.post("/devices", {"name": n, "capabilities": ["sim"]})["id"]
            for n in ("a1", "a2", "b1", "b2")
        }

    async def place() -> None:
        db = Database(database_url)
        try:
            async with db.session() as s:
                for name, device_id in boards.items():
                    d = await s.get(Device, device_id)
                    assert d is not None
                    d.status, d.last_seen_at = "online", time.time()
                    d.rack_id = racks["A1" if name.startswith("a") else "A2"]
        finally:
            await db.dispose()

    run_sync(place())
    with CentralClient(cli.url, token) as c:
        job = c.post(
            "/jobs",
            {"name": "batch", "workload": SIM, "replicas": 4, "priority": 20, "strategy": "spread"},
        )

    async def readings_and_pass() -> None:
        db = Database(database_url)
        try:
            now = time.time()
            async with db.session() as s:
                ids = await metric_ids(s, ["cpu_temp_c", "power_w", "on_battery", "battery_pct"])
                for name, device_id in boards.items():
                    d = await s.get(Device, device_id)
                    assert d is not None
                    values = {
                        "cpu_temp_c": 60.0 if name.startswith("b") else 50.0,
                        "power_w": 4.0,
                        "on_battery": 1.0,
                        "battery_pct": 40.0,
                    }
                    for metric, value in values.items():
                        s.add(
                            TelemetryLatest(
                                device_num=d.num, metric_id=ids[metric], ts=now - 2, value=value
                            )
                        )
            async with db.session() as s:
                assert await recommendations.recommend_tenant(s, tenant, now) == 2
        finally:
            await db.dispose()

    run_sync(readings_and_pass())
    return str(job["id"])


def test_list_accept_dismiss(cli: CliCentral, database: Database) -> None:
    cli.login()
    assert "Recommendations (0)" in cli.ok("recommend")
    job = _situation(cli, database.url)

    out = cli.ok("recommend")
    assert "Recommendations (2)" in out
    assert "Room A on battery" in out
    assert "stop 1 job(s)" in out
    items = cli.json("recommend")
    # highest score first: 10 °C over the room (70) before a runtime not known yet (60)
    assert [(r["kind"], r["score"]) for r in items] == [
        ("rack_hot", 70.0),
        ("battery_runtime", 60.0),
    ]
    hot, battery = items[0]["id"], items[1]["id"]

    out = cli.ok("recommend", "accept", battery)
    assert f"accepted: stopped 1 job(s): {job}" in out
    assert cli.json("jobs", "show", job)["stopped_at"] is not None
    out = cli.ok("recommend", "dismiss", hot, "--reason", "the door is open")
    assert "dismissed" in out
    assert cli.json("recommend") == []
    done = {r["kind"]: r for r in cli.json("recommend", "--state", "all")}
    assert done["rack_hot"]["result"] == "dismissed: the door is open"
    assert done["battery_runtime"]["state"] == "accepted"

    r = cli.run("recommend", "accept", battery)
    assert r.exit_code == 1
    assert "not open" in r.output
    for ref in ("../jobs", "x" * 40):  # resolved by the central, never put in a path
        r = cli.run("recommend", "accept", ref)
        assert r.exit_code == 1, (ref, r.output)
        assert f"no recommendation matches {ref!r}" in r.output
    r = cli.run("recommend", "--state", "exploded")
    assert r.exit_code == 2, r.output
    r = cli.run("recommend", "accept", "0" * 32)
    assert r.exit_code == 1
    assert "no recommendation" in r.output
