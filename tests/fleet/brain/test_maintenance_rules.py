"""Maintenance rules and their tasks on real databases (SQLite and PostgreSQL): hostile
rules refused naming the field, a task opened once per board and rule from stored 1-minute
rollups (never twice, not again after ``done`` while the condition still holds, again once
it has ended and returned), scopes, disabled rules, deleting a rule closes its tasks, the
background job; every write audited."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from tests.fleet.brain.jobs_kit import World, make_world
from tests.fleet.brain.rules_kit import minutes
from wrale.fleet.brain.background import default_jobs
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import AuditEntry
from wrale.fleet.brain.models.groups import Group, GroupMember
from wrale.fleet.brain.models.maintenance import MaintenanceTask
from wrale.fleet.brain.services.maintenance import rules, rules_runner, tasks
from wrale.fleet.brain.services.principal import ForbiddenError, Principal, Role
from wrale.shared.errors import ConflictError, InvalidRequestError

NOW = 1_800_000_000.0
HOT = {"metric": "cpu_temp_c", "op": ">", "value": 75, "for_s": 3600}  # > 75 °C for 1 h
DEEP = {"all": [{"any": [{"all": [{"all": [HOT]}]}]}]}  # four levels of all/any


async def _minutes(db: Database, device_id: str, metric: str, values: list[float]) -> None:
    await minutes(db, device_id, metric, values, NOW)


async def _rule(w: World, **data: Any) -> str:
    async with w.db.session() as s:
        r = await rules.create_rule(s, w.operator, {"name": "hot", "condition": HOT, **data})
        return r.id


async def _run(db: Database, at: float = NOW) -> dict[str, int]:
    return await rules_runner.evaluate_all(db, at)


async def _tasks(w: World, **where: Any) -> list[MaintenanceTask]:
    async with w.db.session() as s:
        return await tasks.list_tasks(s, w.operator.tenant_id, **where)


@pytest.fixture
async def world(database: Database) -> World:
    return await make_world(database)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"condition": {"metric": "cpu_temp_c", "op": ">", "value": 500}}, "condition.value"),
        ({"condition": {"all": [HOT, {**HOT, "value": -300}]}}, "condition.all[1].value"),
        ({"condition": {"all": [HOT, {**HOT, "metric": "nosuch_c"}]}}, "condition.all[1].metric"),
        ({"condition": {"any": [{**HOT, "metric": "Bad Name"}]}}, "condition.any[0].metric"),
        ({"condition": {"any": [{**HOT, "op": "=~"}]}}, "condition.any[0].op"),
        ({"condition": {"all": [{**HOT, "for_s": 2}]}}, "condition.all[0].for_s"),
        ({"condition": {"all": [{**HOT, "for_s": 2 * 86_400}]}}, "condition.all[0].for_s"),
        ({"condition": {"all": [{**HOT, "value": True}]}}, "condition.all[0].value"),
        ({"condition": {"all": [{**HOT, "colour": "red"}]}}, "condition.all[0].colour"),
        ({"condition": {"all": []}}, "condition.all"),
        ({"condition": {"all": [HOT], "any": [HOT]}}, "condition"),
        ({"condition": DEEP}, "condition.all[0].any[0].all[0]"),
        ({"condition": {"all": [HOT] * 21}}, "condition.all"),
        ({"condition": [HOT]}, "condition"),
        ({"due_in_s": 5}, "due_in_s"),
        ({"due_in_s": float("inf")}, "due_in_s"),
        ({"scope": "planet"}, "scope"),
        ({"scope": "group"}, "scope_id"),
        ({"scope": "rack", "scope_id": "0" * 32}, "scope_id"),
        ({"scope": "fleet", "scope_id": "0" * 32}, "scope_id"),
        ({"name": ""}, "name"),
        ({"title": "x" * 201}, "title"),
        ({"enabled": "yes"}, "enabled"),
        ({"colour": "red"}, "colour"),
    ],
)  # fmt: skip
async def test_bad_rules_are_refused_naming_the_field(
    world: World, data: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidRequestError) as err:
        await _rule(world, **data)
    assert err.value.details["field"] == field
    assert err.value.message.startswith(field)


async def test_a_metric_a_board_reports_is_known(world: World) -> None:
    await _minutes(world.db, world.ids["a1"], "nvme_temp_c", [40.0])
    rule_id = await _rule(world, condition={**HOT, "metric": "nvme_temp_c"})
    assert rule_id


async def test_a_viewer_may_not_write(world: World) -> None:
    viewer = Principal(world.operator.tenant_id, Role.VIEWER, "user", "v" * 32, "vera")
    async with world.db.session() as s:
        with pytest.raises(ForbiddenError):
            await rules.create_rule(s, viewer, {"name": "x", "condition": HOT})


async def test_a_task_opens_once_per_board_and_closes(world: World) -> None:
    db, ids = world.db, world.ids
    rule_id = await _rule(world, title="clean the heatsink", due_in_s=7 * 86_400)
    await _minutes(db, ids["a1"], "cpu_temp_c", [80.0] * 70)  # hot for 70 minutes
    await _minutes(db, ids["a2"], "cpu_temp_c", [80.0] * 30)  # hot, not long enough
    await _minutes(db, ids["b1"], "cpu_temp_c", [60.0] * 70)  # cool
    assert (await _run(db))["opened"] == 1
    assert (await _run(db, NOW + 20))["opened"] == 0  # still holds: no duplicate
    (task,) = await _tasks(world, state="open")
    assert (task.device_id, task.rule_id, task.title) == (ids["a1"], rule_id, "clean the heatsink")
    assert task.due_at == pytest.approx(NOW + 7 * 86_400)
    assert task.readings == {"cpu_temp_c": 80.0}

    async with db.session() as s:
        done = await tasks.mark_done(s, world.operator, task.id, "  heatsink cleaned ")
        assert (done.state, done.note, done.closed_by) == ("done", "heatsink cleaned", "olga")
    async with db.session() as s:
        with pytest.raises(ConflictError):
            await tasks.mark_done(s, world.operator, task.id, None)
    assert (await _run(db, NOW + 30))["opened"] == 0  # the same episode: not again

    await _minutes(db, ids["a1"], "cpu_temp_c", [70.0])  # the condition ends...
    await _run(db, NOW + 30)
    await _minutes(db, ids["a1"], "cpu_temp_c", [80.0] * 70)  # ...and holds again
    assert (await _run(db, NOW + 40))["opened"] == 1
    assert [t.device_id for t in await _tasks(world, state="open")] == [ids["a1"]]
    assert len(await _tasks(world, device_id=ids["a1"])) == 2

    async with db.session() as s:
        actions = list(
            await s.scalars(
                select(AuditEntry.action).where(
                    AuditEntry.tenant_id == world.operator.tenant_id,
                    AuditEntry.action.like("maintenance_%"),
                )
            )
        )
    assert sorted(actions) == sorted(
        ["maintenance_rule.create", "maintenance_task.done", *["maintenance_task.open"] * 2]
    )


async def test_an_open_task_is_never_doubled_by_a_new_episode(world: World) -> None:
    await _rule(world)
    await _minutes(world.db, world.ids["a1"], "cpu_temp_c", [80.0] * 70)
    await _run(world.db)
    await _minutes(world.db, world.ids["a1"], "cpu_temp_c", [70.0])
    await _run(world.db)
    await _minutes(world.db, world.ids["a1"], "cpu_temp_c", [80.0] * 70)
    await _run(world.db, NOW + 10)
    assert len(await _tasks(world)) == 1


async def test_missing_data_changes_nothing(world: World) -> None:
    await _rule(world)
    await _minutes(world.db, world.ids["a1"], "cpu_temp_c", [80.0] * 70)
    await _run(world.db)
    await _run(world.db, NOW + 3600)  # the board went quiet
    await _minutes(world.db, world.ids["a1"], "cpu_temp_c", [80.0] * 70)
    await _run(world.db, NOW + 10)
    assert len(await _tasks(world)) == 1


async def test_scopes_and_disabled_rules(world: World) -> None:
    db, ids = world.db, world.ids
    for name in ("a1", "a2", "b1", "b2"):
        await _minutes(db, ids[name], "cpu_temp_c", [80.0] * 70)
    async with db.session() as s:
        g = Group(tenant_id=world.operator.tenant_id, name="edge")
        s.add(g)
        await s.flush()
        s.add(GroupMember(tenant_id=g.tenant_id, group_id=g.id, device_id=ids["b2"]))
        group_id = g.id
    await _rule(world, name="rack", scope="rack", scope_id=ids["rack_a"])
    await _rule(world, name="device", scope="device", scope_id=ids["b1"])
    await _rule(world, name="group", scope="group", scope_id=group_id)
    await _rule(world, name="site", scope="site", scope_id=ids["site"])
    await _rule(world, name="off", enabled=False)
    assert (await _run(db))["opened"] == 2 + 1 + 1 + 4
    by_rule: dict[str, set[str | None]] = {}
    for t in await _tasks(world, state="open"):
        by_rule.setdefault(t.rule_name, set()).add(world.name_of(t.device_id))
    assert by_rule == {
        "rack": {"a1", "a2"},
        "device": {"b1"},
        "group": {"b2"},
        "site": {"a1", "a2", "b1", "b2"},
    }


async def test_deleting_a_rule_closes_its_tasks(world: World) -> None:
    rule_id = await _rule(world)
    other = await _rule(world, name="other")
    await _minutes(world.db, world.ids["a1"], "cpu_temp_c", [80.0] * 70)
    await _run(world.db)
    async with world.db.session() as s:
        assert await rules.delete_rule(s, world.operator, rule_id) == 1
    closed = await _tasks(world, state="done")
    assert [(t.rule_id, t.close_reason) for t in closed] == [(rule_id, "rule_deleted")]
    assert [t.rule_id for t in await _tasks(world, state="open")] == [other]
    async with world.db.session() as s:
        assert [r.id for r in await rules.list_rules(s, world.operator.tenant_id)] == [other]
        with pytest.raises(InvalidRequestError):
            await tasks.list_tasks(s, world.operator.tenant_id, state="later")


async def test_an_update_is_validated_and_audited(world: World) -> None:
    rule_id = await _rule(world)
    async with world.db.session() as s:
        r = await rules.update_rule(s, world.operator, rule_id, {"due_in_s": 3600, "title": "t"})
        assert (r.due_in_s, r.title) == (3600.0, "t")
        with pytest.raises(InvalidRequestError) as err:
            await rules.update_rule(s, world.operator, rule_id, {"condition": {"any": 1}})
        assert err.value.details["field"] == "condition.any"


def test_the_background_job_runs_every_minute() -> None:
    (job,) = [j for j in default_jobs() if j.name == "maintenance_rules"]
    assert job.interval_s == rules_runner.RULES_INTERVAL_S == 60.0
