"""``wrale twin / commands / templates`` against a real central: a twin change by merge
patch, commands to a device and to tags with refusals, a template deployed and rolled back."""

from __future__ import annotations

import json

import pytest

from tests.user.cli.conftest import CliCentral
from wrale.user.cli.client import CentralClient

pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


def test_twin_commands_and_templates(cli: CliCentral) -> None:
    cli.login()
    token = json.loads(cli.session_file.read_text())["access_token"]
    with CentralClient(cli.url, token) as c:
        c.post("/devices", {"name": "pi-a", "tags": ["lab"]})
        held = c.post("/devices", {"name": "pi-b", "tags": ["lab"]})
        c.post(f"/devices/{held['id']}/status", {"status": "maintenance"})

    out = cli.ok(
        "twin", "set", "pi-a", "--set", "fan.override_pct=40", "--set", "thermal.profile=cool"
    )
    assert "is at version 2" in out
    t = cli.json(
        "twin", "set", "pi-a", "--unset", "fan", "--patch", '{"sampling": {"interval_s": 2}}'
    )
    assert t["overrides"] == {"thermal": {"profile": "cool"}, "sampling": {"interval_s": 2}}
    r = cli.run("twin", "set", "pi-a", "--set", "fan.override_pct=400")
    assert r.exit_code == 1
    assert "desired.fan.override_pct" in r.output
    r = cli.run("twin", "set", "pi-a", "--version", "1", "--set", "fan.override_pct=4")
    assert r.exit_code == 1
    assert "at version 3, not 1" in r.output
    assert "thermal.profile" in cli.ok("twin", "show", "pi-a")

    cmd = cli.json(
        "commands", "send", "set_fan", "--device", "pi-a", "--arg", "percent=70", "--timeout", "2m"
    )
    assert (cmd["op"], cmd["args"]["percent"], cmd["status"]) == ("set_fan", 70.0, "queued")
    out = cli.ok("commands", "send", "run_diag", "--tag", "lab")
    assert "1 command(s) queued" in out
    assert "refused pi-b" in out
    assert len(cli.json("commands", "list", "--device", "pi-a")) == 2
    assert "cancelled by admin" in cli.ok("commands", "cancel", cmd["id"])
    assert "failed" in cli.ok("commands", "show", cmd["id"])
    r = cli.run("commands", "send", "reboot")
    assert r.exit_code == 1
    assert "give one target" in r.output

    body = json.dumps({"motd": "Welcome to ${site}"})
    variables = json.dumps({"site": {"type": "str", "default": "lab"}})
    cli.ok("templates", "create", "motd", "--body", body, "--variables", variables)
    cli.ok(
        "templates",
        "add-version",
        "motd",
        "--body",
        json.dumps({"motd": "Hi ${site}"}),
        "--variables",
        variables,
    )
    assert json.loads(cli.ok("templates", "render", "motd", "--var", "site=rack 7")) == {
        "motd": "Hi rack 7"
    }
    dep = cli.json("templates", "deploy", "motd", "--device", "pi-a", "--var", "site=A")
    assert dep["counts"]["pending"] == 1
    back = cli.json("templates", "rollback", "motd", dep["id"])
    assert (back["version"], back["rollback_of"]) == (1, dep["id"])
    assert cli.json("twin", "show", "pi-a")["desired"]["doc"]["config"] == {"motd": "Welcome to A"}
    statuses = cli.json("templates", "status", "motd", dep["id"])
    assert [s["status"] for s in statuses] == ["superseded"]
    assert len(cli.json("templates", "deployments", "motd")) == 2
    cli.ok("templates", "delete", "motd")
    assert cli.json("templates", "list") == []


def test_send_wait_ends_with_the_command_as_it_is(cli: CliCentral) -> None:
    cli.login()
    token = json.loads(cli.session_file.read_text())["access_token"]
    with CentralClient(cli.url, token) as c:
        c.post("/devices", {"name": "pi-w", "tags": ["w"]})
    # no board is connected: the wait ends with the command still queued, and exit 1
    r = cli.run("commands", "send", "run_diag", "--device", "pi-w", "--wait", "1s")
    assert r.exit_code == 1, r.output
    assert "(run_diag) is queued" in r.output
    r = cli.run("commands", "send", "run_diag", "--tag", "w", "--wait", "1s")
    assert r.exit_code == 1
    assert "--wait is for one device" in r.output
