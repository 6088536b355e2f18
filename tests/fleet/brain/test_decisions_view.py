"""The fleet view built from real rows on SQLite and PostgreSQL: latest readings, the
temperature trend of the last minutes, topology and budgets, placements and jobs; stale
readings are unknown. And physical placement on that view: it keeps work off a hot rack
and off a board on battery, and the decision log says why and from which inputs."""

from __future__ import annotations

import time

import pytest

from tests.fleet.brain.decisions_kit import COOL, board, decisions, readings, series
from tests.fleet.brain.jobs_kit import World, make_world
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.decisions.view import Source
from wrale.fleet.brain.services.fleet_view_builder import build_fleet_view


@pytest.fixture
async def world(database: Database) -> World:
    return await make_world(database)


async def test_the_view_reads_the_rows_and_stale_is_unknown(world: World) -> None:
    w, now = world, time.time()
    await readings(w, "a1", now - 5, **COOL, power_w=4.5, on_battery=0.0, throttled=0.0)
    await series(w, "a1", "cpu_temp_c", [(now - 125, 41.0), (now - 65, 43.0)])
    await readings(w, "a2", now - 300, **COOL, power_w=4.0)  # stale
    await readings(w, "b1", now - 5, **COOL, on_battery=1.0, battery_pct=62.0, under_voltage=1.0)
    await readings(w, "b2", now - 5, cpu_temp_c=50.0, fan_pct=80.0, fan_rpm=0.0)
    job = await w.create(strategy="spread", replicas=1, cpu_pct=30)
    async with w.db.session() as s:
        view = await build_fleet_view(s, w.operator.tenant_id, now)
    a1, a2, b1, b2 = (board(view, w, n) for n in ("a1", "a2", "b1", "b2"))
    assert a1.fresh
    assert a1.known_temp_c == 45.0
    assert a1.known_power_w == 4.5
    assert a1.known_trend_c_per_min == pytest.approx(2.0, abs=0.01)  # 41 → 45 in 2 minutes
    assert a1.known_source is Source.MAIN
    assert a1.rack_id == w.ids["rack_a"]
    assert a1.site_id == w.ids["site"]
    assert a1.room_id == w.ids["room"]
    assert not a2.fresh
    assert a2.known_temp_c is None
    assert a2.known_power_w is None
    assert a2.known_source is None
    assert a2.maybe_on_battery
    assert b1.on_battery
    assert b1.battery_pct == 62.0
    assert b1.under_voltage  # what a rollout's gate counts
    assert not a1.under_voltage
    assert b2.fan_failed
    assert b2.known_source is Source.MAIN  # fresh, no power monitor
    assert [p.job_id for p in a1.placements] == [job]
    assert a1.placements[0].starting
    assert a1.placements[0].cpu_pct == 30
    assert view.budget_w(w.ids["rack_a"]) == 40.0
    assert view.job(job) is not None
    async with w.db.session() as s:  # the capping loop's view: no trends read
        capping = await build_fleet_view(s, w.operator.tenant_id, now, with_trends=False)
    a1 = board(capping, w, "a1")
    assert a1.known_trend_c_per_min is None
    assert a1.known_temp_c == 45.0
    assert a1.known_power_w == 4.5


async def test_physical_avoids_a_hot_rack_and_a_board_on_battery(world: World) -> None:
    w, now = world, time.time()
    hot = {**COOL, "cpu_temp_c": 76.0, "ambient_temp_c": 38.0}
    await readings(w, "a1", now - 5, **hot, power_w=6.0, on_battery=0.0)
    await readings(w, "a2", now - 5, **hot, power_w=6.0, on_battery=0.0)
    await readings(w, "b1", now - 5, **COOL, power_w=3.5, on_battery=1.0)
    await readings(w, "b2", now - 5, **COOL, power_w=3.5, on_battery=0.0)
    job = await w.create(replicas=2, allow_battery=False)
    assert await w.where(job) == [("b2", "starting"), (None, "pending")]
    (placed,) = await decisions(w, "placement")
    assert placed.subjects["device"] == w.ids["b2"]
    assert "physical: best of the eligible boards" in placed.reasons[0]
    assert placed.inputs["strategy"] == "physical"
    assert placed.inputs["predicted_c"] is not None
    assert placed.inputs["rack_budget_w"] == 40.0
    (_, waiting) = await w.placements(job)
    assert "within reach of throttling" in (waiting.reason or "")
    assert "on battery" in (waiting.reason or "")

    # a job that allows battery goes on b1 after b2 (a penalty, not a ban); the hot rack: none
    ok = await w.create(name="may-battery", replicas=3, allow_battery=True)
    assert await w.where(ok) == [("b2", "starting"), ("b1", "starting"), (None, "pending")]
