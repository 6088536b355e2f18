"""Staged rollouts on real databases, continued: waves at an exponential rate (a minute of
observation at least per wave), fan anomalies in the gate (an RPM drop at the same duty, a
reported fan failure), a policy change marked disruptive waits for each board's
maintenance window, a rollout paused while it waited for approval still waits for it
after a resume, and the new fields' hostile input named in the 422."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.fleet.brain.decisions_kit import COOL, readings
from tests.fleet.brain.jobs_kit import World, make_world
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models.channel import DeviceEvent
from wrale.fleet.brain.services import rollouts as svc
from wrale.fleet.brain.services.maintenance import windows
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.fleet.brain.services.rollout_loop import advance
from wrale.shared.errors import InvalidRequestError

CHANGE = {"kind": "policy", "policy_kind": "thermal", "values": {"hysteresis_c": 3.0}}
BOARDS = ("a1", "a2", "b1", "b2")
RATE = {"base_per_minute": 1, "increment_factor": 2.0, "after_succeeded": 1}


@pytest.fixture
async def world(database: Database) -> World:
    return await make_world(database)


def _admin(w: World) -> Principal:
    return Principal(w.operator.tenant_id, Role.ADMIN, "user", "a" * 32, "ada")


async def _create(w: World, **over: Any) -> str:
    body = {
        "name": "cooler fans",
        "change": CHANGE,
        "selector": {"site_id": w.ids["site"]},
        "waves": {"steps": [{"count": 2}, {"percent": 100}], "one_per_rack_first": True},
        "gates": {"observe_s": 10, "max_temp_rise_c": 3},
        **over,
    }
    async with w.db.session() as s:
        r = await svc.create_rollout(s, _admin(w), body, bus=w.bus)
        return r.id


async def _show(w: World, rid: str) -> dict[str, Any]:
    async with w.db.session() as s:
        r = await svc.get_rollout(s, w.operator.tenant_id, rid)
        return svc.rollout_view(r, await svc.waves_of(s, rid), await svc.devices_of(s, rid))


async def _step(w: World, rid: str, now: float) -> dict[str, Any]:
    async with w.db.session() as s:
        await advance(s, rid, now, w.bus)
    return await _show(w, rid)


async def _all(w: World, at: float, **over: dict[str, float]) -> None:
    for name in BOARDS:
        values = {**COOL, "power_w": 4.0, "on_battery": 0.0, **over.get(name, {})}
        await readings(w, name, at, **values)


def _names(w: World, ids: list[str]) -> list[str]:
    return sorted(str(w.name_of(i)) for i in ids)


def _states(w: World, wave: dict[str, Any]) -> dict[str, str]:
    return {str(w.name_of(k)): v["state"] for k, v in wave["device_states"].items()}


async def test_rate_waves_grow_and_each_observes_a_minute(world: World) -> None:
    w, t0 = world, time.time()
    await _all(w, t0 - 1)
    rate = {"base_per_minute": 1, "increment_factor": 2.0, "after_succeeded": 1}
    rid = await _create(w, waves={"rate": rate, "one_per_rack_first": True})
    view = await _show(w, rid)
    # 0 succeeded → 1 a minute; 1 → 2; 3 → 8 (the one left)
    assert [_names(w, x["devices"]) for x in view["waves"]] == [["a1"], ["a2", "b1"], ["b2"]]
    assert view["waves_spec"]["rate"] == {**rate, "max_per_minute": None}
    await _step(w, rid, t0)
    await _all(w, t0 + 30)
    view = await _step(w, rid, t0 + 31)  # observe_s 10, but a rate's wave lasts a minute
    assert view["waves"][0]["state"] == "observing"
    await _all(w, t0 + 60)
    view = await _step(w, rid, t0 + 61)
    assert view["waves"][0]["state"] == "passed"
    assert view["waves"][0]["gate"]["observed_s"] == pytest.approx(61.0)
    assert (await _step(w, rid, t0 + 62))["waves"][1]["state"] == "observing"


async def test_a_fan_slowing_at_the_same_duty_fails_the_gate(world: World) -> None:
    w, t0 = world, time.time()
    await _all(w, t0 - 1)
    rid = await _create(w, on_gate_failure="pause")
    view = await _step(w, rid, t0)
    assert _names(w, view["waves"][0]["devices"]) == ["a1", "b1"]
    await _all(w, t0 + 10, a1={"fan_rpm": 1200.0})  # same duty (30 %), far slower
    view = await _step(w, rid, t0 + 11)
    gate = view["waves"][0]["gate"]
    assert view["state"] == "paused"
    assert gate["passed"] is False
    assert gate["fan_anomalies"] == 1
    assert _names(w, list(gate["fan_anomaly_by_board"])) == ["a1"]
    assert _names(w, gate["offenders"]) == ["a1"]
    assert _states(w, view["waves"][0]) == {"a1": "failed", "b1": "applied"}
    assert any("fan" in r for r in gate["reasons"])


async def test_a_reported_fan_failure_counts_and_the_limit_allows_it(world: World) -> None:
    w, t0 = world, time.time()
    await _all(w, t0 - 1)
    rid = await _create(w, gates={"observe_s": 10, "max_fan_anomalies": 1, "max_alerts": 5})
    await _step(w, rid, t0)
    async with w.db.session() as s:
        s.add(
            DeviceEvent(
                tenant_id=w.operator.tenant_id,
                device_id=w.ids["b1"],
                seq=1,
                idx=0,
                ts=t0 + 5,
                type="FAN_FAILURE",
                severity="critical",
                message="fan stalled at 30% duty",
            )
        )
    await _all(w, t0 + 10)
    view = await _step(w, rid, t0 + 11)
    gate = view["waves"][0]["gate"]
    assert gate["passed"] is True, gate["reasons"]
    assert gate["fan_anomalies"] == 1
    assert gate["alerts"] == 0
    assert "stalled" in gate["fan_anomaly_by_board"][w.ids["b1"]]


async def test_a_disruptive_policy_change_waits_for_the_window(world: World) -> None:
    w, t0 = world, time.time()
    opens = datetime.fromtimestamp(t0 + 3600, UTC)
    async with w.db.session() as s:
        await windows.create_window(
            s,
            w.operator,
            {"name": "nightly", "cron": f"{opens.minute} {opens.hour} * * *", "duration_s": 3600},
        )
    rid = await _create(w, change={**CHANGE, "disruptive": True}, waves=[{"percent": 100}])
    assert (await _show(w, rid))["change"]["disruptive"] is True
    await _all(w, t0 - 1)
    view = await _step(w, rid, t0)
    assert view["waves"][0]["state"] == "pending"
    assert set(_states(w, view["waves"][0]).values()) == {"pending"}
    details = [v["detail"] for v in view["waves"][0]["device_states"].values()]
    assert all(d.startswith("waiting for its maintenance window") for d in details), details
    inside = t0 + 3660
    await _all(w, inside - 1)
    view = await _step(w, rid, inside)
    assert view["waves"][0]["state"] == "observing"
    assert set(_states(w, view["waves"][0]).values()) == {"applied"}
    plain = await _create(w, name="not disruptive", waves=[{"percent": 100}])
    assert (await _step(w, plain, t0 + 1))["waves"][0]["state"] == "observing"


async def test_a_pause_while_waiting_for_approval_keeps_waiting_after_resume(
    world: World,
) -> None:
    w, t0 = world, time.time()
    await _all(w, t0 - 1)
    rid = await _create(w, require_approval=True)
    await _step(w, rid, t0)
    await _all(w, t0 + 10)
    assert (await _step(w, rid, t0 + 11))["state"] == "waiting_approval"
    async with w.db.session() as s:
        await svc.pause(s, w.operator, rid, now=t0 + 12)
    async with w.db.session() as s:
        r = await svc.resume(s, w.operator, rid, now=t0 + 13)
        assert r.state == "waiting_approval"
    assert (await _step(w, rid, t0 + 14))["waves"][1]["state"] == "pending"


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"waves": {"rate": {"base_per_minute": 1}}}, "waves.rate.increment_factor"),
        ({"waves": {"rate": {**RATE, "increment_factor": 9}}}, "waves.rate.increment_factor"),
        ({"waves": {"rate": "fast"}}, "waves.rate"),
        ({"waves": {"rate": {}, "steps": [{"count": 1}]}}, "waves"),
        ({"change": {**CHANGE, "disruptive": "yes"}}, "change.disruptive"),
        ({"gates": {"max_fan_anomalies": -1}}, "gates.max_fan_anomalies"),
    ],
)  # fmt: skip
async def test_hostile_rates_flags_and_limits_name_the_field(
    world: World, over: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidRequestError) as err:
        await _create(world, **over)
    assert err.value.details.get("field") == field, str(err.value)
