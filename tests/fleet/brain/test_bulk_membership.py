"""Bulk tag and group changes as set statements: the JSON tag lists changed in SQL on
SQLite and PostgreSQL (added once, removed, a full list left alone), group members
inserted and deleted per chunk, one audit entry with the count, unknown ids reported or
refused, and the twins recomposed in the background only when a policy depends on it."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import select

from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import AuditEntry, Device, Tenant
from wrale.fleet.brain.models.groups import GroupMember
from wrale.fleet.brain.models.twin import DeviceTwin
from wrale.fleet.brain.services import bulk_membership, groups, policies, twin_recompose
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.shared.errors import ConflictError, NotFoundError

_num = itertools.count(950_000)
UNKNOWN = "0" * 32


async def world(db: Database, boards: int = 6) -> tuple[Principal, list[str]]:
    async with db.session() as s:
        t = Tenant(name=f"t-{next(_num)}")
        s.add(t)
        await s.flush()
        ids = []
        for i in range(boards):
            tags = [f"t{k}" for k in range(bulk_membership.MAX_TAGS)] if i == 0 else ["old"]
            d = Device(tenant_id=t.id, num=next(_num), name=f"b{i}", tags=tags, status="online")
            s.add(d)
            await s.flush()
            ids.append(d.id)
    return Principal(t.id, Role.OPERATOR, "user", "u1", "olga"), ids


async def tags_of(db: Database, ids: list[str]) -> list[list[str]]:
    async with db.session() as s:
        rows = dict((await s.execute(select(Device.id, Device.tags))).all())
    return [list(rows[i]) for i in ids]


async def test_tags_change_in_sql_with_one_audit_entry(database: Database) -> None:
    op, ids = await world(database)
    async with database.session() as s:
        done = await bulk_membership.change_tag(s, op, [*ids, UNKNOWN], "cam", add=True)
    assert (done.changed, done.missing, done.recompose) == (5, [UNKNOWN], None)
    assert done.skipped == [("b0", f"has {bulk_membership.MAX_TAGS} tags already")]
    after = await tags_of(database, ids)
    assert after[1:] == [["old", "cam"]] * 5
    assert len(after[0]) == bulk_membership.MAX_TAGS
    assert "cam" not in after[0]
    async with database.session() as s:  # again: nothing changes, nothing is audited
        again = await bulk_membership.change_tag(s, op, ids[1:3], "cam", add=True)
    assert (again.changed, [why for _, why in again.skipped]) == (0, ["has it already"] * 2)
    async with database.session() as s:
        gone = await bulk_membership.change_tag(s, op, ids[1:4], "cam", add=False)
    assert gone.changed == 3
    assert await tags_of(database, ids[1:]) == [["old"]] * 3 + [["old", "cam"]] * 2
    async with database.session() as s:
        with pytest.raises(NotFoundError):  # the API's way: all or nothing
            await bulk_membership.change_tag(
                s, op, [ids[1], UNKNOWN], "x", missing_ok=False, add=True
            )
        entries = list(
            await s.scalars(
                select(AuditEntry)
                .where(AuditEntry.tenant_id == op.tenant_id)
                .order_by(AuditEntry.id)
            )
        )
    assert [(e.action, (e.details or {})["count"]) for e in entries] == [
        ("device.bulk_tag_add", 5),
        ("device.bulk_tag_remove", 3),
    ]


async def test_group_members_and_recompose_when_a_policy_depends(database: Database) -> None:
    op, ids = await world(database)
    admin = Principal(op.tenant_id, Role.ADMIN, "user", "u2", "alice")
    async with database.session() as s:
        parent = await groups.create_group(s, op, "site")
        lab = await groups.create_group(s, op, "lab", parent_id=parent.id)
        cams = await groups.create_group(
            s, op, "cams", kind="dynamic", selector={"tags_any": ["cam"]}
        )
        await groups.add_member(s, op, lab.id, ids[1])
    async with database.session() as s:
        done = await bulk_membership.change_group(s, op, lab.id, ids, add=True)
        assert (done.changed, done.skipped, done.recompose) == (
            5,
            [("b1", "is a member already")],
            None,
        )
        with pytest.raises(ConflictError):
            await bulk_membership.change_group(s, op, cams.id, ids, add=True)
    async with database.session() as s:  # a policy on the parent: moves now recompose
        await policies.create_policy(s, admin, "group", parent.id, "thermal", {"hysteresis_c": 2})
        await policies.create_policy(s, admin, "group", cams.id, "security", {"level": "high"})
    await twin_recompose.recompose_pending(database, None, budget_s=None)
    async with database.session() as s:
        out = await bulk_membership.change_group(s, op, lab.id, ids[:3], add=False)
        assert out.recompose is not None
        assert (out.changed, out.recompose["total"], out.recompose["scope_type"]) == (
            3,
            3,
            "devices",
        )
        tagged = await bulk_membership.change_tag(s, op, ids[4:], "cam", add=True)
        assert tagged.recompose is not None
        assert tagged.recompose["total"] == 2
        untouched = await bulk_membership.change_tag(s, op, ids[4:], "other", add=True)
        assert untouched.recompose is None  # no group selects "other"
        members = set(
            await s.scalars(select(GroupMember.device_id).where(GroupMember.group_id == lab.id))
        )
    assert members == set(ids[3:])
    assert await twin_recompose.recompose_pending(database, None, budget_s=None) == 5
    async with database.session() as s:  # the stored twins (a read would recompose)
        stored = {t.device_id: t.desired for t in await s.scalars(select(DeviceTwin))}
    rows = [(stored[i]["thermal"]["hysteresis_c"], stored[i]["security"]["level"]) for i in ids]
    assert rows == [
        (5.0, "medium"),
        (5.0, "medium"),
        (5.0, "medium"),
        (2, "medium"),
        (2, "high"),
        (2, "high"),
    ]
