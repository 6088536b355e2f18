"""``wrale maintenance rules|tasks|done`` against a real central: a rule created from
``--when`` bounds for a rack, listed in words; its task (from stored 1-minute rollups, the
background loop's own pass) listed, shown in the queue, done with a note; the rule
deleted; bad bounds, ids and unknown metrics refused with a clear message."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from tests.fleet.brain.rules_kit import minutes
from tests.user.cli.conftest import CliCentral
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.services.maintenance.rules_runner import evaluate_all
from wrale.user.cli.client import CentralClient

pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


def test_rules_tasks_and_done(cli: CliCentral, database: Database) -> None:
    cli.login()
    token = json.loads(cli.session_file.read_text())["access_token"]
    with CentralClient(cli.url, token) as c:
        site = c.post("/sites", {"name": "dc-berlin"})["id"]
        room = c.post("/rooms", {"site_id": site, "name": "hall"})["id"]
        rack = c.post("/racks", {"room_id": room, "name": "r7"})["id"]
        hot = c.post("/devices", {"name": "pi-hot"})["id"]
        c.put(f"/devices/{hot}/location", {"rack_id": rack, "slot_u": 1})

    rule = cli.json(
        "maintenance", "rules", "create", "dusty", "--when", "cpu_temp_c > 75 for 1h",
        "--when", "fan_rpm < 1500 for 30m", "--title", "clean the fan", "--due", "3d",
        "--rack", "r7",
    )  # fmt: skip
    assert (rule["scope"], rule["scope_id"], rule["due_in_s"]) == ("rack", rack, 3 * 86_400.0)
    assert rule["condition"]["all"][1] == {
        "metric": "fan_rpm",
        "op": "<",
        "value": 1500.0,
        "for_s": 1800.0,
    }
    out = cli.ok("maintenance", "rules", "list")
    assert "dusty" in out
    assert "cpu_temp_c > 75 for 1h and fan_rpm < 1500 for 30m" in out
    assert "no open maintenance tasks" in cli.ok("maintenance", "tasks")

    async def heat() -> None:
        db = Database(database.url)
        try:
            now = time.time()
            await minutes(db, hot, "cpu_temp_c", [81.0] * 70, now)
            await minutes(db, hot, "fan_rpm", [1200.0] * 70, now)
            assert (await evaluate_all(db, now))["opened"] == 1
        finally:
            await db.dispose()

    asyncio.run(heat())
    (task,) = cli.json("maintenance", "tasks")
    assert (task["device_name"], task["title"], task["state"]) == (
        "pi-hot",
        "clean the fan",
        "open",
    )
    out = cli.ok("maintenance", "tasks")
    assert "clean the fan" in out
    assert "pi-hot" in out
    out = cli.ok("maintenance", "queue")
    assert "task: clean the fan" in out
    assert "r7" in out

    out = cli.ok("maintenance", "done", task["id"], "--note", "fan replaced")
    assert "done: clean the fan" in out
    assert cli.json("maintenance", "tasks") == []
    (closed,) = cli.json("maintenance", "tasks", "--all")
    assert (closed["state"], closed["note"]) == ("done", "fan replaced")
    r = cli.run("maintenance", "done", task["id"], "--note", "again")
    assert r.exit_code != 0

    assert "deleted" in cli.ok("maintenance", "rules", "delete", rule["id"])
    assert cli.json("maintenance", "rules", "list") == []


def test_bad_rules_are_refused(cli: CliCentral) -> None:
    cli.login()
    r = cli.run("maintenance", "rules", "create", "x", "--when", "cpu_temp_c is hot")
    assert r.exit_code != 0
    assert "METRIC OP NUMBER" in r.output
    r = cli.run("maintenance", "rules", "create", "x", "--when", "warp_core_c > 5")
    assert r.exit_code != 0
    assert "warp_core_c" in r.output
    r = cli.run("maintenance", "rules", "create", "x", "--when", "cpu_temp_c > 500")
    assert r.exit_code != 0
    assert "condition.all[0].value" in r.output
    r = cli.run("maintenance", "rules", "create", "x")
    assert r.exit_code != 0
    r = cli.run("maintenance", "rules", "delete", "nope")
    assert r.exit_code != 0
    assert "no maintenance rule matches 'nope'" in r.output
    r = cli.run("maintenance", "done", "nope", "--note", "x")
    assert r.exit_code != 0
