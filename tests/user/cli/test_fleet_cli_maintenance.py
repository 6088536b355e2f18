"""``wrale maintenance`` against a real central: a window created for a site with its
conditions, listed, a board's status naming the next opening, the window deleted; bad
cron and ids refused with a clear message."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.fleet.brain.wear_kit import worn_fan
from tests.user.cli.conftest import CliCentral
from wrale.fleet.brain.db import Database
from wrale.user.cli.client import CentralClient

pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


def test_create_list_status_delete(cli: CliCentral) -> None:
    cli.login()
    token = json.loads(cli.session_file.read_text())["access_token"]
    with CentralClient(cli.url, token) as c:
        site = c.post("/sites", {"name": "dc-berlin"})["id"]
        room = c.post("/rooms", {"site_id": site, "name": "hall"})["id"]
        rack = c.post("/racks", {"room_id": room, "name": "r1"})["id"]
        dev = c.post("/devices", {"name": "pi-m"})["id"]
        c.put(f"/devices/{dev}/location", {"rack_id": rack, "slot_u": 1})

    w = cli.json(
        "maintenance", "windows", "create", "sunday", "--cron", "0 3 29 2 *",
        "--duration", "2h", "--timezone", "Europe/Berlin", "--site", "dc-berlin",
        "--mains", "--battery-min", "40", "--case-closed",
    )  # fmt: skip
    assert (w["scope"], w["scope_id"], w["duration_s"]) == ("site", site, 7200.0)
    assert w["conditions"] == {"not_on_battery": True, "battery_min_pct": 40.0, "case_closed": True}
    out = cli.ok("maintenance", "windows", "list")
    assert "sunday" in out
    assert "battery≥40%" in out

    status = cli.json("maintenance", "status", "pi-m")
    assert status["may_disrupt"] is False
    assert status["reason"].endswith("03:00 Europe/Berlin")
    out = cli.ok("maintenance", "status", "pi-m")
    assert "disruptive commands may run now: no: next window opens" in out

    assert "deleted" in cli.ok("maintenance", "windows", "delete", w["id"])
    assert cli.json("maintenance", "windows", "list") == []
    assert cli.json("maintenance", "status", "pi-m")["may_disrupt"] is True


def test_bad_input_is_refused(cli: CliCentral) -> None:
    cli.login()
    r = cli.run("maintenance", "windows", "create", "x", "--cron", "0 99 * * *", "--duration", "1h")
    assert r.exit_code != 0
    assert "cron" in r.output
    r = cli.run("maintenance", "windows", "delete", "nope")
    assert r.exit_code != 0
    assert "no window matches 'nope'" in r.output
    r = cli.run(
        "maintenance", "windows", "create", "x", "--cron", "0 1 * * *", "--duration", "soon"
    )
    assert r.exit_code != 0


def test_wear_and_the_queue_name_boards_racks_and_sites(
    cli: CliCentral, database: Database
) -> None:
    cli.login()
    token = json.loads(cli.session_file.read_text())["access_token"]
    with CentralClient(cli.url, token) as c:
        site = c.post("/sites", {"name": "dc-berlin"})["id"]
        room = c.post("/rooms", {"site_id": site, "name": "hall"})["id"]
        rack = c.post("/racks", {"room_id": room, "name": "r7"})["id"]
        worn = c.post("/devices", {"name": "pi-worn"})["id"]
        c.post("/devices", {"name": "pi-fine"})
        c.put(f"/devices/{worn}/location", {"rack_id": rack, "slot_u": 3})
    assert "nothing to replace (2 boards read)" in cli.ok("maintenance", "queue")

    async def store() -> None:
        db = Database(database.url)
        try:
            await worn_fan(db, worn)
        finally:
            await db.dispose()

    asyncio.run(store())
    out = cli.ok("maintenance", "wear", "pi-worn")
    assert "pi-worn (dc-berlin / r7): replace before 20" in out
    assert "fan_wear" in out
    assert "no wear trend yet" in cli.ok("maintenance", "wear", "pi-fine")
    out = cli.ok("maintenance", "queue")
    assert "dc-berlin" in out
    assert "r7" in out
    assert "pi-worn" in out
    assert "pi-fine" not in out
    assert "fan_wear" in out
    q = cli.json("maintenance", "queue")
    assert [d["device_name"] for v in q["visits"] for d in v["devices"]] == ["pi-worn"]
    assert q["visits"][0]["rack_name"] == "r7"
    r = cli.run("maintenance", "wear", "no-such-board")
    assert r.exit_code != 0
