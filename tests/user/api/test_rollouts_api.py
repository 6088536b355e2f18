"""Rollouts through the real API on both databases: the fixed contract (POST → 201 with
its id; GET → state and waves with their boards and gate values; list with a cursor;
pause / resume / approve / abort), a rollout whose canaries get hotter aborted and rolled
back by the loop, and hostile bodies and ids answered 4xx naming the field, never 5xx."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.conftest import SQLITE_ONLY, Central
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.telemetry import TelemetryLatest
from wrale.fleet.brain.services.rollout_loop import advance_all
from wrale.fleet.brain.services.telemetry_store import metric_ids

API = "/api/v1"
CHANGE = {"kind": "policy", "policy_kind": "thermal", "values": {"hysteresis_c": 3.0}}


async def _post(c: Central, path: str, body: Any, status: int = 201) -> dict[str, Any]:
    r = await c.http.post(f"{API}{path}", headers=c.admin, json=body)
    assert r.status_code == status, r.text
    return dict(r.json())


async def _site(c: Central) -> tuple[str, dict[str, str]]:
    """Racks A (a1, a2) and B (b1, b2) of one site, boards online now."""
    site = await _post(c, "/sites", {"name": "dc"})
    room = await _post(c, "/rooms", {"site_id": site["id"], "name": "hall"})
    racks = {n: (await _post(c, "/racks", {"room_id": room["id"], "name": n}))["id"] for n in "AB"}
    ids = {n: (await _post(c, "/devices", {"name": n}))["id"] for n in ("a1", "a2", "b1", "b2")}
    async with c.db.session() as s:
        for name, device_id in ids.items():
            d = await s.get(Device, device_id)
            assert d is not None
            d.status, d.last_seen_at = "online", time.time()
            d.rack_id = racks[name[0].upper()]
    return site["id"], ids


async def _temps(c: Central, ids: dict[str, str], at: float, **temps: float) -> None:
    async with c.db.session() as s:
        mids = await metric_ids(s, ["cpu_temp_c"])
        for name, device_id in ids.items():
            d = await s.get(Device, device_id)
            assert d is not None
            latest = await s.get(TelemetryLatest, (d.num, mids["cpu_temp_c"]))
            if latest is not None:
                await s.delete(latest)
                await s.flush()
            value = temps.get(name, 45.0)
            s.add(
                TelemetryLatest(device_num=d.num, metric_id=mids["cpu_temp_c"], ts=at, value=value)
            )


def _body(site: str, **over: Any) -> dict[str, Any]:
    return {
        "name": "fan curve",
        "change": CHANGE,
        "selector": {"site_id": site},
        "waves": {"steps": [{"count": 2}, {"percent": 100}], "one_per_rack_first": True},
        "gates": {"observe_s": 10, "max_temp_rise_c": 3},
        **over,
    }


async def test_the_contract_and_a_hot_canary_rolled_back(central: Central) -> None:
    c = central
    site, ids = await _site(c)
    names = {v: k for k, v in ids.items()}
    t0 = time.time()
    await _temps(c, ids, t0 - 1)
    made = await _post(c, "/rollouts", _body(site))
    rid = made["id"]
    assert made["state"] == "running"
    r = await c.http.get(f"{API}/rollouts/{rid}", headers=c.admin)
    assert r.status_code == 200
    waves = r.json()["waves"]
    assert [sorted(names[d] for d in w["devices"]) for w in waves] == [["a1", "b1"], ["a2", "b2"]]
    await advance_all(c.db, t0)
    await _temps(c, ids, t0 + 10, a1=58.0)
    await advance_all(c.db, t0 + 11)
    got = (await c.http.get(f"{API}/rollouts/{rid}", headers=c.admin)).json()
    assert got["state"] == "rolled_back"
    gate = got["waves"][0]["gate"]
    assert gate["passed"] is False
    assert gate["temp_rise_c"] == 13.0
    assert [names[d] for d in gate["offenders"]] == ["a1"]
    assert got["waves"][1]["state"] == "skipped"
    for device_id in got["waves"][1]["devices"]:
        r = await c.http.get(f"{API}/policies", headers=c.admin, params={"scope_type": "device"})
        assert device_id not in r.text
    r = await c.http.post(f"{API}/rollouts/{rid}/resume", headers=c.admin)
    assert r.status_code == 409


async def test_rate_waves_and_fan_gate_values(central: Central) -> None:
    c = central
    site, ids = await _site(c)
    t0 = time.time()
    await _temps(c, ids, t0 - 1)
    rate = {"base_per_minute": 1, "increment_factor": 3, "after_succeeded": 1}
    made = await _post(c, "/rollouts", _body(site, waves={"rate": rate}))
    assert [len(w["devices"]) for w in made["waves"]] == [1, 3]
    assert made["waves_spec"]["rate"]["base_per_minute"] == 1
    await advance_all(c.db, t0)
    await _temps(c, ids, t0 + 60)
    await advance_all(c.db, t0 + 61)
    got = (await c.http.get(f"{API}/rollouts/{made['id']}", headers=c.admin)).json()
    gate = got["waves"][0]["gate"]
    assert gate["passed"] is True, gate
    assert gate["fan_anomalies"] == 0
    assert gate["fan_anomaly_by_board"] == {}
    assert gate["alerts"] == 0


async def test_list_cursor_and_actions_by_hand(central: Central) -> None:
    c = central
    site, _ = await _site(c)
    first = await _post(c, "/rollouts", _body(site, name="one", require_approval=True))
    second = await _post(c, "/rollouts", _body(site, name="two"))
    r = await c.http.get(f"{API}/rollouts", headers=c.admin, params={"limit": 1})
    page = r.json()
    assert [x["id"] for x in page["items"]] == [second["id"]]
    r = await c.http.get(
        f"{API}/rollouts", headers=c.admin, params={"limit": 1, "cursor": page["next_cursor"]}
    )
    assert [x["id"] for x in r.json()["items"]] == [first["id"]]
    rid = second["id"]
    assert (await _post(c, f"/rollouts/{rid}/pause", None, 200))["state"] == "paused"
    await _post(c, f"/rollouts/{rid}/pause", None, 409)
    await _post(c, f"/rollouts/{rid}/approve", None, 409)
    assert (await _post(c, f"/rollouts/{rid}/resume", None, 200))["state"] == "running"
    assert (await _post(c, f"/rollouts/{rid}/abort", None, 200))["state"] == "aborted"
    viewer = await c.user("viewer")
    r = await c.http.post(f"{API}/rollouts/{first['id']}/abort", headers=viewer)
    assert r.status_code == 403
    operator = await c.user("operator")
    r = await c.http.post(f"{API}/rollouts", headers=operator, json=_body(site))
    assert r.status_code == 403  # a policy rollout needs an admin


@SQLITE_ONLY  # refused before any SQL; the service's cases run on both (brain/test_rollouts.py)
@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"name": "x" * 101}, "name"),
        ({"change": {"kind": "policy", "policy_kind": "thermal", "values": []}}, "change.values"),
        ({"change": {"kind": "template", "template_id": 7}}, "change.template_id"),
        ({"change": {"kind": "command", "op": "reboot", "args": "now"}}, "change.args"),
        ({"waves": [{"count": -1}]}, "waves[0].count"),
        ({"waves": {"steps": [{"percent": 50}], "one_per_rack_first": "yes"}}, "one_per_rack"),
        ({"gates": {"observe_s": -5}}, "gates.observe_s"),
        ({"gates": {"max_failure_pct": "lots"}}, "gates.max_failure_pct"),
        ({"on_gate_failure": None}, "on_gate_failure"),
        ({"require_approval": "sure"}, "require_approval"),
        ({"selector": {"rack_id": "../../etc"}}, "selector.rack_id"),
        ({"selector": "everything"}, "selector"),
        ({"waves": {"rate": {"base_per_minute": 1, "increment_factor": 2}}}, "after_succeeded"),
        (
            {"waves": {"rate": {"base_per_minute": 9, "increment_factor": 2,
                                "after_succeeded": 1, "max_per_minute": 3}}},
            "waves.rate.max_per_minute",
        ),
        ({"change": {**CHANGE, "disruptive": 1}}, "change.disruptive"),
        ({"gates": {"max_fan_anomalies": "some"}}, "gates.max_fan_anomalies"),
    ],
)  # fmt: skip
async def test_hostile_bodies_name_the_field(
    central: Central, over: dict[str, Any], field: str
) -> None:
    site, _ = await _site(central)
    r = await central.http.post(f"{API}/rollouts", headers=central.admin, json=_body(site, **over))
    assert r.status_code == 422, r.text
    assert field in r.text


async def test_hostile_ids_and_non_object_bodies(central: Central) -> None:
    c = central
    for rid in ("0" * 32, "nope", "%00", "x" * 500):
        expected = 422 if rid == "%00" else 404  # NUL is refused before routing
        r = await c.http.get(f"{API}/rollouts/{rid}", headers=c.admin)
        assert r.status_code == expected, (rid, r.text)
        r = await c.http.post(f"{API}/rollouts/{rid}/abort", headers=c.admin)
        assert r.status_code == expected, (rid, r.text)
    for body in ([1, 2], "text", 5, None):
        r = await c.http.post(f"{API}/rollouts", headers=c.admin, json=body)
        assert r.status_code == 422, r.text
    r = await c.http.post(
        f"{API}/rollouts", headers={**c.admin, "content-type": "application/json"}, content=b"{"
    )
    assert r.status_code == 422
    r = await c.http.get(f"{API}/rollouts", headers=c.admin, params={"state": "dancing"})
    assert r.status_code == 422
