"""The capping and balancing loops on real databases (SQLite and PostgreSQL): capping
lowers the CPU quotas of a rack over its budget (measured from its boards' reported
power_w) and caps their clocks by command, keeps its state between periods, and releases
with hysteresis once there is room; balancing moves a restartable placement off a board
whose fan failed, with stored transitions and a decision; a paused loop does nothing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import select, update

from tests.fleet.brain.decisions_kit import COOL, decisions, readings
from tests.fleet.brain.jobs_kit import World, make_world
from wrale.fleet.brain.background import BackgroundRunner, default_jobs
from wrale.fleet.brain.bus import EventBus
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.decisions.capping import MIN_QUOTA_PCT
from wrale.fleet.brain.models import Device, Rack
from wrale.fleet.brain.models.commands import Command
from wrale.fleet.brain.services import (
    decision_loops,
    job_placement,
    rack_capping,
    thermal_balancing,
)
from wrale.shared.central_settings import CentralSettings


@pytest.fixture
async def world(database: Database) -> World:
    return await make_world(database)


async def _budget(w: World, rack: str, watts: float) -> None:
    async with w.db.session() as s:
        await s.execute(update(Rack).where(Rack.id == w.ids[rack]).values(power_budget_w=watts))


async def _cap(w: World, now: float) -> int:
    async with w.db.session() as s:
        return await rack_capping.cap_tenant(s, w.operator.tenant_id, now, w.bus)


async def _balance(w: World, now: float) -> int:
    async with w.db.session() as s:
        return await thermal_balancing.balance_tenant(s, w.operator.tenant_id, now, w.bus)


async def _power(w: World, now: float, a_w: float) -> None:
    for name in ("a1", "a2"):
        await readings(w, name, now - 2, **COOL, power_w=a_w, on_battery=0.0)
    for name in ("b1", "b2"):
        await readings(w, name, now - 2, **COOL, power_w=3.0, on_battery=0.0)


async def _commands(w: World) -> list[Command]:
    async with w.db.session() as s:
        rows = await s.scalars(
            select(Command).where(Command.tenant_id == w.operator.tenant_id).order_by(Command.id)
        )
        return list(rows)


async def test_capping_lowers_quotas_over_budget_and_releases_with_room(world: World) -> None:
    w, t0 = world, time.time()
    assert {"rack_capping", "thermal_balancing"} <= {j.name for j in default_jobs()}
    job = await w.create(strategy="spread", replicas=4, priority=20)
    await _budget(w, "rack_a", 10.0)
    await _power(w, t0, 6.5)  # rack A: 13 W of 10
    assert await _cap(w, t0) > 0
    quotas = {w.name_of(p.device_id): p.cpu_quota_pct for p in await w.placements(job)}
    assert quotas == {"a1": MIN_QUOTA_PCT, "a2": MIN_QUOTA_PCT, "b1": None, "b2": None}
    _, doc = await w.desired("a1")
    assert [e["cpu_quota_pct"] for e in doc["jobs"].values()] == [MIN_QUOTA_PCT]
    capped = await decisions(w, "capping")
    assert {d.action for d in capped} >= {"quota", "freq_cap"}
    assert all(d.subjects["rack"] == w.ids["rack_a"] for d in capped)
    assert "rack rack-a draws 13.0 W of its 10 W budget" in capped[0].reasons[0]
    assert capped[0].inputs["rack_draw_w"] == 13.0
    throttles = [c for c in await _commands(w) if c.op == "set_throttle"]
    assert throttles
    assert {c.device_id for c in throttles} <= {w.ids["a1"], w.ids["a2"]}
    async with w.db.session() as s:
        state = await decision_loops.load_state(s, w.operator.tenant_id, "capping")
    assert state["racks"][w.ids["rack_a"]] == [1, 0]
    assert set(state["caps"]) <= {w.ids["a1"], w.ids["a2"]}

    # room again: released after three periods with room, a share of the room each time
    for k in range(1, 15):
        now = t0 + 10 * k
        await _power(w, now, 3.0)
        await _cap(w, now)
    quotas = {w.name_of(p.device_id): p.cpu_quota_pct for p in await w.placements(job)}
    assert quotas == {"a1": None, "a2": None, "b1": None, "b2": None}
    lifted = [d.action for d in await decisions(w, "capping")]
    assert "quota_lift" in lifted
    assert "freq_cap_lift" in lifted
    async with w.db.session() as s:
        state = await decision_loops.load_state(s, w.operator.tenant_id, "capping")
    assert state["caps"] == {}
    _, doc = await w.desired("a1")
    assert [e["cpu_quota_pct"] for e in doc["jobs"].values()] == [None]


async def test_balancing_moves_a_placement_off_a_board_whose_fan_failed(world: World) -> None:
    w = world
    job = await w.create(strategy="spread", replicas=1)
    assert await w.where(job) == [("a1", "starting")]
    now = time.time()
    await _power(w, now, 4.0)
    await readings(w, "a1", now - 2, fan_pct=90.0, fan_rpm=0.0)
    assert await _balance(w, now) == 1
    ((where, state),) = await w.where(job)
    assert where != "a1"
    assert state == "starting"
    (p,) = await w.placements(job)
    assert await w.transitions(p.id) == [
        (None, "pending", "olga"),
        ("pending", "starting", "brain"),
        ("starting", "moving", "brain"),
        ("moving", "starting", "brain"),
    ]
    (moved,) = await decisions(w, "balancing")
    assert moved.action == "move"
    assert moved.reasons[0].startswith(f"a1: its fan failed; moved to {where} ")  # names
    assert moved.summary == f"placement {p.id} moved from a1 to {where}"
    assert moved.inputs["fan_failed"] is True
    assert (await w.desired("a1"))[1].get("jobs") in ({}, None)
    assert p.id in (await w.desired(where or ""))[1]["jobs"]
    # the moved placement does not move again in its cool-down, nor does a1 take work
    assert await _balance(w, now + 10) == 0


async def test_a_paused_loop_acts_on_nothing_and_logs_nothing(world: World) -> None:
    w, now = world, time.time()
    job = await w.create(strategy="spread", replicas=2)
    await _budget(w, "rack_a", 5.0)
    await _power(w, now, 6.5)
    await readings(w, "a1", now - 2, fan_pct=90.0, fan_rpm=0.0)
    async with w.db.session() as s:
        await decision_loops.set_pause(s, w.operator, "capping", True, w.ids["site"])
        await decision_loops.set_pause(s, w.operator, "balancing", True)
    assert await _cap(w, now) == 0
    assert await _balance(w, now) == 0
    assert await decisions(w, "capping") == []
    assert await decisions(w, "balancing") == []
    assert {p.cpu_quota_pct for p in await w.placements(job)} == {None}
    async with w.db.session() as s:
        listed = await decision_loops.list_pauses(s, w.operator.tenant_id)
        await decision_loops.set_pause(s, w.operator, "capping", False, w.ids["site"])
    by_loop = {x["loop"]: x["paused"] for x in listed}
    assert [p["site_id"] for p in by_loop["capping"]] == [w.ids["site"]]
    assert [p["site_id"] for p in by_loop["balancing"]] == [None]
    assert by_loop["placement"] == []
    assert await _cap(w, now + 10) > 0  # resumed


async def test_a_paused_placement_loop_puts_no_new_work_in_that_site(world: World) -> None:
    w = world
    async with w.db.session() as s:
        await decision_loops.set_pause(s, w.operator, "placement", True, w.ids["site"])
    job = await w.create(strategy="spread", replicas=1)
    assert await w.where(job) == [(None, "pending")]
    assert await decisions(w, "placement") == []
    async with w.db.session() as s:
        await decision_loops.set_pause(s, w.operator, "placement", False, w.ids["site"])
    async with w.db.session() as s:
        await job_placement.place_pending(s, w.operator.tenant_id, None, w.bus)
    assert await w.where(job) == [("a1", "starting")]


async def test_the_background_jobs_run_each_loop_once_under_its_lease(world: World) -> None:
    w = world
    job = await w.create(strategy="spread", replicas=4, priority=20)
    await _budget(w, "rack_a", 10.0)
    await _power(w, time.time(), 6.5)
    settings = CentralSettings(data_dir=Path("/nonexistent"), dev=True)
    loops = [j for j in default_jobs() if j.name in ("rack_capping", "thermal_balancing")]
    first = BackgroundRunner(w.db, EventBus(), settings, jobs=loops, holder="r1")
    second = BackgroundRunner(w.db, EventBus(), settings, jobs=loops, holder="r2")
    try:
        assert sorted(await first.run_once()) == ["rack_capping", "thermal_balancing"]
        assert await second.run_once() == []  # the leases are r1's
    finally:
        await first.stop()
        await second.stop()
    quotas = {w.name_of(p.device_id): p.cpu_quota_pct for p in await w.placements(job)}
    assert quotas["a1"] == MIN_QUOTA_PCT
    assert quotas["b1"] is None


async def test_a_placement_no_board_can_take_goes_back_to_pending(world: World) -> None:
    w = world
    job = await w.create(strategy="spread", replicas=1)
    now = time.time()
    # only a1 reported (its fan failed): the other boards' headroom is unknown
    await readings(w, "a1", now - 2, **COOL, power_w=4.0, on_battery=0.0)
    await readings(w, "a1", now - 1, fan_pct=90.0, fan_rpm=0.0)
    assert await _balance(w, now) == 1
    assert await w.where(job) == [(None, "pending")]
    (evicted,) = await decisions(w, "balancing")
    assert evicted.action == "evict"
    assert "no other board can take it" in evicted.reasons[0]
    assert (await w.job(job)).state == "pending"


async def test_a_replica_taking_over_the_capping_lease_carries_on_from_the_stored_state(
    world: World,
) -> None:
    """Replica r1 caps rack A and stops renewing its lease (it died); r2 takes the lease
    when it runs out and, from the state r1 stored, lifts the caps r1 set: no cap is
    orphaned and the hysteresis counts on across the handover."""
    w, t0 = world, time.time()
    job = await w.create(strategy="spread", replicas=4, priority=20)
    await _budget(w, "rack_a", 10.0)
    await _power(w, t0, 6.5)
    settings = CentralSettings(data_dir=Path("/nonexistent"), dev=True)
    loops = [j for j in default_jobs() if j.name == "rack_capping"]
    r1 = BackgroundRunner(w.db, EventBus(), settings, jobs=loops, holder="r1")
    r2 = BackgroundRunner(w.db, EventBus(), settings, jobs=loops, holder="r2")
    try:
        assert await r1.run_once(t0) == ["rack_capping"]
        assert await r2.run_once(t0 + 1) == []  # r1's lease
        async with w.db.session() as s:
            handed = await decision_loops.load_state(s, w.operator.tenant_id, "capping")
        assert handed["caps"], "r1 capped clocks in rack A"
        ran = []
        for k in range(1, 15):  # r1 is gone: r2 runs every period once r1's lease ran out
            now = t0 + 10 * k + 0.5
            await _power(w, now, 3.0)
            ran.append(await r2.run_once(now))
        assert ran[0] == ["rack_capping"]
        assert await r1.run_once(t0 + 10 * 14 + 1) == []  # r2 holds it now
    finally:
        await r1.stop()
        await r2.stop()
    quotas = {w.name_of(p.device_id): p.cpu_quota_pct for p in await w.placements(job)}
    assert quotas == {"a1": None, "a2": None, "b1": None, "b2": None}
    lifts = [d for d in await decisions(w, "capping") if d.action == "freq_cap_lift"]
    assert {d.subjects["device"] for d in lifts} == set(handed["caps"])
    async with w.db.session() as s:
        state = await decision_loops.load_state(s, w.operator.tenant_id, "capping")
    assert state["caps"] == {}


async def test_a_clock_cap_a_board_keeps_refusing_is_logged_once_in_a_while(world: World) -> None:
    """A held board cannot take set_throttle: capping tries every period but logs the
    refusal once per NOT_APPLIED_EVERY_S, not every 10 s."""
    w, t0 = world, time.time()
    await w.create(strategy="spread", replicas=4, priority=20)
    await _budget(w, "rack_a", 10.0)
    async with w.db.session() as s:
        await s.execute(update(Device).where(Device.id == w.ids["a1"]).values(status="maintenance"))
    periods = int(rack_capping.NOT_APPLIED_EVERY_S // 10)
    for k in range(periods + 2):
        await _power(w, t0 + 10 * k, 6.5)
        await _cap(w, t0 + 10 * k)
    refused = [
        d
        for d in await decisions(w, "capping")
        if d.action == "not_applied" and d.subjects["device"] == w.ids["a1"]
    ]
    assert len(refused) == 2  # at t0 and once NOT_APPLIED_EVERY_S later
    assert "maintenance" in refused[0].summary
