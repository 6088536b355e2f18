"""``wrale tokens / enroll-bulk / devices / racks / groups`` against a real central:
bulk enrollment of 50 boards with a progress bar and a 0600 credentials file, the
registry, placement and groups."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.user.cli.conftest import CliCentral
from wrale.user.cli.client import CentralClient
from wrale.user.cli.fleet_enroll import device_names

pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


def _token(cli: CliCentral, *args: str) -> str:
    return str(cli.json("tokens", "create", "--name", "batch", *args)["token"])


def test_bulk_enrollment_of_50_boards(cli: CliCentral, tmp_path: Path) -> None:
    cli.login()
    token = _token(cli, "--uses", "50", "--expires", "1h", "--tag", "lab")
    out = cli.ok(
        "enroll-bulk", "--token", token, "--count", "50", "--prefix", "rack1-",
        "--batch", "20", "--out", "creds.json",
    )  # fmt: skip
    assert "50/50" in out  # the progress bar's last frame
    assert "enrolled 50 boards (rack1-01 … rack1-50)" in out
    creds = tmp_path / "creds.json"
    assert creds.stat().st_mode & 0o777 == 0o600
    doc = json.loads(creds.read_text())
    assert doc["central_url"] == cli.url
    names = [d["name"] for d in doc["devices"]]
    assert names == device_names("rack1-", 1, 50)
    assert len({d["device_secret"] for d in doc["devices"]}) == 50  # never shared

    devices = cli.json("devices", "list", "--tag", "lab")
    assert len(devices) == 50
    assert {d["id"] for d in devices} == {d["device_id"] for d in doc["devices"]}
    tokens = cli.json("tokens", "list")
    assert tokens[0]["uses"] == 50
    assert tokens[0]["state"] == "used_up"
    assert "used_up" in cli.ok("tokens", "list")

    # the token is spent: nothing more is enrolled, the existing file is not overwritten
    r = cli.run("enroll-bulk", "--token", token, "--count", "2", "--out", "creds.json")
    assert r.exit_code == 1
    assert "exists" in r.output
    r = cli.run("enroll-bulk", "--token", token, "--count", "2", "--out", "more.json")
    assert r.exit_code == 1
    assert "error:" in r.output
    assert not (tmp_path / "more.json").exists()


def test_partial_enrollment_keeps_the_credentials_it_got(cli: CliCentral, tmp_path: Path) -> None:
    cli.login()
    token = _token(cli, "--uses", "5")
    r = cli.run("enroll-bulk", "--token", token, "--count", "8", "--batch", "3")
    assert r.exit_code == 1
    assert "enrolled 3 of 8" in r.output  # batch 1 fitted, batch 2 (3 more of 2 left) did not
    doc = json.loads((tmp_path / "wrale-credentials.json").read_text())
    assert len(doc["devices"]) == 3


def test_enrollment_with_the_token_alone(
    cli: CliCentral, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli.login()
    token = _token(cli, "--unlimited")
    cli.ok("logout")
    monkeypatch.setenv("WRALE_CENTRAL_URL", cli.url)
    out = cli.ok("enroll-bulk", "--token", token, "--count", "4", "--prefix", "kiosk-")
    assert "enrolled 4 boards" in out
    doc = json.loads((tmp_path / "wrale-credentials.json").read_text())
    assert [d["name"] for d in doc["devices"]] == ["kiosk-01", "kiosk-02", "kiosk-03", "kiosk-04"]
    summary = cli.json(
        "enroll-bulk", "--token", token, "--count", "2", "--start", "5", "--prefix", "kiosk-",
        "--out", "more.json",
    )  # fmt: skip
    assert summary["enrolled"] == 2
    assert [d["name"] for d in summary["devices"]] == ["kiosk-05", "kiosk-06"]
    assert "device_secret" not in json.dumps(summary)  # secrets only in the 0600 file


def test_devices_show_update_maintenance_decommission(cli: CliCentral) -> None:
    cli.login()
    cli.ok("enroll-bulk", "--token", _token(cli, "--uses", "3"), "--count", "3", "--prefix", "pi-")
    table = cli.ok("devices", "list")
    assert "Devices (3)" in table
    assert "pi-01" in table
    assert "pi-03" in table

    shown = cli.json("devices", "show", "pi-02")
    assert shown["name"] == "pi-02"
    assert shown["status"] == "unknown"
    assert "pi-02" in cli.ok("devices", "show", shown["id"])

    updated = cli.json("devices", "update", "pi-02", "--name", "edge-2", "--tag", "a", "--tag", "b")
    assert updated["name"] == "edge-2"
    assert updated["tags"] == ["a", "b"]
    assert [d["name"] for d in cli.json("devices", "list", "--tag", "b")] == ["edge-2"]
    r = cli.run("devices", "update", "edge-2")
    assert r.exit_code == 1
    assert "nothing to change" in r.output

    assert "maintenance" in cli.ok("devices", "maintenance", "edge-2", "on")
    assert [d["name"] for d in cli.json("devices", "list", "--status", "maintenance")] == ["edge-2"]
    assert "unknown" in cli.ok("devices", "maintenance", "edge-2", "off")
    assert "decommissioned" in cli.ok("devices", "decommission", "pi-03", "--yes")

    r = cli.run("devices", "show", "no-such-board")
    assert r.exit_code == 1
    assert "no device matches 'no-such-board'" in r.output
    r = cli.run("devices", "show", "0" * 32)
    assert r.exit_code == 1
    assert "error:" in r.output
    assert len(cli.json("devices", "list", "--limit", "2")) == 2


def test_iter_all_follows_the_cursor(cli: CliCentral) -> None:
    cli.login()
    cli.ok("enroll-bulk", "--token", _token(cli, "--uses", "23"), "--count", "23")
    token = json.loads(cli.session_file.read_text())["access_token"]
    with CentralClient(cli.url, token) as c:
        ids = [d["id"] for d in c.iter_all("/devices", page_size=5)]
        assert len(ids) == 23
        assert ids == sorted(ids)
        assert len(set(ids)) == 23
        assert len(list(c.iter_all("/devices", page_size=5, limit=12))) == 12


def test_topology_and_placement(cli: CliCentral) -> None:
    cli.login()
    cli.ok("enroll-bulk", "--token", _token(cli, "--uses", "2"), "--count", "2", "--prefix", "n")
    site = cli.json("sites", "create", "Leeds", "--address", "1 Mill St")
    cli.ok("rooms", "create", "Server room", "--site", "Leeds")
    rack = cli.json(
        "racks",
        "create",
        "R1",
        "--room",
        "Server room",
        "--units",
        "12",
        "--power-budget",
        "60",
        "--power-feed",
        "pdu-a",
    )
    assert rack["units"] == 12
    assert rack["power_budget_w"] == 60
    assert rack["power_feed"] == "pdu-a"
    assert "R1" in cli.ok("racks", "list")
    assert "Leeds" in cli.ok("sites", "list")
    assert [r["name"] for r in cli.json("rooms", "list", "--site", site["id"])] == ["Server room"]
    cli.ok("zones", "create", "cold-aisle", "--description", "front")
    assert "cold-aisle" in cli.ok("zones", "list")

    loc = cli.json("devices", "place", "n01", "--rack", "R1", "--slot", "3", "--zone", "cold-aisle")
    assert loc["rack_id"] == rack["id"]
    assert loc["slot_u"] == 3
    assert loc["zone_id"]
    r = cli.run("devices", "place", "n02", "--rack", "R1", "--slot", "3")
    assert r.exit_code == 1
    assert "error:" in r.output
    r = cli.run("devices", "place", "n02", "--rack", "R1", "--slot", "13")
    assert r.exit_code == 1
    assert [d["name"] for d in cli.json("devices", "list", "--rack", "R1")] == ["n01"]

    r = cli.run("racks", "delete", "R1", "--yes")
    assert r.exit_code == 1  # not empty
    cli.ok("devices", "place", "n01", "--clear")
    assert "deleted rack R1" in cli.ok("racks", "delete", "R1", "--yes")
    cli.ok("zones", "delete", "cold-aisle", "--yes")
    cli.ok("rooms", "delete", "Server room", "--yes")
    cli.ok("sites", "delete", "Leeds", "--yes")
    assert cli.json("sites", "list") == []


def test_groups(cli: CliCentral) -> None:
    cli.login()
    cli.ok("enroll-bulk", "--token", _token(cli, "--uses", "3"), "--count", "3", "--prefix", "g")
    cli.ok("devices", "update", "g03", "--tag", "lab")
    parent = cli.json("groups", "create", "all-labs")
    child = cli.json("groups", "create", "lab-a", "--parent", "all-labs")
    assert child["parent_id"] == parent["id"]
    assert "added 2 device(s)" in cli.ok("groups", "add", "lab-a", "g01", "g02")
    assert "0 device(s); 1 already" in cli.ok("groups", "add", "lab-a", "g01")
    assert {d["name"] for d in cli.json("groups", "members", "lab-a")} == {"g01", "g02"}
    assert len(cli.json("groups", "members", "all-labs", "--recursive")) == 2
    cli.ok("groups", "remove", "lab-a", "g02")
    assert [d["name"] for d in cli.json("groups", "members", "lab-a")] == ["g01"]

    dyn = cli.json("groups", "create", "tagged", "--dynamic", '{"tags_all": ["lab"]}')
    assert dyn["kind"] == "dynamic"
    assert [d["name"] for d in cli.json("groups", "members", "tagged")] == ["g03"]
    assert "tagged" in cli.ok("groups", "list")
    assert [g["name"] for g in cli.json("groups", "list", "--parent", "all-labs")] == ["lab-a"]
    r = cli.run("groups", "create", "bad", "--dynamic", "{nope")
    assert r.exit_code == 1
    assert "not JSON" in r.output
    cli.ok("groups", "delete", "tagged", "--yes")
    assert "tagged" not in cli.ok("groups", "list")


def test_rack_power(cli: CliCentral) -> None:
    cli.login()
    cli.ok("sites", "create", "S")
    cli.ok("rooms", "create", "R", "--site", "S")
    cli.ok("racks", "create", "R1", "--room", "R", "--power-budget", "60")
    power = cli.json("racks", "power", "R1")
    assert power["budget_w"] == 60
    assert power["draw_w"] == 0
    assert not power["over_budget"]
    assert "budget W" in cli.ok("racks", "power", "R1")


def test_names_with_brackets_are_shown_literally(cli: CliCentral) -> None:
    cli.login()
    cli.ok("enroll-bulk", "--token", _token(cli), "--count", "1", "--prefix", "b")
    odd = "[/] odd [bold]name"
    cli.ok("devices", "update", "b01", "--name", odd)
    assert odd in cli.ok("devices", "list")
    assert odd in cli.ok("devices", "show", odd)
    assert odd in cli.ok("devices", "maintenance", odd, "on")
