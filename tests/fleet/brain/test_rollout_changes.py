"""Rollouts of config templates and commands on real databases (SQLite and PostgreSQL):
a template version deployed wave by wave and, on abort, each canary given back the
version it had (or the template's keys removed); a command that fails on a canary fails
the gate by its failure share, and a command (not reversible) ends the rollout aborted
with the boards not reached never receiving it."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import select

from tests.fleet.brain.decisions_kit import COOL, readings
from tests.fleet.brain.jobs_kit import World, make_world
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.commands import Command
from wrale.fleet.brain.services import commands, templates, twin
from wrale.fleet.brain.services import rollouts as svc
from wrale.fleet.brain.services.rollout_loop import advance

WAVES = {"steps": [{"count": 2}, {"percent": 100}], "one_per_rack_first": True}


@pytest.fixture
async def world(database: Database) -> World:
    return await make_world(database)


async def _all(w: World, at: float, hot: dict[str, float] | None = None) -> None:
    for name in ("a1", "a2", "b1", "b2"):
        temp = (hot or {}).get(name, 45.0)
        await readings(w, name, at, **{**COOL, "cpu_temp_c": temp}, power_w=4.0, on_battery=0.0)


async def _create(w: World, change: dict[str, Any]) -> str:
    body = {
        "name": "r",
        "change": change,
        "selector": {"site_id": w.ids["site"]},
        "waves": WAVES,
        "gates": {"observe_s": 10, "max_temp_rise_c": 3},
    }
    async with w.db.session() as s:
        return (await svc.create_rollout(s, w.operator, body)).id


async def _step(w: World, rid: str, now: float) -> dict[str, Any]:
    async with w.db.session() as s:
        await advance(s, rid, now, w.bus)
        r = await svc.get_rollout(s, w.operator.tenant_id, rid)
        return svc.rollout_view(r, await svc.waves_of(s, rid), await svc.devices_of(s, rid))


async def _config(w: World, board: str) -> Any:
    async with w.db.session() as s:
        t = await twin.get_twin(s, w.operator.tenant_id, w.ids[board])
        return t.desired.get("config")


async def test_a_template_rollout_aborted_gives_each_canary_back_its_version(
    world: World,
) -> None:
    w, t0 = world, time.time()
    schema = {"server": {"type": "str"}}
    async with w.db.session() as s:
        tpl, _ = await templates.create_template(
            s, w.operator, "ntp", {"ntp": {"server": "${server}"}, "legacy": True}, schema
        )
        await templates.add_version(
            s, w.operator, tpl.id, {"ntp": {"server": "${server}", "iburst": True}}, schema, "v2"
        )
        await templates.deploy(
            s,
            w.operator,
            tpl.id,
            version=1,
            target_type="device",
            target_id=w.ids["b1"],
            variables={"server": "10.0.0.1"},
        )
    await _all(w, t0 - 1)
    change = {"kind": "template", "template_id": tpl.id, "variables": {"server": "10.0.0.9"}}
    rid = await _create(w, change)
    await _step(w, rid, t0)
    new = {"ntp": {"server": "10.0.0.9", "iburst": True}}
    assert await _config(w, "a1") == new
    assert await _config(w, "b1") == new
    await _all(w, t0 + 10, {"b1": 52.0})
    view = await _step(w, rid, t0 + 11)
    assert view["state"] == "rolled_back"
    assert view["change"]["version"] == 2  # the latest, resolved when created
    assert await _config(w, "b1") == {"ntp": {"server": "10.0.0.1"}, "legacy": True}
    assert not await _config(w, "a1")  # it had none from this template: the keys are gone
    assert not await _config(w, "a2")
    assert not await _config(w, "b2")


async def test_a_failed_command_fails_the_gate_and_cannot_be_undone(world: World) -> None:
    w, t0 = world, time.time()
    await _all(w, t0 - 1)
    rid = await _create(w, {"kind": "command", "op": "set_fan", "args": {"percent": 80}})
    view = await _step(w, rid, t0)
    assert view["waves"][0]["state"] == "observing"
    async with w.db.session() as s:
        sent = list(await s.scalars(select(Command).where(Command.op == "set_fan")))
        assert sorted(str(w.name_of(c.device_id)) for c in sent) == ["a1", "b1"]
        for c in sent:
            device = await s.get(Device, c.device_id)
            assert device is not None
            ok = w.name_of(c.device_id) == "b1"
            await commands.record_result(
                s, device, c.id, "succeeded" if ok else "failed", None if ok else "fan stuck",
                None, t0 + 5,
            )  # fmt: skip
    await _all(w, t0 + 10)
    view = await _step(w, rid, t0 + 11)
    gate = view["waves"][0]["gate"]
    assert gate["passed"] is False
    assert gate["failure_pct"] == 50.0
    assert [w.name_of(i) for i in gate["offenders"]] == ["a1"]
    assert view["state"] == "aborted"
    details = {w.name_of(k): v["detail"] for k, v in view["waves"][0]["device_states"].items()}
    assert "cannot be undone" in str(details["b1"])
    async with w.db.session() as s:
        count = len(list(await s.scalars(select(Command).where(Command.op == "set_fan"))))
    assert count == 2  # a2 and b2 never got it
