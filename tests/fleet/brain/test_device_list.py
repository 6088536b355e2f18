"""The dashboard's device list query (services/device_list.py) on a small paper fleet:
every filter against the same answer computed in Python, sort orders, pages, choices."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Device, Rack, Room
from wrale.fleet.brain.models.alerts import Alert
from wrale.fleet.brain.services import device_list, groups, identity, telemetry
from wrale.fleet.brain.services.device_list import DeviceQuery
from wrale.fleet.brain.services.principal import Principal
from wrale.user.simfleet import paper

DEVICES = 90


@dataclass
class Fleet:
    db: Database
    p: Principal
    fleet: paper.PaperFleet
    devices: list[Device]
    places: dict[str, groups.Place]


@pytest.fixture
async def fleet(database: Database) -> Fleet:
    async with database.session() as s:
        await identity.bootstrap(s, "admin-password-1")
    made = await paper.seed(database, devices=DEVICES, rooms=2, seed=3)
    p = await paper.admin_principal(database)
    async with database.session() as s:
        devices = list(await s.scalars(select(Device).order_by(Device.id)))
        rows = await s.execute(select(Rack.id, Rack.room_id, Room.site_id).join(Room))
        places = {r.id: groups.Place(r.room_id, r.site_id) for r in rows}
    return Fleet(database, p, made, devices, places)


async def _ids(f: Fleet, query: DeviceQuery) -> set[str]:
    async with f.db.session() as s:
        return set(await device_list.matching_ids(s, f.p.tenant_id, query, 10_000))


async def test_filters_match_the_same_rules_in_python(fleet: Fleet) -> None:
    f = fleet
    some = f.devices[7]
    cases: list[tuple[DeviceQuery, Any]] = [
        (DeviceQuery(), lambda d: True),
        (DeviceQuery(q=some.name[:3].upper()), lambda d: some.name[:3] in d.name),
        (DeviceQuery(status=("offline", "online")), lambda d: d.status in ("offline", "online")),
        (DeviceQuery(tags=("prod", "web")), lambda d: {"prod", "web"} <= set(d.tags)),
        (DeviceQuery(rack_id=some.rack_id), lambda d: d.rack_id == some.rack_id),
        (
            DeviceQuery(room_id=f.fleet.room_ids[1]),
            lambda d: f.places[d.rack_id].room_id == f.fleet.room_ids[1],
        ),
        (DeviceQuery(site_id=f.fleet.site_id), lambda d: True),
        (DeviceQuery(q="no-such-name"), lambda d: False),
    ]
    for query, keep in cases:
        expected = {d.id for d in f.devices if keep(d)}
        assert await _ids(f, query) == expected, query
        async with f.db.session() as s:
            assert await device_list.count(s, f.p.tenant_id, query) == len(expected)


async def test_a_tag_that_needs_json_escaping_is_still_found(fleet: Fleet) -> None:
    f = fleet
    odd = 'say "hi"'  # not a plain tag: found through json_each, not a substring test
    async with f.db.session() as s:
        device = await s.get(Device, f.devices[0].id)
        assert device is not None
        device.tags = [*device.tags, odd]
    assert await _ids(f, DeviceQuery(tags=(odd,))) == {f.devices[0].id}
    assert await _ids(f, DeviceQuery(tags=("hi",))) == set()


async def test_alert_filters(fleet: Fleet) -> None:
    f = fleet
    async with f.db.session() as s:
        alerts = list(await s.scalars(select(Alert).where(Alert.device_id.is_not(None))))
        alerts[0].state = "acknowledged"
        alerts[1].state = "cleared"
    open_ = {a.device_id for a in alerts if a.state in ("active", "acknowledged")}
    active = {a.device_id for a in alerts if a.state == "active"}
    assert open_
    assert active != open_
    assert await _ids(f, DeviceQuery(alert="open")) == open_
    assert await _ids(f, DeviceQuery(alert="active")) == active
    assert await _ids(f, DeviceQuery(alert="none")) == {d.id for d in f.devices} - open_


async def test_group_filter_is_static_members_selector_matches_and_subgroups(fleet: Fleet) -> None:
    f = fleet
    async with f.db.session() as s:
        parent = await groups.create_group(s, f.p, "parent")
        child = await groups.create_group(
            s, f.p, "child", kind="dynamic", selector={"tags_all": ["db"]}, parent_id=parent.id
        )
        for d in f.devices[:3]:
            await groups.add_member(s, f.p, parent.id, d.id)
    async with f.db.session() as s:
        expected = {d.id for d in await groups.devices_in_group(s, f.p.tenant_id, parent.id, True)}
        only_child = {d.id for d in await groups.devices_in_group(s, f.p.tenant_id, child.id)}
    assert await _ids(f, DeviceQuery(group_id=parent.id)) == expected
    assert await _ids(f, DeviceQuery(group_id=child.id)) == only_child
    assert len(expected) > len(only_child) > 0


async def test_selector_clause_agrees_with_groups_matches(fleet: Fleet) -> None:
    f = fleet
    rack = f.devices[0].rack_id
    assert rack is not None
    selectors: list[dict[str, Any]] = [
        {},
        {"tags_all": ["prod", "web"]},
        {"tags_any": ["db", "cache"]},
        {"tags_any": []},
        {"status": ["online"], "tags_all": ["staging"]},
        {"model": f.devices[0].model},
        {"rack_id": rack},
        {"room_id": f.places[rack].room_id, "status": ["offline", "error"]},
        {"site_id": f.fleet.site_id, "tags_any": ["camera"]},
        {"zone_id": "0" * 32},
    ]
    for selector in selectors:
        expected = {
            d.id
            for d in f.devices
            if groups.matches(selector, d, f.places.get(d.rack_id) if d.rack_id else None)
        }
        async with f.db.session() as s:
            stmt = select(Device.id).where(
                Device.tenant_id == f.p.tenant_id, device_list.selector_clause(s, selector)
            )
            assert set(await s.scalars(stmt)) == expected, selector


async def test_sorts_put_the_hottest_first_and_missing_values_last(fleet: Fleet) -> None:
    f = fleet
    async with f.db.session() as s:
        cpu = await telemetry.latest_values(
            s, f.p.tenant_id, "cpu_temp_c", [d.id for d in f.devices]
        )
        page = await device_list.page(
            s, f.p.tenant_id, DeviceQuery(sort="cpu_temp", desc=True), 0, DEVICES
        )
    values = [r.metrics.get("cpu_temp_c") for r in page.rows]
    known = [v for v in values if v is not None]
    assert known == sorted(known, reverse=True)
    assert values[: len(known)] == known  # the devices without a reading come last
    assert page.rows[0].id in f.fleet.hot_device_ids
    assert known[0] == max(v for _, v in cpu.values())
    async with f.db.session() as s:
        by_name = await device_list.page(s, f.p.tenant_id, DeviceQuery(sort="name"), 0, 10)
        by_status = await device_list.page(s, f.p.tenant_id, DeviceQuery(sort="status"), 0, 90)
        seen = await device_list.page(s, f.p.tenant_id, DeviceQuery(sort="last_seen"), 0, 90)
    assert [r.name for r in by_name.rows] == sorted(d.name for d in f.devices)[:10]
    ranks = [device_list.STATUS_RANK.index(r.status) for r in by_status.rows]
    assert ranks == sorted(ranks)
    times = [r.last_seen_at for r in seen.rows]
    stamps = [t for t in times if t is not None]
    assert stamps == sorted(stamps)
    assert times[: len(stamps)] == stamps


async def test_a_page_carries_place_readings_alerts_and_the_total(fleet: Fleet) -> None:
    f = fleet
    async with f.db.session() as s:
        page = await device_list.page(s, f.p.tenant_id, DeviceQuery(alert="open"), 0, 5)
        beyond = await device_list.page(s, f.p.tenant_id, DeviceQuery(), 10_000, 25)
        nothing = await device_list.page(s, f.p.tenant_id, DeviceQuery(q="zzz"), 50, 25)
    async with f.db.session() as s:
        with_alerts = set(
            await s.scalars(
                select(Alert.device_id).where(
                    Alert.device_id.is_not(None), Alert.state.in_(("active", "acknowledged"))
                )
            )
        )
    assert page.total == len(with_alerts) > 0
    row = page.rows[0]
    assert row.alerts >= 1
    assert row.worst in ("MAJOR", "WARNING")
    assert row.rack_name
    assert row.room_name
    assert row.slot_u
    assert {"cpu_temp_c", "power_w", "fan_pct"} <= set(row.metrics)
    assert beyond.offset == 75
    assert len(beyond.rows) == 15
    assert nothing.total == 0
    assert nothing.rows == []
    assert nothing.offset == 50


async def test_choices_and_tags(fleet: Fleet) -> None:
    f = fleet
    async with f.db.session() as s:
        choices = await device_list.choices(s, f.p.tenant_id)
        tags = await device_list.tags(s, f.p.tenant_id)
    assert len(choices.racks) == len(f.fleet.rack_ids)
    assert {c.group for c in choices.racks} == {"Room A", "Room B"}
    assert sum(choices.statuses.values()) == DEVICES
    assert tags == sorted(tags)
    assert {"paper", "prod"} <= set(tags)
