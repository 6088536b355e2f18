"""Rollout waves capped per power feed: racks name the feed they hang on (``power_feed``)
and ``waves.max_per_feed`` keeps that many boards of one feed at most in a wave."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fleet.brain.jobs_kit import World, make_world
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.services import rollouts as svc
from wrale.fleet.brain.services import topology
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.shared.errors import InvalidRequestError

CHANGE = {"kind": "command", "op": "sim_load", "args": {"percent": 20}}


@pytest.fixture
async def world(database: Database) -> World:
    return await make_world(database)


def _admin(w: World) -> Principal:
    return Principal(w.operator.tenant_id, Role.ADMIN, "user", "a" * 32, "ada")


async def _feeds(w: World, a: str | None, b: str | None) -> None:
    async with w.db.session() as s:
        await topology.update_rack(s, w.operator, w.ids["rack_a"], {"power_feed": a})
        await topology.update_rack(s, w.operator, w.ids["rack_b"], {"power_feed": b})


async def _waves(w: World, waves: Any) -> list[list[str]]:
    body = {"name": "r", "change": CHANGE, "selector": {"site_id": w.ids["site"]}, "waves": waves}
    async with w.db.session() as s:
        c = await svc.check_rollout(s, _admin(w), body)
    return [sorted(str(w.name_of(d)) for d in wave) for wave in c.planned]


async def test_racks_on_one_feed_share_its_cap(world: World) -> None:
    w = world
    await _feeds(w, "pdu-1", "pdu-1")
    one = {"steps": [{"percent": 100}], "max_per_feed": 1}
    assert await _waves(w, one) == [["a1"], ["b1"], ["a2"], ["b2"]]
    await _feeds(w, "pdu-1", "pdu-2")  # two feeds: one board of each at once
    assert await _waves(w, one) == [["a1", "b1"], ["a2", "b2"]]
    await _feeds(w, None, None)  # no feed named: the cap holds nothing back
    assert await _waves(w, one) == [["a1", "a2", "b1", "b2"]]


async def test_a_created_rollout_keeps_the_feed_cap_in_its_spec(world: World) -> None:
    w = world
    await _feeds(w, "pdu-1", "pdu-1")
    waves = {"steps": [{"count": 2}, {"percent": 100}], "max_per_feed": 1}
    body = {"name": "r", "change": CHANGE, "selector": {"site_id": w.ids["site"]}, "waves": waves}
    async with w.db.session() as s:
        r = await svc.create_rollout(s, _admin(w), body, bus=w.bus)
        view = svc.rollout_view(r, await svc.waves_of(s, r.id), await svc.devices_of(s, r.id))
    assert [len(x["devices"]) for x in view["waves"]] == [1, 1, 1, 1]
    assert view["waves_spec"]["max_per_feed"] == 1


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "2"])
async def test_a_bad_feed_cap_names_the_field(world: World, bad: Any) -> None:
    with pytest.raises(InvalidRequestError) as e:
        await _waves(world, {"steps": [{"percent": 100}], "max_per_feed": bad})
    assert e.value.details.get("field") == "waves.max_per_feed", str(e.value)
