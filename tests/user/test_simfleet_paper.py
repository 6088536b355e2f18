"""The paper fleet (simfleet/paper.py) at a small size: placement in 42U racks, statuses,
tags, latest telemetry, the hot rack, the rack on battery and their alerts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Base, Device, Rack, Site, Tenant
from wrale.fleet.brain.models.alerts import Alert, AlertRule, AlertRuleState
from wrale.fleet.brain.models.telemetry import TelemetryLatest
from wrale.fleet.brain.services import identity, telemetry
from wrale.shared.errors import ConflictError
from wrale.user.simfleet import paper


async def _bootstrap(db: Database) -> None:
    async with db.session() as s:
        await identity.bootstrap(s, "admin-password-1")


async def test_a_small_paper_fleet(database: Database) -> None:
    await _bootstrap(database)
    f = await paper.seed(database, devices=130, rooms=2, racks_per_room=1, seed=5)
    assert len(f.device_ids) == 130
    assert len(f.rack_ids) == 4  # 130 boards need 4 racks of 40, more than 2 rooms x 1
    async with database.session() as s:
        devices = list(await s.scalars(select(Device).where(Device.tenant_id == f.tenant_id)))
        racks = {r.id: r for r in await s.scalars(select(Rack))}
        latest = await telemetry.latest_values(s, f.tenant_id, "cpu_temp_c", f.device_ids)
        rows = await s.scalar(select(func.count()).select_from(TelemetryLatest))
        alerts = list(await s.scalars(select(Alert)))
        states = await s.scalar(select(func.count()).select_from(AlertRuleState))
        rules = set(await s.scalars(select(AlertRule.name)))
    assert len(devices) == 130
    assert len({d.num for d in devices}) == 130
    slots = [(d.rack_id, d.slot_u) for d in devices]
    assert len(set(slots)) == 130
    assert all(d.slot_u is not None and 1 <= d.slot_u <= paper.BOARDS_PER_RACK for d in devices)
    assert all(r.units == 42 and r.power_budget_w for r in racks.values())
    statuses = Counter(d.status for d in devices)
    assert statuses["online"] > 100
    assert len(statuses) >= 2
    assert all("paper" in d.tags and len(d.tags) >= 3 for d in devices)
    reporting = [d for d in devices if d.status not in ("unknown", "decommissioned")]
    assert set(latest) == {d.id for d in reporting}
    assert rows == len(reporting) * len(paper.METRICS)
    hot_rack = f.rack_ids[f.hot_rack]
    hot = {d.id for d in devices if d.rack_id == hot_rack}
    assert set(f.hot_device_ids) <= hot
    assert len(f.hot_device_ids) >= 5
    assert all(v < paper.HOT_C for k, (_, v) in latest.items() if k not in hot)
    assert f.battery_rack
    assert f.battery_rack != f.hot_rack
    assert len(alerts) == f.alerts == states
    assert {a.device_id for a in alerts if a.metric == "cpu_temp_c"} == set(f.hot_device_ids)
    assert all(a.state == "active" and a.rule_name in rules for a in alerts)
    on_battery = {a.device_id for a in alerts if a.metric == "on_battery"}
    assert on_battery
    assert all(racks[d.rack_id].name == f.battery_rack for d in devices if d.id in on_battery)


async def _fleet(db: Database) -> list[tuple[str, str, tuple[str, ...], int | None]]:
    async with db.session() as s:
        rows = await s.scalars(select(Device))
        return sorted((d.name, d.status, tuple(d.tags), d.slot_u) for d in rows)


async def test_the_same_seed_gives_the_same_fleet_and_a_second_seed_is_refused(
    database: Database, tmp_path: Path
) -> None:
    await _bootstrap(database)
    f = await paper.seed(database, devices=20, seed=9)
    other = Database(f"sqlite+aiosqlite:///{tmp_path / 'other.db'}")
    try:
        async with other.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        await _bootstrap(other)
        await paper.seed(other, devices=20, seed=9)
        assert await _fleet(database) == await _fleet(other)
    finally:
        await other.dispose()
    with pytest.raises(ConflictError):
        await paper.seed(database, devices=20, seed=9)
    async with database.session() as s:
        assert await s.scalar(select(func.count()).select_from(Site)) == 1
        tenant = await s.get(Tenant, f.tenant_id)
        assert tenant is not None
        assert tenant.max_devices >= 20
    assert all(name.split("-u")[0].upper() in f.rack_ids for name, *_ in await _fleet(database))


async def test_it_needs_the_admin(database: Database) -> None:
    with pytest.raises(LookupError):
        await paper.seed(database, devices=5)
    with pytest.raises(ValueError, match="must be 1 or more"):
        await paper.seed(database, devices=0)
