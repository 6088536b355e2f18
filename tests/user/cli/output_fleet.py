"""A small fixed fleet for the CLI output tests, built through the central's API: a site,
a room, three racks (two with a power budget), seven boards with fixed names, temperatures
and power draws (full-precision floats), a group, two open alerts, a job and a rollout."""

from __future__ import annotations

import json
import time

from tests.conftest import run_sync
from tests.user.cli.conftest import CliCentral
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models.alerts import Alert
from wrale.user.cli.client import CentralClient

# name, rack, slot, tags, model, cpu_temp_c, power_w
BOARDS = [
    ("pi-01", "rack-a", 1, ["lab", "edge"], "Raspberry Pi 5", 81.25791304, 6.93422),
    ("pi-02", "rack-a", 2, ["lab"], "Raspberry Pi 5", 70.01314907491161, 5.1077),
    ("pi-03", "rack-a", 3, ["lab"], "Raspberry Pi 4", 63.4471, 4.8),
    ("pi-04", "rack-b", 1, ["lab", "kiosk"], "Raspberry Pi 5", 55.9, 3.123456789),
    ("pi-05", "rack-b", 2, ["kiosk"], "Raspberry Pi 4", 48.04, 2.7),
    ("pi-06", "rack-c", 1, [], "Raspberry Pi 5", 44.5, 3.0),
    ("pi-07-with-a-much-longer-name", None, None, ["field"], "CM4", 39.99, 2.25),
]


def build(cli: CliCentral, database: Database) -> dict[str, str]:
    """The fleet behind a logged-in ``cli``; returns the boards' ids by name."""
    cli.login()
    token = json.loads(cli.session_file.read_text())["access_token"]
    now = time.time()
    ids: dict[str, str] = {}
    with CentralClient(cli.url, token) as c:
        site = c.post("/sites", {"name": "hq", "address": "1 Fleet Street"})
        room = c.post("/rooms", {"site_id": site["id"], "name": "lab"})
        racks = {
            "rack-a": c.post("/racks", {"room_id": room["id"], "name": "rack-a",
                                        "power_budget_w": 20, "cooling_zone": "cold-1",
                                        "power_feed": "pdu-1"}),
            "rack-b": c.post("/racks", {"room_id": room["id"], "name": "rack-b", "units": 24,
                                        "power_budget_w": 50}),
            "rack-c": c.post("/racks", {"room_id": room["id"], "name": "rack-c"}),
        }  # fmt: skip
        for seq, (name, rack, slot, tags, model, temp, power) in enumerate(BOARDS, 1):
            d = c.post("/devices", {"name": name, "tags": tags, "model": model})
            ids[name] = d["id"]
            if rack:
                c.put(f"/devices/{d['id']}/location", {"rack_id": racks[rack]["id"],
                                                       "slot_u": slot})  # fmt: skip
            c.post(f"/devices/{d['id']}/telemetry", {"seq": seq, "points": [
                {"metric": "cpu_temp_c", "ts": now - 5, "value": temp},
                {"metric": "power_w", "ts": now - 5, "value": power},
            ]})  # fmt: skip
        c.post(f"/devices/{ids['pi-05']}/status", {"status": "maintenance", "reason": "fan"})
        c.post(f"/devices/{ids['pi-06']}/status", {"status": "decommissioned"})
        c.post("/groups", {"name": "lab-boards", "kind": "dynamic",
                           "selector": {"tags_all": ["lab"]}})  # fmt: skip
        c.post("/groups", {"name": "spares", "description": "boards on the shelf"})
        tenant = c.get("/auth/me")["tenant_id"]
    _alert(database, tenant, ids["pi-01"], "MAJOR", "cpu_temp_c 81.3 > 80", 81.25791304, now)
    _alert(database, tenant, ids["pi-02"], "WARNING", "cpu_temp_c 70 > 70", 70.0131, now + 1)
    cli.ok("jobs", "create", "heat", "--sim-load", "40", "--strategy", "spread")
    cli.ok(
        "rollouts", "create", "fans", "--policy-kind", "thermal", "--values",
        '{"hysteresis_c": 3}', "--tag", "kiosk", "--waves", '[{"count": 1}, {"percent": 100}]',
    )  # fmt: skip
    return ids


def _alert(db_fixture: Database, tenant: str, device: str, severity: str, message: str,
           value: float, at: float) -> None:  # fmt: skip
    async def go() -> None:
        db = Database(db_fixture.url)
        try:
            async with db.session() as s:
                s.add(Alert(
                    tenant_id=tenant, rule_name="hot", key=f"k-{device}", metric="cpu_temp_c",
                    device_id=device, severity=severity, state="active", value=value,
                    threshold=70.0, message=message, raised_at=at, updated_at=at,
                ))  # fmt: skip
        finally:
            await db.dispose()

    run_sync(go())
