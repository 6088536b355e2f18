"""The brain's loops on ``wrale demo`` end to end: a real demo process (central on SQLite,
a simulated fleet of 12 boards in two racks), driven only through the REST API. A heat
wave in one rack (the boards' ``sim_ambient`` command), then a ``sim_load`` job: no replica
lands in the hot rack while cooler boards can take it. Then the fan of a board that runs
a replica stalls (``sim_fault``): the replica moves off it to another board. The decision
log explains both."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.user.cli.test_demo import Demo, devices, eventually, login, prepare

pytestmark = pytest.mark.slow
BOARDS = 12  # Rack A1 holds 8, Rack A2 the other 4 (the demo's layout: 8 per rack)
HOT_RACK = "Rack A2"
HEAT_WAVE_C = 45.0
REPLICAS = 4
WAIT_S = 60.0
# the agents report every 2 s (10 s by default) so readings reach the brain quickly
AGENT_ENV = {"WRALE_EDGE_REPORT_INTERVAL_S": "2"}


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    data = tmp_path / "wrale-data"
    prepare(data)
    d = Demo(data, env=AGENT_ENV)
    yield d
    if d.proc is not None and d.proc.poll() is None:
        d.proc.kill()
        d.proc.wait(10)


def command(api: httpx.Client, body: dict[str, Any]) -> list[str]:
    """Send a command to the boards of a selector; returns the command ids."""
    r = api.post("/commands", json=body)
    assert r.status_code == 201, r.text
    got = r.json()
    assert got["refused"] == [], got["refused"]
    return [c["id"] for c in got["commands"]]


def done(api: httpx.Client, ids: list[str]) -> bool:
    states = [api.get(f"/commands/{i}").json()["status"] for i in ids]
    assert not {"failed", "expired", "cancelled"} & set(states), states
    return all(s == "succeeded" for s in states)


def latest(api: httpx.Client, device_id: str) -> dict[str, float]:
    r = api.get(f"/devices/{device_id}/telemetry/latest")
    assert r.status_code == 200, r.text
    return {m: v["value"] for m, v in r.json()["metrics"].items()}


def job(api: httpx.Client, job_id: str) -> dict[str, Any]:
    r = api.get(f"/jobs/{job_id}")
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def reported_job(api: httpx.Client, device_id: str, placement_id: str) -> dict[str, Any]:
    """The board's reported entry for the placement ({} when it reports none)."""
    r = api.get(f"/devices/{device_id}/twin")
    assert r.status_code == 200, r.text
    entry: dict[str, Any] = (r.json()["reported"]["doc"].get("jobs") or {}).get(placement_id, {})
    return entry


def decisions(api: httpx.Client, **params: str) -> list[dict[str, Any]]:
    r = api.get("/decisions", params={"limit": 200, **params})
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def test_placements_avoid_a_hot_rack_and_a_replica_leaves_a_failed_fan(demo: Demo) -> None:
    t0 = time.monotonic()
    demo.start("--devices", str(BOARDS), "--no-incidents")
    url, password = demo.wait_banner()
    api = login(url, password)

    def all_reporting() -> list[dict[str, Any]] | None:
        devs = devices(api)
        if len(devs) != BOARDS or any(d["status"] != "online" for d in devs):
            return None
        return devs if all("cpu_temp_c" in latest(api, d["id"]) for d in devs) else None

    devs = eventually(all_reporting, "the demo's boards online and reporting", WAIT_S)
    racks = {
        r["name"]: r["id"]
        for site in api.get("/topology").json()["sites"]
        for room in site["rooms"]
        for r in room["racks"]
    }
    hot_rack = racks[HOT_RACK]
    hot = {d["id"] for d in devs if d["location"]["rack_id"] == hot_rack}
    cool = {d["id"] for d in devs} - hot
    name = {d["id"]: d["name"] for d in devs}
    assert len(hot) == BOARDS - 8
    assert len(cool) == 8

    # A heat wave in Rack A2: its air goes to 45 °C and stays there.
    ids = command(
        api,
        {"op": "sim_ambient", "args": {"celsius": HEAT_WAVE_C}, "selector": {"rack_id": hot_rack}},
    )
    assert len(ids) == len(hot)
    eventually(lambda: done(api, ids), "the heat wave applied on every board of Rack A2", 30)
    with_air = [d for d in hot if "ambient_temp_c" in latest(api, d)]
    assert with_air, "no board of Rack A2 reports its air"  # the demo's mix has air sensors
    eventually(
        lambda: all(latest(api, d)["ambient_temp_c"] > HEAT_WAVE_C - 2 for d in with_air),
        "the brain reads the heat wave",
        30,
    )

    # A job of 4 replicas: all of them on the cool rack (it has 8 boards to choose from).
    r = api.post(
        "/jobs",
        json={
            "name": "render",
            "workload": {"kind": "sim_load", "cpu_pct": 20},
            "replicas": REPLICAS,
            "priority": 60,
        },
    )
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]

    def all_running() -> dict[str, Any] | None:
        j = job(api, job_id)
        ps = j["placements"]
        return j if len(ps) == REPLICAS and all(p["state"] == "running" for p in ps) else None

    placed = eventually(all_running, "every replica running", WAIT_S)
    on = {p["device_id"] for p in placed["placements"]}
    assert len(on) == REPLICAS
    assert on <= cool, f"replicas in the hot rack: {sorted(name[d] for d in on & hot)}"

    places = [d for d in decisions(api, loop="placement", subject=job_id) if d["action"] == "place"]
    assert {d["subjects"]["device"] for d in places} == on
    hot_air = min(latest(api, d)["ambient_temp_c"] for d in with_air)
    for d in places:
        assert d["reasons"][0].startswith("physical: best of the eligible boards"), d
        assert d["inputs"]["strategy"] == "physical"
        assert d["inputs"]["rack_air_c"] < hot_air - 10, d["inputs"]  # it read a cooler rack

    # The fan of one replica's board stalls: the replica moves to another board.
    def fan_duty(device_id: str) -> float:
        return latest(api, device_id).get("fan_pct", 0.0)

    victim = max(sorted(on), key=fan_duty)  # a driven fan: its stall shows at once
    placement = next(p for p in placed["placements"] if p["device_id"] == victim)
    assert reported_job(api, victim, placement["id"])["state"] == "running"
    r = api.post(
        f"/devices/{victim}/commands",
        json={"op": "sim_fault", "args": {"fault": "fan_failure", "params": {"mode": "stalled"}}},
    )
    assert r.status_code == 201, r.text
    fault_id = r.json()["id"]
    eventually(lambda: done(api, [fault_id]), "the fan stalls", 30)

    def moved() -> dict[str, Any] | None:
        j = job(api, job_id)
        p = next(q for q in j["placements"] if q["id"] == placement["id"])
        return p if p["device_id"] not in (None, victim) and p["state"] == "running" else None

    now = eventually(moved, f"the replica on {name[victim]} running on another board", WAIT_S)

    def left_off() -> bool:  # the board it left stopped it (reported once, then dropped)
        entry = reported_job(api, victim, placement["id"])
        return bool(entry.get("state", "stopped") == "stopped")

    eventually(left_off, f"{name[victim]} stops the replica it lost", 30)
    twin = api.get(f"/devices/{victim}/twin").json()
    assert placement["id"] not in (twin["desired"]["doc"].get("jobs") or {})
    assert now["device_id"] not in hot, "moved into the hot rack"
    current = job(api, job_id)["placements"]  # the old board's stop did not end it here
    assert not [p for p in current if p["device_id"] == victim]
    assert all(p["state"] == "running" for p in current)

    r = api.get(f"/jobs/{job_id}/transitions")
    assert r.status_code == 200, r.text
    trail = [(t["device_id"], t["to_state"]) for t in r.json() if t["placement_id"] == now["id"]]
    assert (victim, "moving") in trail
    assert (now["device_id"], "running") in trail

    (move,) = [
        d
        for d in decisions(api, loop="balancing", subject=placement["id"])
        if d["action"] == "move"
    ]
    assert move["subjects"]["device"] == victim
    assert move["subjects"]["to"] == now["device_id"]
    print("MOVE", move)
    assert "its fan failed" in move["reasons"][0]
    assert move["inputs"]["fan_failed"] is True

    assert demo.interrupt() == 0
    assert time.monotonic() - t0 < 3 * WAIT_S
