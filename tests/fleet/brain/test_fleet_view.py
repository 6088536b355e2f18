"""The dashboard's fleet aggregates on both databases: per-rack figures, boards with their
metrics, power against budgets and boards on battery, each leaving out stale readings and
other tenants; and the temperature histogram (pure)."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Device, Rack, Room, Site, Tenant
from wrale.fleet.brain.services import fleet_view as fv
from wrale.fleet.brain.services import telemetry

NOW = time.time()
FRESH = NOW - 60
STALE = NOW - fv.FRESH_S - 60


async def _fleet(db: Database) -> dict[str, str]:
    """Tenant acme: site S / room R / racks K1 (budget 10 W) and K2 (no budget); boards
    b1 (K1, fresh), b2 (K1, stale), b3 (K2, fresh, on battery), b4 (no rack, fresh).
    Tenant other: one board in its own rack, fresh and hot."""
    async with db.session() as s:
        acme, other = Tenant(name="acme"), Tenant(name="other")
        s.add_all([acme, other])
        await s.flush()
        site = Site(tenant_id=acme.id, name="S")
        s.add(site)
        await s.flush()
        room = Room(tenant_id=acme.id, site_id=site.id, name="R")
        s.add(room)
        await s.flush()
        k1 = Rack(tenant_id=acme.id, room_id=room.id, name="K1", units=10, power_budget_w=10.0)
        k2 = Rack(tenant_id=acme.id, room_id=room.id, name="K2", units=4)
        s.add_all([k1, k2])
        osite = Site(tenant_id=other.id, name="S")
        s.add(osite)
        await s.flush()
        oroom = Room(tenant_id=other.id, site_id=osite.id, name="R")
        s.add(oroom)
        await s.flush()
        ok = Rack(tenant_id=other.id, room_id=oroom.id, name="K1", units=10)
        s.add(ok)
        await s.flush()
        boards = {
            "b1": Device(tenant_id=acme.id, num=1, name="b1", rack_id=k1.id, slot_u=2),
            "b2": Device(tenant_id=acme.id, num=2, name="b2", rack_id=k1.id, slot_u=1),
            "b3": Device(tenant_id=acme.id, num=3, name="b3", rack_id=k2.id, slot_u=4),
            "b4": Device(tenant_id=acme.id, num=4, name="b4", status="online"),
            "o1": Device(tenant_id=other.id, num=5, name="o1", rack_id=ok.id, slot_u=1),
        }
        s.add_all(boards.values())
        await s.flush()
        readings = {
            "b1": (FRESH, {"cpu_temp_c": 71.5, "power_w": 6.0, "fan_pct": 40.0}),
            "b2": (STALE, {"cpu_temp_c": 90.0, "power_w": 9.0, "on_battery": 1.0}),
            "b3": (FRESH, {"cpu_temp_c": 48.0, "power_w": 5.0, "on_battery": 1.0}),
            "b4": (FRESH, {"cpu_temp_c": 40.0, "power_w": 3.0, "on_battery": 0.0}),
            "o1": (FRESH, {"cpu_temp_c": 95.0, "power_w": 7.0, "on_battery": 1.0}),
        }
        for name, (ts, values) in readings.items():
            points = [(m, ts, v) for m, v in values.items()]
            await telemetry.ingest_batch(s, boards[name], 1, points, now=NOW)
        ids = {n: d.id for n, d in boards.items()}
        return ids | {"acme": acme.id, "room": room.id, "k1": k1.id, "k2": k2.id}


async def test_rack_stats_and_boards_use_fresh_readings_only(database: Database) -> None:
    ids = await _fleet(database)
    since = fv.fresh_since(NOW)
    async with database.session() as s:
        stats = await fv.rack_stats(s, ids["acme"], since)
        boards = await fv.boards_in_rooms(s, ids["acme"], [ids["room"]], since)
        layout = await fv.layout(s, ids["acme"])
        total = await fv.device_count(s, ids["acme"])
    assert set(stats) == {ids["k1"], ids["k2"]}
    k1 = stats[ids["k1"]]
    assert (k1.boards, k1.max_temp_c, k1.draw_w, k1.power_reporting) == (2, 71.5, 6.0, 1)
    assert stats[ids["k2"]].max_temp_c == 48.0
    assert [(b.name, b.slot_u, b.temp_c, b.fan_pct) for b in boards[ids["k1"]]] == [
        ("b2", 1, None, None),
        ("b1", 2, 71.5, 40.0),
    ]
    assert [r.name for r in layout[0].rooms[0].racks] == ["K1", "K2"]
    assert total == 4
    # bands of 6 slots: b1 and b2 share K1's band 0; only b1's temperature is fresh
    assert k1.bands == {0: fv.BandStats(2, 71.5, 71.5)}
    assert stats[ids["k2"]].bands == {0: fv.BandStats(1, 48.0, 48.0)}
    narrow = await _stats_in_bands_of(database, ids["acme"], 1)
    assert narrow[ids["k1"]].bands == {
        0: fv.BandStats(1, None, None),
        1: fv.BandStats(1, 71.5, 71.5),
    }
    rack = await _boards_of_racks(database, ids, [ids["k2"]])
    assert list(rack) == [ids["k2"]]


async def _stats_in_bands_of(db: Database, tenant: str, band_u: int) -> dict[str, fv.RackStats]:
    async with db.session() as s:
        return await fv.rack_stats(s, tenant, fv.fresh_since(NOW), band_u)


async def _boards_of_racks(
    db: Database, ids: dict[str, str], racks: list[str]
) -> dict[str, list[fv.Board]]:
    async with db.session() as s:
        since = fv.fresh_since(NOW)
        return await fv.boards_in_rooms(s, ids["acme"], [ids["room"]], since, rack_ids=racks)


async def test_power_battery_and_temperatures_of_one_tenant(database: Database) -> None:
    ids = await _fleet(database)
    since = fv.fresh_since(NOW)
    async with database.session() as s:
        now = await fv.now_figures(s, ids["acme"], since)
        statuses = await fv.status_counts(s, ids["acme"])
    power, battery, dist = now.power, now.battery, now.temperatures
    assert (power.draw_w, power.reporting) == (14.0, 3)
    assert (power.racked_draw_w, power.budget_w, power.racks_over) == (6.0, 10.0, 0)
    (room,) = power.rooms
    assert (room.draw_w, room.budget_w, room.racks, room.racks_with_budget) == (11.0, 10.0, 2, 1)
    assert battery.count == 1
    assert [b["name"] for b in battery.boards] == ["b3"]
    assert battery.by_room == [(ids["room"], "S / R", 1)]
    assert (dist.count, dist.min, dist.median, dist.max) == (3, 40.0, 48.0, 71.5)
    assert statuses == {"unknown": 3, "online": 1}


async def test_metrics_nobody_reported_give_empty_answers(database: Database) -> None:
    async with database.session() as s:
        t = Tenant(name="empty")
        s.add(t)
        await s.flush()
        since = fv.fresh_since(NOW)
        now = await fv.now_figures(s, t.id, since)
        assert (now.temperatures.count, now.power.draw_w, now.battery.count) == (0, 0, 0)
        assert await fv.rack_stats(s, t.id, since) == {}
        assert await fv.boards_in_rooms(s, t.id, [], since) == {}
        assert await fv.recent_events(s, t.id) == []
        assert await fv.recent_alerts(s, t.id) == []


def test_power_and_battery_sums() -> None:
    racks = [
        fv.RackPlace("k1", "m1", 10.0, "Lab", "HQ"),
        fv.RackPlace("k2", "m1", None, "Lab", "HQ"),
        fv.RackPlace("k3", "m2", 5.0, "Annex", "HQ"),
    ]
    power = fv.sum_power({"k1": (12.0, 2), "k2": (3.0, 1), None: (4.0, 1)}, racks)
    assert (power.draw_w, power.reporting, power.racked_draw_w) == (19.0, 4, 12.0)
    assert (power.budget_w, power.racks_over) == (15.0, 1)
    assert [(r.room, r.draw_w, r.budget_w, r.racks_over) for r in power.rooms] == [
        ("Annex", 0.0, 5.0, 0),
        ("Lab", 15.0, 10.0, 1),
    ]
    boards = [
        ("a", "pi-a", "k1", 1.0, 80.0),
        ("b", "pi-b", "k3", 1.0, 20.0),
        ("c", "pi-c", None, 1.0, None),
        ("d", "pi-d", "k2", 1.0, 50.0),
    ]
    battery = fv.sum_battery(boards, racks, limit=2)
    assert battery.count == 4
    assert battery.by_room == [
        ("m1", "HQ / Lab", 2),
        ("m2", "HQ / Annex", 1),
        (None, "Not in a rack", 1),
    ]
    assert [b["name"] for b in battery.boards] == ["pi-b", "pi-d"]  # the lowest first


def test_histogram_buckets_and_median() -> None:
    d = fv.histogram([29.9, 30.0, 34.99, 35.0, 84.9, 85.0, 120.0])
    assert [b.label for b in d.buckets][:3] == ["< 30", "30–35", "35–40"]
    assert d.buckets[-1].label == "≥ 85"
    assert len(d.buckets) == 13
    counts = {b.label: b.count for b in d.buckets if b.count}
    assert counts == {"< 30": 1, "30–35": 2, "35–40": 1, "80–85": 1, "≥ 85": 2}
    assert (d.min, d.median, d.max) == (29.9, 35.0, 120.0)
    assert fv.histogram([1.0, 3.0]).median == 2.0
    empty = fv.histogram([])
    assert (empty.count, empty.min, empty.median, empty.max) == (0, None, None, None)
    with pytest.raises(ValueError, match="need low < high"):
        fv.histogram([], low=5, high=5)


@given(st.lists(st.floats(min_value=-40, max_value=150, allow_nan=False), max_size=200))
def test_histogram_counts_every_value_once(values: list[float]) -> None:
    d = fv.histogram(values)
    assert sum(b.count for b in d.buckets) == len(values)
    for b in d.buckets:
        inside = [
            v for v in values if (b.low is None or v >= b.low) and (b.high is None or v < b.high)
        ]
        assert len(inside) == b.count
