"""``wrale jobs`` and ``wrale decisions`` against a real central: a process job created with
its selector and hints, listed, shown with its (waiting) placements and history, stopped;
bad options refused before anything is sent."""

from __future__ import annotations

import json

import pytest

from tests.user.cli.conftest import CliCentral
from wrale.user.cli.client import CentralClient

pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


def test_create_list_show_stop(cli: CliCentral) -> None:
    cli.login()
    token = json.loads(cli.session_file.read_text())["access_token"]
    with CentralClient(cli.url, token) as c:
        c.post("/devices", {"name": "pi-a", "tags": ["lab"]})  # registered, never connected

    job = json.loads(cli.ok(
        "jobs", "create", "render", "--replicas", "2", "--priority", "70", "--tag", "lab",
        "--duration", "30m", "--cpu-pct", "50", "--env", "MODE=fast", "--json", "--",
        "/usr/bin/stress-ng", "--cpu", "1",
    ))  # fmt: skip
    assert job["workload"] == {
        "kind": "process",
        "argv": ["/usr/bin/stress-ng", "--cpu", "1"],
        "env": {"MODE": "fast"},
    }
    assert (job["replicas"], job["priority"], job["duration_s"]) == (2, 70, 1800.0)
    assert job["selector"] == {"tags_all": ["lab"]}
    assert [p["state"] for p in job["placements"]] == ["pending", "pending"]
    reasons = [p["reason"] or "" for p in job["placements"]]
    assert all("no eligible board" in r for r in reasons), reasons

    out = cli.ok("jobs", "list")
    assert "render" in out
    assert "0/2" in out
    out = cli.ok("jobs", "show", job["id"])
    assert "Placements" in out
    assert "pending" in out
    assert cli.json("jobs", "show", job["id"])["transitions"] is not None

    assert "stop asked" in cli.ok("jobs", "stop", job["id"])
    stopped = cli.json("jobs", "show", job["id"])
    assert stopped["state"] == "stopped"
    assert {p["state"] for p in stopped["placements"]} == {"stopped"}
    assert cli.json("jobs", "list", "--state", "stopped")[0]["id"] == job["id"]
    assert isinstance(cli.json("decisions", "--loop", "placement", "--since", "1h"), list)


def test_a_simulated_load_job_and_bad_options(cli: CliCentral) -> None:
    cli.login()
    job = cli.json("jobs", "create", "heat", "--sim-load", "40", "--strategy", "spread")
    assert (job["workload"], job["strategy"]) == ({"kind": "sim_load", "cpu_pct": 40.0}, "spread")
    for args, problem in [
        (("jobs", "create", "x"), "either a command"),
        (("jobs", "create", "x", "--sim-load", "5", "--", "/bin/true"), "not both"),
        (("jobs", "create", "x", "--strategy", "best", "--", "/bin/true"), "physical or spread"),
        (("jobs", "create", "x", "--env", "NOEQUALS", "--", "/bin/true"), "KEY=VALUE"),
    ]:
        r = cli.run(*args)
        assert r.exit_code == 2, r.output
        assert problem in r.output
    r = cli.run("jobs", "create", "x", "--env", "1BAD=v", "--", "/bin/true")
    assert r.exit_code == 1  # the central's check, said plainly
    assert "env" in r.output
    assert len(cli.json("jobs", "list")) == 1  # nothing else was created
