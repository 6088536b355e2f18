"""Helpers of the jobs tests: a tenant with a site, a room, two racks and four online
simulated boards (a1, a2 in rack A; b1, b2 in rack B), and reads of what the brain stored."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from wrale.fleet.brain.bus import EventBus
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Device, Rack, Room, Site, Tenant
from wrale.fleet.brain.models.jobs import Job, JobPlacement, PlacementTransition
from wrale.fleet.brain.models.telemetry import TelemetryLatest
from wrale.fleet.brain.services import jobs, twin
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.fleet.brain.services.telemetry_store import metric_ids

_num = itertools.count(940_000)
SIM_LOAD = {"kind": "sim_load", "cpu_pct": 20}


@dataclass
class World:
    db: Database
    operator: Principal
    ids: dict[str, str]  # board name (and rack_a, rack_b, room, site) -> id
    bus: EventBus = field(default_factory=EventBus)

    def name_of(self, device_id: str | None) -> str | None:
        return next((n for n, i in self.ids.items() if i == device_id), None)

    async def create(self, **body: Any) -> str:
        spec = {"name": "render", "workload": SIM_LOAD, "replicas": 1, **body}
        async with self.db.session() as s:
            job = await jobs.create_job(s, self.operator, spec, bus=self.bus)
            return job.id

    async def placements(self, job_id: str) -> list[JobPlacement]:
        async with self.db.session() as s:
            rows = await s.scalars(
                select(JobPlacement)
                .where(JobPlacement.job_id == job_id)
                .order_by(JobPlacement.replica)
            )
            return list(rows)

    async def where(self, job_id: str) -> list[tuple[str | None, str]]:
        """(board name, state) of each replica."""
        return [(self.name_of(p.device_id), p.state) for p in await self.placements(job_id)]

    async def job(self, job_id: str) -> Job:
        async with self.db.session() as s:
            job = await s.get(Job, job_id)
            assert job is not None
            return job

    async def transitions(self, placement_id: str) -> list[tuple[str | None, str, str]]:
        async with self.db.session() as s:
            rows = await s.scalars(
                select(PlacementTransition)
                .where(PlacementTransition.placement_id == placement_id)
                .order_by(PlacementTransition.at, PlacementTransition.id)
            )
            return [(t.from_state, t.to_state, t.actor) for t in rows]

    async def desired(self, board: str) -> tuple[int, dict[str, Any]]:
        async with self.db.session() as s:
            device = await s.get(Device, self.ids[board])
            assert device is not None
            return await twin.desired_for(s, device)

    async def device(self, board: str) -> Device:
        async with self.db.session() as s:
            device = await s.get(Device, self.ids[board])
            assert device is not None
            return device

    async def on_battery(self, board: str, value: float = 1.0, at: float | None = None) -> None:
        async with self.db.session() as s:
            device = await s.get(Device, self.ids[board])
            assert device is not None
            mid = (await metric_ids(s, ["on_battery"]))["on_battery"]
            s.add(
                TelemetryLatest(
                    device_num=device.num,
                    metric_id=mid,
                    ts=time.time() if at is None else at,
                    value=value,
                )
            )

    async def report(self, board: str, version: int, doc: dict[str, Any]) -> None:
        async with self.db.session() as s:
            device = await s.get(Device, self.ids[board])
            assert device is not None
            await twin.record_reported(s, device, version, doc, 0, {}, time.time(), self.bus)


async def make_world(db: Database, *, sim: tuple[str, ...] = ("a1", "a2", "b1", "b2")) -> World:
    async with db.session() as s:
        t = Tenant(name=f"t-{next(_num)}")
        s.add(t)
        await s.flush()
        site = Site(tenant_id=t.id, name="dc")
        s.add(site)
        await s.flush()
        room = Room(tenant_id=t.id, site_id=site.id, name="hall")
        s.add(room)
        await s.flush()
        ids = {"site": site.id, "room": room.id}
        for rack in ("a", "b"):
            r = Rack(tenant_id=t.id, room_id=room.id, name=f"rack-{rack}", power_budget_w=40.0)
            s.add(r)
            await s.flush()
            ids[f"rack_{rack}"] = r.id
        for slot, name in enumerate(("a1", "a2", "b1", "b2")):
            d = Device(
                tenant_id=t.id,
                num=next(_num),
                name=name,
                tags=["gpu"] if name == "b2" else [],
                status="online",
                last_seen_at=time.time(),
                capabilities=["SIM"] if name in sim else [],
                rack_id=ids[f"rack_{name[0]}"],
                slot_u=slot + 1,
            )
            s.add(d)
            await s.flush()
            ids[name] = d.id
    return World(db, Principal(t.id, Role.OPERATOR, "user", "u" * 32, "olga"), ids)
