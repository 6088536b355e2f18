"""A staged rollout on ``wrale demo`` end to end: a real demo process (central on SQLite,
12 simulated boards in two racks), driven only through the REST API. A policy rollout
whose first wave takes one board per rack; those canaries get hotter (their air heated
through the simulator's ``sim_ambient`` command) while the other boards stay as they
were; the gate fails on the temperature rise, the rollout aborts, the canaries are rolled
back and the other boards never receive the change. The decision log explains it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.user.cli.test_demo import Demo, devices, eventually, login, prepare

pytestmark = pytest.mark.slow
BOARDS = 12  # Rack A1 holds 8, Rack A2 the other 4
WAIT_S = 90.0
AGENT_ENV = {"WRALE_EDGE_REPORT_INTERVAL_S": "2"}
CHANGE = {"kind": "policy", "policy_kind": "thermal", "values": {"hysteresis_c": 3.0}}


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    data = tmp_path / "wrale-data"
    prepare(data)
    d = Demo(data, env=AGENT_ENV)
    yield d
    if d.proc is not None and d.proc.poll() is None:
        d.proc.kill()
        d.proc.wait(10)


def rollout(api: httpx.Client, rid: str) -> dict[str, Any]:
    r = api.get(f"/rollouts/{rid}")
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def latest(api: httpx.Client, device_id: str) -> dict[str, float]:
    r = api.get(f"/devices/{device_id}/telemetry/latest")
    assert r.status_code == 200, r.text
    return {m: v["value"] for m, v in r.json()["metrics"].items()}


def device_policies(api: httpx.Client) -> set[str]:
    r = api.get("/policies", params={"scope_type": "device", "limit": 200})
    assert r.status_code == 200, r.text
    return {p["scope_id"] for p in r.json()["items"]}


def test_hot_canaries_abort_the_rollout_and_are_rolled_back(demo: Demo) -> None:
    demo.start("--devices", str(BOARDS), "--no-incidents")
    url, password = demo.wait_banner()
    api = login(url, password)

    def all_reporting() -> list[dict[str, Any]] | None:
        devs = devices(api)
        if len(devs) != BOARDS or any(d["status"] != "online" for d in devs):
            return None
        return devs if all("cpu_temp_c" in latest(api, d["id"]) for d in devs) else None

    devs = eventually(all_reporting, "the demo's boards online and reporting", WAIT_S)
    body = {
        "name": "quieter fans",
        "change": CHANGE,
        "selector": {"status": ["online"]},
        "waves": {"steps": [{"count": 2}, {"percent": 100}], "one_per_rack_first": True},
        "gates": {"observe_s": 60, "max_temp_rise_c": 4},
        "on_gate_failure": "abort",
    }
    r = api.post("/rollouts", json=body)
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    canaries = set(r.json()["waves"][0]["devices"])
    racks = {d["id"]: d["location"]["rack_id"] for d in devs}
    assert len(canaries) == 2
    assert len({racks[c] for c in canaries}) == 2  # one board per rack first

    eventually(
        lambda: rollout(api, rid)["waves"][0]["state"] == "observing" or None,
        "the first wave started",
        30,
    )
    assert device_policies(api) == canaries  # only the canaries have it
    for device_id in canaries:  # their air heats up by 30 °C: they get much hotter
        r = api.post(
            f"/devices/{device_id}/commands", json={"op": "sim_ambient", "args": {"celsius": 55}}
        )
        assert r.status_code == 201, r.text

    done = eventually(
        lambda: (
            ((x := rollout(api, rid))["state"] in ("rolled_back", "aborted", "succeeded") and x)
            or None
        ),
        "the gate judged",
        WAIT_S + 60,
    )
    gate = done["waves"][0]["gate"]
    assert done["state"] == "rolled_back", (done["state"], gate, done["waves"][1]["gate"])
    assert gate["passed"] is False
    assert gate["temp_rise_c"] > 4, gate
    assert set(gate["offenders"]) <= canaries
    assert done["waves"][1]["state"] == "skipped"
    others = set(done["waves"][1]["devices"])
    assert not others & canaries
    states = {d: s["state"] for d, s in done["waves"][1]["device_states"].items()}
    assert set(states.values()) == {"pending"}  # never reached
    assert device_policies(api) == set()  # canaries rolled back, the others never had it
    r = api.get("/decisions", params={"loop": "rollouts", "limit": 50})
    actions = [d["action"] for d in r.json()["items"]]
    assert {"wave_start", "gate", "abort", "rollback"} <= set(actions)
