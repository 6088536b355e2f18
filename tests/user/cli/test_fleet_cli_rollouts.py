"""``wrale rollouts`` against a real central: a policy rollout created over tagged boards
in topology-aware waves, listed, shown with its waves, paused, resumed and aborted; bad
options refused before anything is sent, the central's refusals said plainly."""

from __future__ import annotations

import json

import pytest

from tests.user.cli.conftest import CliCentral
from wrale.user.cli.client import CentralClient

pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


def test_create_list_show_pause_resume_abort(cli: CliCentral) -> None:
    cli.login()
    token = json.loads(cli.session_file.read_text())["access_token"]
    with CentralClient(cli.url, token) as c:
        for name in ("pi-a", "pi-b", "pi-c"):
            c.post("/devices", {"name": name, "tags": ["lab"]})

    r = json.loads(cli.ok(
        "rollouts", "create", "fans", "--policy-kind", "thermal", "--values",
        '{"hysteresis_c": 3}', "--tag", "lab", "--waves", '[{"count": 1}, {"percent": 100}]',
        "--observe", "5m", "--max-temp-rise", "2.5", "--on-gate-failure", "pause", "--json",
    ))  # fmt: skip
    assert r["state"] == "running"
    assert [len(w["devices"]) for w in r["waves"]] == [1, 2]
    assert r["gates"] == {"observe_s": 300.0, "max_temp_rise_c": 2.5}
    assert r["change"] == {
        "kind": "policy",
        "policy_kind": "thermal",
        "values": {"hysteresis_c": 3.0},
    }
    assert r["on_gate_failure"] == "pause"

    out = cli.ok("rollouts", "list")
    assert "fans" in out
    assert "running" in out
    out = cli.ok("rollouts", "show", r["id"])
    assert "Waves" in out
    assert "pending" in out
    assert "paused" in cli.ok("rollouts", "pause", r["id"])
    assert "running" in cli.ok("rollouts", "resume", r["id"])
    assert "aborted" in cli.ok("rollouts", "abort", r["id"])
    assert cli.json("rollouts", "list", "--state", "aborted")[0]["id"] == r["id"]
    again = cli.run("rollouts", "approve", r["id"])
    assert again.exit_code == 1  # 409: nothing waits for approval
    assert "approve" in again.output


def test_bad_options(cli: CliCentral) -> None:
    cli.login()
    for args, problem in [
        (("rollouts", "create", "x", "--tag", "lab"), "exactly one of"),
        (("rollouts", "create", "x", "--policy-kind", "thermal", "--command", "reboot"),
         "exactly one of"),
        (("rollouts", "create", "x", "--policy-kind", "thermal"), "--values"),
        (("rollouts", "create", "x", "--command", "reboot", "--args", "{nope"), "not JSON"),
        (("rollouts", "create", "x", "--command", "reboot", "--on-gate-failure", "panic"),
         "abort or pause"),
    ]:  # fmt: skip
        r = cli.run(*args)
        assert r.exit_code == 2, r.output
        assert problem in r.output
    r = cli.run("rollouts", "create", "x", "--command", "reboot", "--tag", "lab", "--waves", "[]")
    assert r.exit_code == 1  # the central's check, said plainly
    assert "waves" in r.output
    assert cli.json("rollouts", "list") == []


def test_rate_waves_fan_limit_and_disruptive(cli: CliCentral) -> None:
    cli.login()
    token = json.loads(cli.session_file.read_text())["access_token"]
    with CentralClient(cli.url, token) as c:
        for name in ("pi-a", "pi-b", "pi-c", "pi-d"):
            c.post("/devices", {"name": name, "tags": ["lab"]})
    r = json.loads(cli.ok(
        "rollouts", "create", "fans", "--policy-kind", "thermal", "--values",
        '{"hysteresis_c": 3}', "--tag", "lab", "--rate", "1,2,1", "--disruptive",
        "--max-fan-anomalies", "1", "--max-alerts", "0", "--json",
    ))  # fmt: skip
    assert [len(w["devices"]) for w in r["waves"]] == [1, 2, 1]
    assert r["waves_spec"]["rate"]["increment_factor"] == 2.0
    assert r["change"]["disruptive"] is True
    assert r["gates"]["max_fan_anomalies"] == 1.0
    assert "fans" in cli.ok("rollouts", "show", r["id"])
    for args, problem in [
        (("--rate", "1,2"), "BASE,FACTOR,AFTER"),
        (("--rate", "one,2,3"), "not a number"),
        (("--rate", "1,2,3", "--waves", "[]"), "not both"),
    ]:
        bad = cli.run("rollouts", "create", "x", "--command", "reboot", *args)
        assert bad.exit_code == 2, bad.output
        assert problem in bad.output
    bad = cli.run(
        "rollouts", "create", "x", "--command", "reboot", "--tag", "lab", "--rate", "1,9,1"
    )
    assert bad.exit_code == 1  # the central's check, naming the field
    assert "increment_factor" in bad.output
