"""Placing jobs on real databases: spread takes the eligible boards in turn, the desired
``jobs`` section appears on the board's twin with a version bump, the hard rules
(max_per_rack, battery, selector, simulated boards, CPU room) keep replicas off boards
and say why, passes are idempotent and safe when two run at once, every step is a
transition, an audit entry and a decision, and the background job runs it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.fleet.brain.jobs_kit import SIM_LOAD, World, make_world
from wrale.fleet.brain.background import BackgroundRunner, default_jobs
from wrale.fleet.brain.bus import EventBus
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import AuditEntry, Device
from wrale.fleet.brain.services import decision_log, groups, job_placement
from wrale.shared.central_settings import CentralSettings
from wrale.shared.errors import NotFoundError


@pytest.fixture
async def world(database: Database) -> World:
    return await make_world(database)


async def _place(w: World, now: float | None = None) -> job_placement.PlacementPass:
    async with w.db.session() as s:
        return await job_placement.place_pending(s, w.operator.tenant_id, now, w.bus)


async def test_spread_takes_the_boards_in_turn_and_writes_the_twin(world: World) -> None:
    w = world
    before, _ = await w.desired("a1")
    async with w.bus.subscribe(w.operator.tenant_id) as heard:
        first = await w.create(strategy="spread", replicas=4, duration_s=60)
        kinds = {heard.get_nowait().kind for _ in range(heard.qsize())}
    assert {"twin.desired", "job.placement", "decision.recorded", "job.updated"} <= kinds
    assert await w.where(first) == [
        ("a1", "starting"),
        ("a2", "starting"),
        ("b1", "starting"),
        ("b2", "starting"),
    ]
    assert (await w.job(first)).state == "running"
    version, doc = await w.desired("a1")
    assert version == before + 1
    (p0, *_) = await w.placements(first)
    assert doc["jobs"] == {
        p0.id: {
            "job": first,
            "name": "render",
            "workload": SIM_LOAD,
            "duration_s": 60.0,
            "cpu_quota_pct": None,
        }
    }
    assert await w.transitions(p0.id) == [
        (None, "pending", "olga"),
        ("pending", "starting", "brain"),
    ]
    assert "spread: next eligible board in turn" in (p0.reason or "")

    # the next job takes the boards with the fewest placements first (all have one: by name)
    second = await w.create(strategy="spread", replicas=2)
    assert await w.where(second) == [("a1", "starting"), ("a2", "starting")]
    third = await w.create(strategy="spread", replicas=2)
    assert await w.where(third) == [("b1", "starting"), ("b2", "starting")]
    # a physical job on boards without readings is placed in the same order, and says so
    physical = await w.create(replicas=1)
    (p,) = await w.placements(physical)
    assert "physical: no candidate has fresh readings" in (p.reason or "")

    assert await _place(w) == job_placement.PlacementPass(0, 0, 0)  # nothing left to do
    assert (await w.desired("a1"))[0] == before + 3  # one bump per change, none on a no-op

    async with w.db.session() as s:
        placed = await decision_log.list_decisions(s, w.operator.tenant_id, loop="placement")
        on_a1 = await decision_log.list_decisions(s, w.operator.tenant_id, subject=w.ids["a1"])
        audited = dict(
            (
                await s.execute(
                    select(AuditEntry.action, func.count())
                    .where(AuditEntry.tenant_id == w.operator.tenant_id)
                    .group_by(AuditEntry.action)
                )
            ).all()
        )
    assert len(placed) == 9
    assert placed[0].id > placed[-1].id  # newest first
    assert {d.action for d in placed} == {"place"}
    assert len(on_a1) == 3
    assert on_a1[-1].subjects == {
        "job": first,
        "placement": p0.id,
        "device": w.ids["a1"],
        "rack": w.ids["rack_a"],
    }
    assert on_a1[-1].inputs["strategy"] == "spread"
    assert audited["job.create"] == 4
    assert audited["job.placement"] == 18  # created, then placed: two per replica


async def test_max_per_rack_battery_selector_and_simulated_boards(database: Database) -> None:
    w = await make_world(database, sim=("a1", "b1", "b2"))
    per_rack = await w.create(strategy="spread", replicas=3, max_per_rack=1)
    assert await w.where(per_rack) == [("a1", "starting"), ("b1", "starting"), (None, "pending")]
    waiting = (await w.placements(per_rack))[2].reason or ""
    assert waiting.startswith("no eligible board of 4:")
    assert "2 already running a replica of it" in waiting
    assert "1 not simulated" in waiting  # a2 cannot run a sim_load
    assert "1 in racks at its max_per_rack (1)" in waiting  # b2, beside b1

    await w.on_battery("b2")
    await w.on_battery("a1", value=1.0, at=time.time() - 3600)  # stale: not known now
    spread = await w.create(strategy="spread", replicas=3)
    assert await w.where(spread) == [("a1", "starting"), ("b1", "starting"), (None, "pending")]
    assert "1 on battery" in ((await w.placements(spread))[2].reason or "")
    allowed = await w.create(strategy="spread", replicas=1, allow_battery=True)
    assert await w.where(allowed) == [("b2", "starting")]

    gpu = await w.create(selector={"tags": ["gpu"]}, allow_battery=True)
    assert await w.where(gpu) == [("b2", "starting")]
    in_a = await w.create(
        selector={"rack_id": w.ids["rack_a"]},
        workload={"kind": "process", "argv": ["/usr/bin/stress-ng", "--cpu", "1"]},
    )
    assert await w.where(in_a) == [("a2", "starting")]  # a1 is busiest in rack A
    async with w.db.session() as s:
        g = await groups.create_group(s, w.operator, "pair")
        await groups.add_member(s, w.operator, g.id, w.ids["b1"])
    grouped = await w.create(selector={"group_id": g.id})
    assert await w.where(grouped) == [("b1", "starting")]

    # CPU room: a board's placements' hints add up to at most one board
    full = await w.create(
        strategy="spread", replicas=4, workload={"kind": "sim_load", "cpu_pct": 90}
    )
    assert [state for _, state in await w.where(full)].count("pending") == 4
    assert "without CPU room for it" in ((await w.placements(full))[0].reason or "")

    for selector in ({"rack_id": "f" * 32}, {"group_id": "e" * 32}):
        with pytest.raises(NotFoundError):
            await w.create(selector=selector)


async def test_a_pending_replica_is_placed_when_a_board_comes(database: Database) -> None:
    w = await make_world(database)
    async with w.db.session() as s:
        for board in ("a1", "a2", "b1", "b2"):
            d = await s.get(Device, w.ids[board])
            assert d is not None
            d.status = "offline"
    job = await w.create(strategy="spread", replicas=2)
    assert [p.reason for p in await w.placements(job)] == [
        "no eligible board of 4: 4 offline",
        "no eligible board of 4: 4 offline",
    ]
    assert (await w.job(job)).state == "pending"
    async with w.db.session() as s:
        d = await s.get(Device, w.ids["b2"])
        assert d is not None
        d.status = "online"
    assert (await _place(w)).placed == 1
    assert await w.where(job) == [("b2", "starting"), (None, "pending")]

    # the background job, under its lease, runs the same pass
    async with w.db.session() as s:
        d = await s.get(Device, w.ids["a1"])
        assert d is not None
        d.status = "online"
    settings = CentralSettings(data_dir=Path("/nonexistent"), dev=True)
    jobs = [j for j in default_jobs() if j.name == "job_placement"]
    runner = BackgroundRunner(w.db, EventBus(), settings, jobs=jobs, holder="r1")
    try:
        assert await runner.run_once() == ["job_placement"]
        assert await runner.run_once() == []  # due again in a few seconds, not now
    finally:
        await runner.stop()
    assert await w.where(job) == [("b2", "starting"), ("a1", "starting")]
    assert (await w.job(job)).state == "running"


async def test_two_passes_at_once_place_each_replica_once(world: World) -> None:
    w = world
    async with w.db.session() as s:
        for board in ("a1", "a2", "b1", "b2"):
            d = await s.get(Device, w.ids[board])
            assert d is not None
            d.status = "offline"
    jobs = [await w.create(strategy="spread", replicas=3, max_per_rack=1) for _ in range(3)]
    async with w.db.session() as s:
        for board in ("a1", "a2", "b1", "b2"):
            d = await s.get(Device, w.ids[board])
            assert d is not None
            d.status = "online"

    async def one_pass() -> int:
        async with w.db.session() as s:
            return (await job_placement.place_pending(s, None, None, w.bus)).placed

    counts = await asyncio.gather(one_pass(), one_pass(), one_pass())
    assert sum(counts) == 6  # two racks, at most one replica of each job per rack
    for job in jobs:
        placed = [p for p in await w.placements(job) if p.device_id]
        racks = [(await w.device(w.name_of(p.device_id) or "")).rack_id for p in placed]
        assert len(racks) == len(set(racks)) == 2
        for p in placed:
            assert [t[1] for t in await w.transitions(p.id)] == ["pending", "starting"]
