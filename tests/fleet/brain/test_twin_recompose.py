"""Twins recomposed in the background after a fleet or group change: the batched
composition equals the per-board one (nested static groups, dynamic groups, device
policies), reads a constant number of queries per batch, progresses batch by batch,
resumes after an interruption, supersedes what a newer change covers, and two duties at
once (two replicas) bump each twin once and count each board once."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, select

from wrale.fleet.brain.bus import EventBus
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Device, Tenant
from wrale.fleet.brain.models.twin import DeviceTwin
from wrale.fleet.brain.services import groups, policies, twin, twin_batch, twin_recompose
from wrale.fleet.brain.services.principal import Principal, Role

_num = itertools.count(930_000)


async def fleet(db: Database, boards: int) -> tuple[Principal, list[str], dict[str, str]]:
    """``boards`` devices; every third tagged ``cam`` (dynamic group ``cams``), the first
    half in static ``lab`` under ``site`` (nested), and a policy on each level."""
    async with db.session() as s:
        t = Tenant(name=f"t-{next(_num)}", max_devices=100_000)
        s.add(t)
        await s.flush()
        admin = Principal(t.id, Role.ADMIN, "user", "u1", "alice")
        ids = []
        for i in range(boards):
            d = Device(
                tenant_id=t.id,
                num=next(_num),
                name=f"b{i:04d}",
                tags=["cam"] if i % 3 == 0 else [],
                status="online",
            )
            s.add(d)
            await s.flush()
            ids.append(d.id)
        site = await groups.create_group(s, admin, "site")
        lab = await groups.create_group(s, admin, "lab", parent_id=site.id)
        cams = await groups.create_group(
            s, admin, "cams", kind="dynamic", selector={"tags_all": ["cam"]}
        )
        for device_id in ids[: boards // 2]:
            await groups.add_member(s, admin, lab.id, device_id)
    g = {"site": site.id, "lab": lab.id, "cams": cams.id}
    async with db.session() as s:
        await policies.create_policy(s, admin, "fleet", None, "sampling", {"interval_s": 2.0})
        await policies.create_policy(s, admin, "group", g["site"], "thermal", {"hysteresis_c": 3})
        await policies.create_policy(
            s, admin, "group", g["lab"], "thermal", {"cpu_warning_c": 65.0}
        )
        await policies.create_policy(s, admin, "group", g["cams"], "security", {"level": "high"})
        await policies.create_policy(s, admin, "device", ids[1], "power", {"low_battery_pct": 35})
    return admin, ids, g


@contextmanager
def counting(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        seen.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)


async def desired(db: Database) -> dict[str, tuple[int, dict[str, Any]]]:
    async with db.session() as s:
        rows = await s.scalars(select(DeviceTwin))
        return {t.device_id: (t.desired_version, t.desired) for t in rows}


async def test_batch_equals_one_by_one_in_constant_queries(database: Database) -> None:
    admin, ids, _ = await fleet(database, 24)
    with counting(database) as small:  # the transaction, its writes included
        async with database.session() as s:
            # ids[1]'s twin was composed when its device policy was made: 5 change
            assert await twin_batch.recompose_devices(s, admin.tenant_id, ids[:6], None) == 5
    with counting(database) as large:
        async with database.session() as s:
            assert await twin_batch.recompose_devices(s, admin.tenant_id, ids[6:], None) == 18
    assert len(large) == len(small) <= 12, large  # per batch, not per board
    batched = await desired(database)
    async with database.session() as s:  # the per-board path composes the same documents
        for device_id in ids:
            await twin.get_twin(s, admin.tenant_id, device_id)
    assert await desired(database) == batched
    lab, cam = batched[ids[0]][1], batched[ids[3]][1]
    assert (lab["thermal"]["cpu_warning_c"], lab["thermal"]["hysteresis_c"]) == (65.0, 3)
    assert (lab["security"]["level"], cam["security"]["level"]) == ("high", "high")
    assert batched[ids[1]][1]["power"]["low_battery_pct"] == 35
    assert batched[ids[23]][1]["thermal"]["cpu_warning_c"] == 70.0  # not in lab, default


async def test_progress_resume_and_supersede(database: Database) -> None:
    admin, ids, g = await fleet(database, 10)
    bus = EventBus()
    await twin_recompose.recompose_pending(database, bus, budget_s=None)  # the set-up's
    assert {v for v, _ in (await desired(database)).values()} == {1}
    async with database.session() as s:
        lab = select(policies.Policy).where(policies.Policy.scope_id == g["lab"])
        lab_policy = (await s.scalars(lab)).one()
        await policies.update_policy(s, admin, lab_policy.id, {"cpu_warning_c": 62.0})
        first = policies.recompose_of(s)
    assert first is not None
    assert (first["scope_type"], first["total"], first["state"]) == ("group", 5, "queued")
    async with bus.subscribe(admin.tenant_id) as q:
        # one batch of 2, then the duty stops (a restart, a deadline): 2 of 5 done
        took = await twin_recompose.recompose_pending(database, bus, batch=2, max_batches=1)
        assert took == 2
        async with database.session() as s:
            mid = await twin_recompose.status(s, admin.tenant_id, first["id"])
        assert (mid["state"], mid["done"], mid["total"]) == ("running", 2, 5)
        # a fleet change now covers the rest: the group recompose is superseded
        async with database.session() as s:
            fleet_policy = (
                await s.scalars(
                    select(policies.Policy).where(policies.Policy.scope_type == "fleet")
                )
            ).one()
            await policies.update_policy(s, admin, fleet_policy.id, {"interval_s": 3.0})
            second = policies.recompose_of(s)
        assert second is not None
        async with database.session() as s:
            old = await twin_recompose.status(s, admin.tenant_id, first["id"])
        assert (old["state"], old["superseded_by"]) == ("superseded", second["id"])
        assert await twin_recompose.recompose_pending(database, bus, batch=3) == 10
        events = []
        while not q.empty():
            events.append(q.get_nowait())
    async with database.session() as s:
        done = await twin_recompose.status(s, admin.tenant_id, second["id"])
    assert (done["state"], done["done"], done["total"], done["changed"]) == ("done", 10, 10, 10)
    final = await desired(database)
    assert {v for v, _ in final.values()} == {2, 3}  # lab's first two boards changed twice
    assert sum(1 for v, _ in final.values() if v == 3) == 2
    assert all(doc["sampling"]["interval_s"] == 3.0 for _, doc in final.values())
    assert all(final[i][1]["thermal"]["cpu_warning_c"] == 62.0 for i in ids[:5])
    assert len([e for e in events if e.kind == "twin.desired"]) == 12
    assert await twin_recompose.recompose_pending(database, bus) == 0  # nothing left


async def test_two_duties_at_once_count_each_board_once(database: Database) -> None:
    admin, ids, _ = await fleet(database, 30)
    async with database.session() as s:
        fleet_policy = (
            await s.scalars(select(policies.Policy).where(policies.Policy.scope_type == "fleet"))
        ).one()
        await policies.update_policy(s, admin, fleet_policy.id, {"interval_s": 5.0})
        job = policies.recompose_of(s)
    assert job is not None
    await asyncio.gather(
        twin_recompose.recompose_pending(database, None, batch=4),
        twin_recompose.recompose_pending(database, None, batch=4),
    )
    async with database.session() as s:
        done = await twin_recompose.status(s, admin.tenant_id, job["id"])
    assert (done["state"], done["done"]) == ("done", 30)
    final = await desired(database)
    assert len(final) == 30
    # composed by the duty once each (ids[1]'s twin was made with its device policy)
    assert {i: v for i, (v, _) in final.items() if v != 1} == {ids[1]: 2}
    assert all(doc["sampling"]["interval_s"] == 5.0 for _, doc in final.values())


async def test_a_recompose_that_keeps_failing_does_not_stall_the_queue(
    database: Database,
) -> None:
    admin, _ids, _ = await fleet(database, 4)
    async with database.session() as s:  # a malformed entry ahead of a real change
        row = await twin_recompose._locked_row(s, admin.tenant_id)
        jobs = [{"id": "bad", "state": "queued", "created_at": 0.0}, *row.state["jobs"]]
        row.state = {"jobs": jobs}
    # the set-up's recomposes still run: the fleet's 4 boards, then 2 for each group's
    assert await twin_recompose.recompose_pending(database, None, budget_s=None) == 4 + 3 * 2
    async with database.session() as s:
        bad = await twin_recompose.status(s, admin.tenant_id, "bad")
        state = await s.scalar(
            select(twin_recompose.DecisionLoopState.state).where(
                twin_recompose.DecisionLoopState.tenant_id == admin.tenant_id
            )
        )
    assert bad["state"] == "failed"
    assert bad["error"].startswith("KeyError")
    assert {j["state"] for j in state["jobs"] if j["id"] != "bad"} <= {"done", "superseded"}
