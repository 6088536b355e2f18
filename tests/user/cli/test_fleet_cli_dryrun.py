"""``wrale dry-run`` against a real central wired with the digital copy: a rack budget cut
asked by rack name, waited for (the central's worker runs it) and printed without and with
the change; a new job and a stopped job queued with --no-wait, read with ``show``; bad
options refused before anything is sent, the central's refusals said plainly."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import run_sync
from tests.user.cli.conftest import CliCentral
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.telemetry import TelemetryLatest
from wrale.fleet.brain.services.dry_runs import DryRunWorker
from wrale.fleet.brain.services.telemetry_store import metric_ids
from wrale.user.cli.client import CentralClient
from wrale.user.simfleet.digital_copy import DigitalCopy

pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)
SIM = {"kind": "sim_load", "cpu_pct": 25}


def _fleet(cli: CliCentral, database_url: str) -> str:
    """Racks A1 and A2 (30 W budgets), three simulated boards each with fresh readings, a
    job of six replicas. Returns the job's id."""
    token = json.loads(cli.session_file.read_text())["access_token"]
    with CentralClient(cli.url, token) as c:
        site = c.post("/sites", {"name": "dc"})["id"]
        room = c.post("/rooms", {"site_id": site, "name": "Room A"})["id"]
        racks = {
            n: c.post("/racks", {"room_id": room, "name": n, "power_budget_w": 30.0})["id"]
            for n in ("A1", "A2")
        }
        boards = {
            n: c.post("/devices", {"name": n, "capabilities": ["sim"]})["id"]
            for n in ("a1", "a2", "a3", "b1", "b2", "b3")
        }

    async def place() -> None:
        db = Database(database_url)
        try:
            now = time.time()
            async with db.session() as s:
                ids = await metric_ids(s, ["cpu_temp_c", "power_w"])
                for name, device_id in boards.items():
                    d = await s.get(Device, device_id)
                    assert d is not None
                    d.status, d.last_seen_at = "online", now
                    d.rack_id = racks["A1" if name.startswith("a") else "A2"]
                    temp = 60.0 if name.startswith("a") else 45.0
                    for metric, value in (("cpu_temp_c", temp), ("power_w", 5.0)):
                        row = TelemetryLatest(
                            device_num=d.num, metric_id=ids[metric], ts=now, value=value
                        )
                        s.add(row)
        finally:
            await db.dispose()

    run_sync(place())
    with CentralClient(cli.url, token) as c:
        return str(c.post("/jobs", {"name": "render", "workload": SIM, "replicas": 6})["id"])


def _work(database_url: str) -> None:
    """The worker's turn (as the central's loop takes it), here and now."""

    async def go() -> None:
        db = Database(database_url)
        try:
            worker = DryRunWorker(DigitalCopy(), "cli-test")
            while await worker.run_once(db, time.time()) is not None:
                pass
        finally:
            await db.dispose()

    run_sync(go())


def test_a_rack_budget_cut_waited_for_and_printed(cli: CliCentral, database: Database) -> None:
    cli.login()
    _fleet(cli, database.url)
    out = cli.ok("dry-run", "rack-budget", "A1", "18", "--minutes", "2", "--timeout", "60")
    assert "without" in out
    assert "with" in out
    assert "work (CPU-s)" in out
    assert "A1" in out
    assert "30 → 18" in out
    assert "budget 18 W, next 2 min:" in out


def test_no_wait_show_and_refusals(cli: CliCentral, database: Database) -> None:
    cli.login()
    job = _fleet(cli, database.url)
    queued = cli.json(
        "dry-run", "job", "heat", "--sim-load", "50", "--replicas", "2", "--rack", "A2",
        "--minutes", "1", "--no-wait",
    )  # fmt: skip
    assert queued["state"] in ("queued", "running")
    out = cli.ok("dry-run", "stop-job", job, "--minutes", "1", "--no-wait")
    assert "queued; see it with: wrale dry-run show" in out
    stop_id = out.split()[1]
    _work(database.url)
    shown = cli.json("dry-run", "show", queued["id"])
    assert shown["state"] == "done", shown
    assert shown["change"]["selector"]["rack_id"]
    assert shown["result"]["fleet"]["difference"]["work_done"] > 0
    out = cli.ok("dry-run", "show", stop_id)
    assert "stopping job" in out
    assert "Racks (without → with)" in out

    for args, problem in [
        (("dry-run", "rack-budget", "A1", "18", "--minutes", "0"), "'--minutes'"),
        (("dry-run", "rack-budget", "A1", "18", "--minutes", "61"), "'--minutes'"),
        (("dry-run", "job", "x"), "either a command"),
        (("dry-run", "job", "x", "--sim-load", "5", "--strategy", "best"), "physical or spread"),
        (("dry-run", "rack-budget", "A1", "0"), "watts"),
    ]:
        r = cli.run(*args)
        assert r.exit_code == 2, r.output
        assert problem in r.output, r.output
    r = cli.run("dry-run", "rack-budget", "nowhere", "18")
    assert r.exit_code == 1
    assert "no rack matches 'nowhere'" in r.output
    r = cli.run("dry-run", "stop-job", "f" * 32, "--no-wait")
    assert r.exit_code == 1
    assert "no job" in r.output
    r = cli.run("dry-run", "show", "f" * 32)
    assert r.exit_code == 1
    assert "no dry-run" in r.output
