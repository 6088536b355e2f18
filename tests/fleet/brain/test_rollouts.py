"""Staged rollouts on real databases (SQLite and PostgreSQL), advanced by their loop: a
policy rollout that passes its gates completes in topology-aware waves; canaries that get
hotter than the boards not yet reached fail the gate, the rollout aborts, the canaries get
back what they had before and the other boards never receive the change; a pause after a
failed gate and a resume retry only the failed boards; paused time is not observed time;
every wave start, gate and rollback is in the decision log; the loop runs under its lease."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from tests.fleet.brain.decisions_kit import COOL, decisions, readings
from tests.fleet.brain.jobs_kit import World, make_world
from wrale.fleet.brain.background import default_jobs
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import AuditEntry
from wrale.fleet.brain.models.commands import Command
from wrale.fleet.brain.models.policies import Policy
from wrale.fleet.brain.services import policies
from wrale.fleet.brain.services import rollouts as svc
from wrale.fleet.brain.services.maintenance import windows
from wrale.fleet.brain.services.principal import ForbiddenError, Principal, Role
from wrale.fleet.brain.services.rollout_loop import advance, advance_all
from wrale.shared.errors import ConflictError, InvalidRequestError

CHANGE = {"kind": "policy", "policy_kind": "thermal", "values": {"hysteresis_c": 3.0}}


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


async def _step(w: World, rid: str, now: float) -> dict[str, Any]:
    async with w.db.session() as s:
        await advance(s, rid, now, w.bus)
    return await _show(w, rid)


async def _show(w: World, rid: str) -> dict[str, Any]:
    async with w.db.session() as s:
        r = await svc.get_rollout(s, w.operator.tenant_id, rid)
        return svc.rollout_view(r, await svc.waves_of(s, rid), await svc.devices_of(s, rid))


async def _all(w: World, at: float, hot: dict[str, float] | None = None) -> None:
    for name in ("a1", "a2", "b1", "b2"):
        temp = (hot or {}).get(name, 45.0)
        await readings(w, name, at, **{**COOL, "cpu_temp_c": temp}, power_w=4.0, on_battery=0.0)


async def _device_policy(w: World, board: str) -> dict[str, Any] | None:
    async with w.db.session() as s:
        p = await s.scalar(
            select(Policy).where(
                Policy.scope_type == "device",
                Policy.scope_id == w.ids[board],
                Policy.kind == "thermal",
            )
        )
        return None if p is None else dict(p.document)


def _names(w: World, ids: list[str]) -> list[str]:
    return sorted(str(w.name_of(i)) for i in ids)


async def test_a_passing_rollout_completes_in_topology_aware_waves(world: World) -> None:
    w, t0 = world, time.time()
    await _all(w, t0 - 1)
    rid = await _create(w)
    view = await _show(w, rid)
    assert view["state"] == "running"
    assert [_names(w, x["devices"]) for x in view["waves"]] == [["a1", "b1"], ["a2", "b2"]]
    view = await _step(w, rid, t0)
    assert view["waves"][0]["state"] == "observing"
    assert await _device_policy(w, "a1") == {"hysteresis_c": 3.0}
    assert await _device_policy(w, "a2") is None  # not reached yet
    assert (await _step(w, rid, t0 + 5))["waves"][0]["state"] == "observing"
    await _all(w, t0 + 10)
    view = await _step(w, rid, t0 + 11)
    gate = view["waves"][0]["gate"]
    assert view["waves"][0]["state"] == "passed"
    assert gate["passed"] is True
    assert gate["temp_rise_c"] == 0.0
    assert gate["failure_pct"] == 0.0
    await _step(w, rid, t0 + 12)
    await _all(w, t0 + 22)
    view = await _step(w, rid, t0 + 23)
    assert view["state"] == "succeeded"
    assert [x["state"] for x in view["waves"]] == ["passed", "passed"]
    for board in ("a1", "a2", "b1", "b2"):
        assert await _device_policy(w, board) == {"hysteresis_c": 3.0}
    actions = [d.action for d in await decisions(w, "rollouts")]
    assert actions == ["wave_start", "gate", "wave_start", "gate"]


async def test_hot_canaries_fail_the_gate_abort_and_are_rolled_back(world: World) -> None:
    w, t0 = world, time.time()
    async with w.db.session() as s:
        await policies.create_policy(
            s, _admin(w), "device", w.ids["b1"], "thermal", {"hysteresis_c": 8.0}
        )
    await _all(w, t0 - 1)
    rid = await _create(w)
    await _step(w, rid, t0)
    assert await _device_policy(w, "b1") == {"hysteresis_c": 3.0}
    # the canary a1 heats up 9 °C; the weather (boards not reached) rises 1 °C
    await _all(w, t0 + 10, {"a1": 55.0, "b1": 46.0, "a2": 46.0, "b2": 46.0})
    view = await _step(w, rid, t0 + 11)
    assert view["state"] == "rolled_back"
    gate = view["waves"][0]["gate"]
    assert gate["passed"] is False
    assert gate["weather_rise_c"] == 1.0
    assert gate["temp_rise_c"] == 9.0
    assert _names(w, gate["offenders"]) == ["a1"]
    assert [x["state"] for x in view["waves"]] == ["rolled_back", "skipped"]
    assert await _device_policy(w, "a1") is None  # it had none: the override is gone
    assert await _device_policy(w, "b1") == {"hysteresis_c": 8.0}  # its own, restored
    for board in ("a2", "b2"):  # never reached
        assert await _device_policy(w, board) is None
    states = view["waves"][1]["device_states"]
    assert {v["state"] for v in states.values()} == {"pending"}
    actions = [d.action for d in await decisions(w, "rollouts")]
    assert actions == ["wave_start", "gate", "abort", "rollback"]
    assert (await _step(w, rid, t0 + 30))["state"] == "rolled_back"  # nothing more


async def test_pause_on_gate_failure_then_resume_retries_only_the_failed(world: World) -> None:
    w, t0 = world, time.time()
    await _all(w, t0 - 1)
    rid = await _create(w, on_gate_failure="pause")
    await _step(w, rid, t0)
    await _all(w, t0 + 10, {"a1": 52.0})
    view = await _step(w, rid, t0 + 11)
    assert view["state"] == "paused"
    assert view["waves"][0]["state"] == "failed"
    states = {w.name_of(k): v["state"] for k, v in view["waves"][0]["device_states"].items()}
    assert states == {"a1": "failed", "b1": "applied"}
    assert await _device_policy(w, "a1") == {"hysteresis_c": 3.0}  # paused, not rolled back
    assert (await _step(w, rid, t0 + 12))["state"] == "paused"  # the loop leaves it paused
    async with w.db.session() as s:
        await svc.resume(s, w.operator, rid, now=t0 + 20, bus=w.bus)
    await _all(w, t0 + 20)
    view = await _step(w, rid, t0 + 21)
    wave = view["waves"][0]
    assert wave["state"] == "observing"
    assert wave["attempt"] == 1
    async with w.db.session() as s:
        (w0, _) = await svc.waves_of(s, rid)
        assert _names(w, w0.baselines["devices"]) == ["a1"]  # only the failed board again
    await _all(w, t0 + 31)
    view = await _step(w, rid, t0 + 32)
    assert view["waves"][0]["state"] == "passed"
    assert view["waves"][0]["gate"]["boards"] == 1
    async with w.db.session() as s:
        audits = await s.scalars(select(AuditEntry.action).where(AuditEntry.resource_id == rid))
        assert set(audits) >= {"rollout.create", "rollout.resume"}


async def test_paused_time_is_not_observed_time(world: World) -> None:
    w, t0 = world, time.time()
    await _all(w, t0 - 1)
    rid = await _create(w)
    await _step(w, rid, t0)
    async with w.db.session() as s:
        await svc.pause(s, w.operator, rid, now=t0 + 2, bus=w.bus)
    assert (await _step(w, rid, t0 + 30))["waves"][0]["state"] == "observing"
    async with w.db.session() as s:
        await svc.resume(s, w.operator, rid, now=t0 + 50, bus=w.bus)
    await _all(w, t0 + 54)
    view = await _step(w, rid, t0 + 55)  # 55 s since the start, 7 s observed
    assert view["waves"][0]["state"] == "observing"
    assert view["waves"][0]["paused_s"] == pytest.approx(48.0)
    view = await _step(w, rid, t0 + 59)  # 11 s observed
    assert view["waves"][0]["state"] == "passed"
    assert view["waves"][0]["gate"]["observed_s"] == pytest.approx(11.0)


async def test_approval_abort_by_hand_and_roles(world: World) -> None:
    w, t0 = world, time.time()
    await _all(w, t0 - 1)
    rid = await _create(w, require_approval=True)
    await _step(w, rid, t0)
    await _all(w, t0 + 10)
    assert (await _step(w, rid, t0 + 11))["state"] == "waiting_approval"
    assert (await _step(w, rid, t0 + 12))["waves"][1]["state"] == "pending"
    viewer = Principal(w.operator.tenant_id, Role.VIEWER, "user", "v" * 32, "vic")
    async with w.db.session() as s:
        with pytest.raises(ForbiddenError):
            await svc.approve(s, viewer, rid)
    async with w.db.session() as s:
        await svc.approve(s, w.operator, rid, now=t0 + 13)
    assert (await _step(w, rid, t0 + 14))["waves"][1]["state"] == "observing"
    async with w.db.session() as s:
        await svc.abort(s, w.operator, rid, now=t0 + 15)
    async with w.db.session() as s:
        with pytest.raises(ConflictError):
            await svc.resume(s, w.operator, rid)
    await advance_all(w.db, t0 + 16, w.bus)
    view = await _show(w, rid)
    assert view["state"] == "rolled_back"
    for board in ("a1", "a2", "b1", "b2"):
        assert await _device_policy(w, board) is None
    async with w.db.session() as s:
        with pytest.raises(ForbiddenError):  # a policy rollout needs an admin
            await svc.create_rollout(
                s, w.operator, {"name": "x", "change": CHANGE, "selector": {"site_id": "x"}}
            )
    assert "rollouts" in [j.name for j in default_jobs()]


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": 5}, "name"),
        ({"change": None}, "change"),
        ({"change": {"kind": "magic"}}, "change.kind"),
        ({"change": {**CHANGE, "policy_kind": "nope"}}, "change.policy_kind"),
        ({"change": {**CHANGE, "values": {"hysteresis_c": "hot"}}}, "change.values"),
        ({"change": {"kind": "command", "op": "format_disk"}}, "change.op"),
        ({"change": {"kind": "command", "op": "set_fan", "args": {"pct": 900}}}, "change.args"),
        ({"waves": [{"percent": 0}]}, "waves[0].percent"),
        ({"waves": {"steps": [{"count": 1}], "max_per_rack": 0}}, "waves.max_per_rack"),
        ({"gates": {"max_temp_rise_c": float("inf")}}, "gates.max_temp_rise_c"),
        ({"gates": {"banana": 1}}, "gates"),
        ({"on_gate_failure": "explode"}, "on_gate_failure"),
        ({"selector": {"tags_all": ["nobody-has-this"]}}, "selector"),
        ({"selector": []}, "selector"),
        ({"surprise": 1}, "body"),
    ],
)
async def test_hostile_input_names_the_field(
    world: World, over: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidRequestError) as err:
        await _create(world, **over)
    assert err.value.details.get("field") == field, str(err.value)


async def test_a_reboot_waits_for_the_window_and_the_battery_condition(world: World) -> None:
    w, t0 = world, time.time()
    opens = datetime.fromtimestamp(t0 + 3600, UTC)
    async with w.db.session() as s:
        await windows.create_window(
            s,
            w.operator,
            {
                "name": "nightly",
                "cron": f"{opens.minute} {opens.hour} * * *",
                "duration_s": 3600,
                "conditions": {"not_on_battery": True},
            },
        )
    reboot = {"kind": "command", "op": "reboot", "args": {}}
    rid = await _create(w, change=reboot, waves=[{"percent": 100}])
    await _all(w, t0 - 1)
    view = await _step(w, rid, t0)  # the window is closed: nobody reboots
    assert view["waves"][0]["state"] == "pending"
    details = [v["detail"] for v in view["waves"][0]["device_states"].values()]
    assert all(d.startswith("waiting for its maintenance window") for d in details), details
    async with w.db.session() as s:
        assert list(await s.scalars(select(Command).where(Command.op == "reboot"))) == []
    inside = t0 + 3660
    await _all(w, inside - 1)
    await readings(w, "a1", inside - 1, on_battery=1.0)
    view = await _step(w, rid, inside)  # open, but a1 runs on its battery
    states = {w.name_of(k): v["state"] for k, v in view["waves"][0]["device_states"].items()}
    assert states == {"a1": "pending", "a2": "applied", "b1": "applied", "b2": "applied"}
    assert view["waves"][0]["state"] == "pending"
    await readings(w, "a1", inside + 9, on_battery=0.0)
    view = await _step(w, rid, inside + 10)
    assert view["waves"][0]["state"] == "observing"
    async with w.db.session() as s:
        sent = list(await s.scalars(select(Command.device_id).where(Command.op == "reboot")))
    assert _names(w, sent) == ["a1", "a2", "b1", "b2"]
    view = await _step(w, rid, inside + 30)  # the reboots have not answered: the gate waits
    assert view["waves"][0]["state"] == "observing"
