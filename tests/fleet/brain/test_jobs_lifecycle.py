"""A placement's life on real databases: what boards report flows into placements (with
stored transitions) and settles the job; hostile or stale reports change nothing; a board
that goes offline, into SAFE mode, into a lockdown or into maintenance releases its
placements, which go to another board; stopping a job tells its boards and ends when they
say so; every step is audited."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.fleet.brain.jobs_kit import World, make_world
from wrale.fleet.brain.channel.offline import mark_offline
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import AuditEntry, Device
from wrale.fleet.brain.models.base import new_id
from wrale.fleet.brain.models.channel import ChannelSession
from wrale.fleet.brain.services import decision_log, job_placement, jobs, twin
from wrale.fleet.brain.services.principal import ForbiddenError, Principal, Role
from wrale.shared.central_settings import CentralSettings
from wrale.shared.errors import NotFoundError


@pytest.fixture
async def world(database: Database) -> World:
    return await make_world(database)


async def _place(w: World, now: float | None = None) -> job_placement.PlacementPass:
    async with w.db.session() as s:
        return await job_placement.place_pending(s, w.operator.tenant_id, now, w.bus)


async def test_reported_states_flow_into_placements_and_the_job(world: World) -> None:
    w = world
    job = await w.create(strategy="spread", replicas=2, duration_s=60)
    p1, p2 = await w.placements(job)
    assert await w.where(job) == [("a1", "starting"), ("a2", "starting")]
    v0, doc = await w.desired("a1")
    async with w.db.session() as s:
        t = await twin.get_twin(s, w.operator.tenant_id, w.ids["a1"])
        view = twin.twin_view(t)
    assert view["in_sync"] is False
    assert [d["path"] for d in view["diff"] if d["path"].startswith("jobs")] == [f"jobs.{p1.id}"]

    started = time.time()
    running = {"state": "running", "started_at": started, "cpu_s": 1.5, "output_tail": "hi"}
    await w.report("a1", 1, {**doc, "jobs": {p1.id: running}})
    (p1, _) = await w.placements(job)
    assert (p1.state, p1.cpu_s, p1.started_at, p1.output_tail) == ("running", 1.5, started, "hi")
    assert await w.transitions(p1.id) == [
        (None, "pending", "olga"),
        ("pending", "starting", "brain"),
        ("starting", "running", "device"),
    ]
    async with w.db.session() as s:
        t = await twin.get_twin(s, w.operator.tenant_id, w.ids["a1"])
        assert not [d for d in twin.twin_view(t)["diff"] if d["path"].startswith("jobs")]
    assert (await w.desired("a1"))[0] == v0  # nothing ended: desired unchanged

    done = {"state": "succeeded", "exit_code": 0, "cpu_s": 59.0, "ended_at": started + 60}
    await w.report("a1", 2, {"jobs": {p1.id: done}})
    (p1, p2) = await w.placements(job)
    assert (p1.state, p1.exit_code, p1.cpu_s) == ("succeeded", 0, 59.0)
    assert p1.reason == "reported by a1"
    assert (await w.job(job)).state == "running"  # its other replica has not ended
    version, doc = await w.desired("a1")
    assert (version, doc["jobs"]) == (v0 + 1, {})  # the board is told it may forget it

    refused = {"state": "failed", "reason": "argv not allowed by this board: /bin/sh"}
    await w.report("a2", 1, {"jobs": {p2.id: refused}})
    (_, p2) = await w.placements(job)
    assert (p2.state, p2.reason) == ("failed", "argv not allowed by this board: /bin/sh")
    assert (await w.job(job)).state == "failed"

    # late, stale, misplaced and malformed reports change nothing
    await w.report("a2", 2, {"jobs": {p2.id: {"state": "running"}}})  # already final
    await w.report("a2", 3, {"jobs": {p1.id: {"state": "failed"}}})  # not its placement
    await w.report(
        "a2",
        4,
        {"jobs": {"x": 1, "y" * 32: {"state": "running"}, p2.id: {"state": "exploded"}}},
    )
    await w.report("a2", 5, {"jobs": ["not", "an", "object"]})
    await w.report("a2", 6, {"jobs": {p2.id: {"state": "running", "exit_code": 2**40}}})
    assert [p.state for p in await w.placements(job)] == ["succeeded", "failed"]
    assert (await w.job(job)).state == "failed"
    async with w.db.session() as s:
        audited = list(
            await s.scalars(
                select(AuditEntry.action).where(AuditEntry.resource_id.in_([p1.id, p2.id, job]))
            )
        )
    assert audited.count("job.placement") == 7  # 2 × created, placed; running, 2 × ended
    assert audited.count("job.state") == 2  # pending → running → failed


async def test_boards_that_may_not_run_work_release_it_elsewhere(
    world: World, tmp_path: Path
) -> None:
    w = world
    job = await w.create(strategy="spread", replicas=1)
    assert await w.where(job) == [("a1", "starting")]

    # offline detection: silent past offline_after_s, released at once, placed elsewhere
    settings = CentralSettings(data_dir=tmp_path, offline_after_s=60, dev=True)
    now = time.time()
    async with w.db.session() as s:
        d = await s.get(Device, w.ids["a1"])
        assert d is not None
        d.last_seen_at = now - 120
    await mark_offline(w.db, w.bus, settings, now)
    (p,) = await w.placements(job)
    assert (p.state, p.device_id) == ("pending", None)
    assert p.reason == "a1 went offline (silent for 2 min)"
    assert (await w.desired("a1"))[1]["jobs"] == {}
    assert (await _place(w)).placed == 1
    assert await w.where(job) == [("a2", "starting")]

    # SAFE mode, as the board's open session says: the loop's sweep releases, then places
    async with w.db.session() as s:
        s.add(
            ChannelSession(
                id=new_id(),
                tenant_id=w.operator.tenant_id,
                device_id=w.ids["a2"],
                transport="ws",
                mode="safe",
                opened_at=now,
                last_seen_at=now,
            )
        )
    assert await _place(w) == job_placement.PlacementPass(placed=1, released=1, waiting=0)
    assert await w.where(job) == [("b1", "starting")]

    # a tamper lockdown in the board's report releases at once; the next pass moves it
    await w.report("b1", 1, {"tamper": {"armed": True, "lockdown": True}})
    assert await w.where(job) == [(None, "pending")]
    (p,) = await w.placements(job)
    assert p.reason == "b1 reports a tamper lockdown"
    assert (await _place(w)).placed == 1
    assert await w.where(job) == [("b2", "starting")]

    # an operator's maintenance releases too; a board disconnected only a moment keeps it
    async with w.db.session() as s:
        d = await s.get(Device, w.ids["b2"])
        assert d is not None
        d.status, d.last_seen_at = "offline", time.time() - 5
    assert (await _place(w)).released == 0
    assert await w.where(job) == [("b2", "starting")]
    async with w.db.session() as s:
        d = await s.get(Device, w.ids["b2"])
        assert d is not None
        d.status = "maintenance"
    result = await _place(w)
    assert (result.released, result.placed) == (1, 0)  # a1 offline, a2 safe, b1 locked
    (p,) = await w.placements(job)
    assert p.reason == (
        "no eligible board of 4: 1 offline, 1 in SAFE mode, 1 in a tamper lockdown, 1 maintenance"
    )

    async with w.db.session() as s:
        released = await decision_log.list_decisions(
            s, w.operator.tenant_id, loop="placement", subject=job
        )
    assert [d.action for d in released] == [
        "release",
        "place",
        "release",
        "place",
        "release",
        "place",
        "release",
        "place",
    ]
    assert released[0].summary == "released replica 0 of render from b2 (pending)"
    assert [t[1] for t in await w.transitions(p.id)] == [
        "pending",
        "starting",
        "pending",
        "starting",
        "pending",
        "starting",
        "pending",
        "starting",
        "pending",
    ]


async def test_a_job_that_may_not_move_fails_with_its_board(world: World) -> None:
    w = world
    job = await w.create(replicas=1, restartable=False)
    await w.report("a1", 1, {"tamper": {"lockdown": True}})
    (p,) = await w.placements(job)
    assert (p.state, p.device_id) == ("failed", w.ids["a1"])
    assert (
        p.reason == "a1 reports a tamper lockdown; the job is not restartable, so it is not moved"
    )
    assert (await w.job(job)).state == "failed"


async def test_stopping_a_job_tells_its_boards_and_ends_when_they_say_so(world: World) -> None:
    w = world
    job = await w.create(strategy="spread", replicas=3, selector={"rack_id": w.ids["rack_a"]})
    p1, p2, p3 = await w.placements(job)
    assert await w.where(job) == [("a1", "starting"), ("a2", "starting"), (None, "pending")]
    v1, _ = await w.desired("a1")

    viewer = Principal(w.operator.tenant_id, Role.VIEWER, "user", "v" * 32, "vic")
    stranger = Principal("0" * 32, Role.ADMIN, "user", "s" * 32, "sam")
    async with w.db.session() as s:
        with pytest.raises(ForbiddenError):
            await jobs.stop_job(s, viewer, job)
        with pytest.raises(NotFoundError):
            await jobs.stop_job(s, stranger, job)
    async with w.db.session() as s:
        stopped = await jobs.stop_job(s, w.operator, job, bus=w.bus)
        asked = stopped.stopped_at
    assert asked is not None
    assert [(p.state, p.reason) for p in await w.placements(job)] == [
        ("starting", "stop asked by olga; waiting for its board"),
        ("starting", "stop asked by olga; waiting for its board"),
        ("stopped", "stopped by olga"),
    ]
    assert (await w.job(job)).state == "running"
    version, doc = await w.desired("a1")
    assert (version, doc["jobs"]) == (v1 + 1, {})
    async with w.db.session() as s:
        again = await jobs.stop_job(s, w.operator, job)
        assert again.stopped_at == asked  # asking again changes nothing

    await w.report("a1", 1, {"jobs": {p1.id: {"state": "stopped", "exit_code": -15}}})
    assert (await w.job(job)).state == "running"
    await w.report("a2", 1, {"jobs": {p2.id: {"state": "succeeded", "exit_code": 0}}})
    assert [p.state for p in await w.placements(job)] == ["stopped", "succeeded", "stopped"]
    assert (await w.job(job)).state == "stopped"
    assert (await _place(w)).placed == 0  # a stopped job's replicas are never placed again
    async with w.db.session() as s:
        stops = list(await s.scalars(select(AuditEntry).where(AuditEntry.action == "job.stop")))
    assert [(e.actor_name, e.resource_id, e.after) for e in stops] == [
        ("olga", job, {"state": "running", "stopped_at": asked})
    ]
    assert p3.id  # the pending one was stopped by olga, without a board


async def test_stopping_frees_a_board_taken_offline_while_stopping(world: World) -> None:
    w = world
    job = await w.create(replicas=1)
    async with w.db.session() as s:
        await jobs.stop_job(s, w.operator, job)
        d = await s.get(Device, w.ids["a1"])
        assert d is not None
        d.status = "decommissioned"
    assert (await _place(w)).released == 1
    (p,) = await w.placements(job)
    assert (p.state, p.reason) == ("stopped", "a1 is decommissioned; the job was being stopped")
    assert (await w.job(job)).state == "stopped"
