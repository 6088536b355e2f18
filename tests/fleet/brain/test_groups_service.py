"""The groups service functions other areas call (ancestors, a device's groups, resolved
members, add_member by the system) on SQLite and PostgreSQL, and the pure selector match."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import AuditEntry, Device, Tenant
from wrale.fleet.brain.services import groups, topology
from wrale.fleet.brain.services.groups import Place, matches
from wrale.fleet.brain.services.principal import ForbiddenError, Principal, Role
from wrale.shared.errors import ConflictError, NotFoundError

_num = itertools.count(700_000)


async def world(db: Database) -> tuple[Principal, dict[str, Any]]:
    """A tenant with a site/room/rack, three devices and a small group tree."""
    async with db.session() as s:
        t = Tenant(name=f"t-{next(_num)}")
        s.add(t)
        await s.flush()
        p = Principal(t.id, Role.OPERATOR, "user", "u1", "op")
        site = await topology.create_site(s, p, "site")
        room = await topology.create_room(s, p, site.id, "room")
        rack = await topology.create_rack(s, p, room.id, "rack", units=10)
        devs = {}
        for name, tags in (("a", ["cam"]), ("b", ["cam", "lab"]), ("c", [])):
            d = Device(tenant_id=t.id, num=next(_num), name=name, tags=tags, status="online")
            s.add(d)
            await s.flush()
            devs[name] = d.id
        await topology.place_device(s, p, devs["c"], {"rack_id": rack.id, "slot_u": 2})
        root = await groups.create_group(s, p, "root")
        mid = await groups.create_group(s, p, "mid", parent_id=root.id)
        cams = await groups.create_group(
            s, p, "cams", kind="dynamic", selector={"tags_all": ["cam"]}, parent_id=mid.id
        )
        racked = await groups.create_group(
            s, p, "in-site", kind="dynamic", selector={"site_id": site.id}
        )
        ids = {"root": root.id, "mid": mid.id, "cams": cams.id, "in-site": racked.id, **devs}
    return p, ids


async def test_ancestors_and_groups_of_device(database: Database) -> None:
    p, ids = await world(database)
    async with database.session() as s:
        assert [g.name for g in await groups.group_ancestors(s, ids["cams"])] == ["mid", "root"]
        assert await groups.group_ancestors(s, ids["root"]) == []
        assert await groups.add_member(s, p, ids["mid"], ids["a"]) is True
        assert await groups.add_member(s, p, ids["mid"], ids["a"]) is False
        dev_a = await s.get(Device, ids["a"])
        dev_c = await s.get(Device, ids["c"])
        assert dev_a is not None
        assert dev_c is not None
        assert sorted(g.name for g in await groups.groups_of_device(s, dev_a)) == ["cams", "mid"]
        assert [g.name for g in await groups.groups_of_device(s, dev_c)] == ["in-site"]


async def test_devices_in_group(database: Database) -> None:
    p, ids = await world(database)
    async with database.session() as s:
        await groups.add_member(s, p, ids["root"], ids["c"])
        direct = await groups.devices_in_group(s, p.tenant_id, ids["root"])
        assert [d.name for d in direct] == ["c"]
        every = await groups.devices_in_group(s, p.tenant_id, ids["root"], recursive=True)
        assert sorted(d.name for d in every) == ["a", "b", "c"]
        assert [d.id for d in every] == sorted(d.id for d in every)
        with pytest.raises(NotFoundError):
            await groups.devices_in_group(s, "0" * 32, ids["root"])


async def test_add_member_by_the_system_and_refusals(database: Database) -> None:
    p, ids = await world(database)
    async with database.session() as s:
        assert await groups.add_member(s, None, ids["root"], ids["b"]) is True
        with pytest.raises(ConflictError):
            await groups.add_member(s, None, ids["cams"], ids["b"])
        viewer = Principal(p.tenant_id, Role.VIEWER, "user", "u2", "v")
        with pytest.raises(ForbiddenError):
            await groups.add_member(s, viewer, ids["root"], ids["a"])
        stranger = Principal("f" * 32, Role.ADMIN, "user", "u3", "x")
        with pytest.raises(NotFoundError):
            await groups.add_member(s, stranger, ids["root"], ids["a"])
    async with database.session() as s:
        from sqlalchemy import select

        entry = await s.scalar(
            select(AuditEntry).where(
                AuditEntry.action == "group.member_add", AuditEntry.actor_type == "system"
            )
        )
        assert entry is not None
        assert entry.tenant_id == p.tenant_id
        assert entry.after == {"device_id": ids["b"], "device_name": "b"}


def _device(tags: list[str], status: str, model: str | None) -> Device:
    return Device(tenant_id="t", num=1, name="d", tags=tags, status=status, model=model)


TAGS = st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=4)


@given(tags=TAGS, want=TAGS, status=st.sampled_from(["online", "offline"]))
def test_selector_clauses_are_anded(tags: list[str], want: list[str], status: str) -> None:
    d = _device(tags, status, "pi5")
    assert matches({}, d, None)
    assert matches({"tags_all": want}, d, None) == (set(want) <= set(tags))
    assert matches({"tags_any": want}, d, None) == (not want or bool(set(want) & set(tags)))
    both = {"tags_all": want, "status": ["online"]}
    assert matches(both, d, None) == (set(want) <= set(tags) and status == "online")


def test_location_clauses_need_a_place() -> None:
    d = _device([], "online", None)
    d.rack_id = "r1"
    assert matches({"room_id": "m1"}, d, Place("m1", "s1"))
    assert matches({"site_id": "s1", "rack_id": "r1"}, d, Place("m1", "s1"))
    assert not matches({"site_id": "s2"}, d, Place("m1", "s1"))
    assert not matches({"site_id": "s1"}, d, None)
    assert not matches({"model": "pi5"}, d, None)
