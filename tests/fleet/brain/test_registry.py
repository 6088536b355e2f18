"""Registry and enrollment services on both databases: ``num`` allocation under
concurrency, the quota, status rules for the device channel, device authentication."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select, update

from wrale.fleet.brain.bus import EventBus
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import AuditEntry, Device, DeviceCredential, Tenant
from wrale.fleet.brain.services import enrollment, registry
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.shared.errors import AuthError, ConflictError


async def _tenant(db: Database, name: str = "acme", max_devices: int = 10_000) -> Principal:
    async with db.session() as s:
        t = Tenant(name=name, max_devices=max_devices)
        s.add(t)
        await s.flush()
        return Principal(t.id, Role.ADMIN, "user", "u" * 32, f"admin-{name}")


async def _create(db: Database, p: Principal, name: str | None = None) -> Device:
    async with db.session() as s:
        return await registry.create_device(s, p, name=name)


async def test_concurrent_creation_gets_distinct_nums(database: Database) -> None:
    p = await _tenant(database)
    q = await _tenant(database, "other")
    devices = await asyncio.gather(*(_create(database, p if i % 2 else q) for i in range(12)))
    nums = sorted(d.num for d in devices)
    assert nums == list(range(1, 13))  # the very first use (seeding the counter) raced too
    async with database.session() as s:
        more = await registry.allocate_nums(s, 3)
    assert more == [13, 14, 15]  # allocated, never used: not handed out again
    async with database.session() as s:  # a device written past the counter
        s.add(Device(tenant_id=p.tenant_id, num=40, name="imported"))
    async with database.session() as s:
        assert await registry.allocate_nums(s, 2) == [41, 42]
    assert (await _create(database, p)).num == 43


async def test_quota_holds_under_concurrency(database: Database) -> None:
    p = await _tenant(database, max_devices=3)
    results = await asyncio.gather(
        *(_create(database, p) for _ in range(6)), return_exceptions=True
    )
    assert sum(isinstance(r, Device) for r in results) == 3
    assert all(isinstance(r, ConflictError) for r in results if not isinstance(r, Device))


async def test_tag_and_capability_filters_escape_nothing(database: Database) -> None:
    p = await _tenant(database)
    async with database.session() as s:
        await registry.create_device(s, p, name="a", tags=['say "hi"', "x"], capabilities=["GPIO"])
        await registry.create_device(s, p, name="b", tags=["say", "x%"])
    async with database.session() as s:

        async def names(flt: registry.DeviceFilter) -> list[str]:
            return [d.name for d in await registry.list_devices(s, p.tenant_id, flt)]

        assert await names(registry.DeviceFilter(tags=['say "hi"'])) == ["a"]
        assert await names(registry.DeviceFilter(tags=["say"])) == ["b"]
        assert await names(registry.DeviceFilter(tags=["x"])) == ["a"]
        assert await names(registry.DeviceFilter(capability=["GPIO"])) == ["a"]
        assert await names(registry.DeviceFilter(capability=["GPI"])) == []


async def test_set_status_rules_bus_and_audit(database: Database) -> None:
    p = await _tenant(database)
    bus = EventBus()
    d = await _create(database, p, "s1")
    async with bus.subscribe(p.tenant_id) as queue:
        async with database.session() as s:
            dev = await registry.get_device(s, p.tenant_id, d.id)
            assert await registry.set_status(s, dev, "online", "connected", bus)
            assert not await registry.set_status(s, dev, "online", "again", bus)  # no change
            await registry.change_status(s, p, d.id, "maintenance", "reseat", bus)
            assert not await registry.set_status(s, dev, "offline", "gone", bus)  # held
            assert dev.status == "maintenance"
            assert queue.empty()  # published only once the change is committed
        events = [queue.get_nowait() for _ in range(queue.qsize())]
    assert [(e.kind, e.data["status"]) for e in events] == [
        ("device.status", "online"),
        ("device.status", "maintenance"),
    ]
    async with database.session() as s:
        rows = (
            await s.scalars(
                select(AuditEntry)
                .where(AuditEntry.action == "device.status")
                .order_by(AuditEntry.id)
            )
        ).all()
    assert sorted((r.actor_type, r.actor_name) for r in rows) == [  # same ms: id order random
        ("system", "device-channel"),
        ("user", p.name),
    ]
    assert rows[0].tenant_id == p.tenant_id


async def test_authenticate_device(database: Database) -> None:
    p = await _tenant(database)
    async with database.session() as s:
        _, secret = await enrollment.create_token(s, p, "t", max_uses=None)
    async with database.session() as s:
        one = await enrollment.enroll(s, secret, {"name": "one"})
    async with database.session() as s:
        two = await enrollment.enroll(s, secret, {"name": "two"})
    assert one.secret != two.secret
    async with database.session() as s:
        assert (await enrollment.authenticate_device(s, one.device.id, one.secret)).name == "one"
    async with database.session() as s:
        cred = await s.scalar(
            select(DeviceCredential).where(DeviceCredential.device_id == one.device.id)
        )
        assert cred is not None
        assert cred.last_used_at is not None
        assert len(cred.secret_hash) == 64
        assert one.secret not in cred.secret_hash
    for device_id, secret_ in (
        (one.device.id, two.secret),  # another device's secret
        (one.device.id, "wds_wrong"),
        ("f" * 32, one.secret),
        ("x" * 500, one.secret),
    ):
        async with database.session() as s:
            with pytest.raises(AuthError):
                await enrollment.authenticate_device(s, device_id, secret_)
    async with database.session() as s:
        await registry.change_status(s, p, one.device.id, "decommissioned", None, None)
    async with database.session() as s:
        with pytest.raises(AuthError):
            await enrollment.authenticate_device(s, one.device.id, one.secret)
        with pytest.raises(ConflictError):
            await enrollment.rotate_credential(s, p, one.device.id)
    async with database.session() as s:
        await s.execute(update(Tenant).where(Tenant.id == p.tenant_id).values(status="suspended"))
    async with database.session() as s:
        with pytest.raises(AuthError):
            await enrollment.authenticate_device(s, two.device.id, two.secret)
    async with database.session() as s:
        with pytest.raises(AuthError, match="suspended"):
            await enrollment.enroll(s, secret, {"name": "three"})
