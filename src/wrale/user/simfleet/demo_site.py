"""The demo's side of the central server: its admin, its site (rooms, racks with power
budgets), an enrollment token for the simulated boards, and their rack slots.

Runs against the central database with the brain's services, as the admin, so re-running
the demo on the same data directory finds what it made the first time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select

from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Device, Rack, Room, Site, Tenant, User
from wrale.fleet.brain.models.alerts import AlertRule
from wrale.fleet.brain.services import alerts, enrollment, identity
from wrale.fleet.brain.services import topology as topo
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.user.simfleet.plan import BoardSpec, Layout, racks_by_room

SITE_NAME = "Demo site"
BOARD_PEAK_W = 7.0  # a Pi 5 under full load (DESIGN.md §5)
TOKEN_TTL_S = 3600.0
# Alert rules over telemetry the demo adds (board events raise their own alerts: fan
# failure, tamper, low battery…): name, expression, severity.
DEMO_RULES: tuple[tuple[str, str, str], ...] = (
    ("Demo: CPU hot", "cpu_temp_c > 75 for 30s", "MAJOR"),
    ("Demo: ambient too warm", "ambient_temp_c > 40 for 30s", "WARNING"),
    ("Demo: running on battery", "on_battery > 0.5 for 10s", "WARNING"),
    ("Demo: rack over its power budget", "rack power_w > budget for 1m", "MAJOR"),
)


@dataclass(frozen=True, slots=True)
class DemoSite:
    site_id: str
    rack_ids: dict[str, str]  # rack label ("A1") -> rack id


async def bootstrap_admin(db: Database, password: str) -> bool:
    """Create the first admin with ``password`` as the central server's first start does;
    False (nothing changed) when the database has users already."""
    async with db.session() as session:
        if await session.scalar(select(User.id).limit(1)) is not None:
            return False
        await identity.bootstrap(session, password)
    return True


async def _admin(db: Database) -> Principal:
    async with db.session() as session:
        row = (
            await session.execute(
                select(User, Tenant)
                .join(Tenant, Tenant.id == User.tenant_id)
                .where(User.username == "admin", Tenant.name == identity.DEFAULT_TENANT)
            )
        ).first()
    if row is None:
        raise LookupError("the demo needs the 'admin' user of the default organisation")
    user, tenant = row
    return Principal(tenant.id, Role.ADMIN, "user", user.id, "admin (wrale demo)")


async def prepare_site(db: Database, specs: Sequence[BoardSpec], layout: Layout) -> DemoSite:
    """Find or create the site, its rooms and racks (with power budgets)."""
    p = await _admin(db)
    async with db.session() as s:
        site = await s.scalar(
            select(Site).where(Site.tenant_id == p.tenant_id, Site.name == SITE_NAME)
        )
        if site is None:
            site = await topo.create_site(s, p, SITE_NAME, "the simulated fleet of `wrale demo`")
        rack_ids: dict[str, str] = {}
        for room_label, racks in racks_by_room(list(specs)).items():
            room_name = f"Room {room_label}"
            room = await s.scalar(
                select(Room).where(Room.site_id == site.id, Room.name == room_name)
            )
            if room is None:
                room = await topo.create_room(s, p, site.id, room_name)
            for label in racks:
                rack_name = f"Rack {label}"
                rack = await s.scalar(
                    select(Rack).where(Rack.room_id == room.id, Rack.name == rack_name)
                )
                if rack is None:
                    rack = await topo.create_rack(
                        s,
                        p,
                        room.id,
                        rack_name,
                        units=layout.rack_units,
                        power_budget_w=layout.boards_per_rack * BOARD_PEAK_W * 0.8,
                        cooling_zone=f"room-{room_label.lower()}",
                    )
                rack_ids[label] = rack.id
        return DemoSite(site.id, rack_ids)


async def ensure_rules(db: Database) -> int:
    """Add the demo's alert rules that are missing (by name); returns how many were added."""
    p = await _admin(db)
    added = 0
    async with db.session() as s:
        have = set(
            await s.scalars(select(AlertRule.name).where(AlertRule.tenant_id == p.tenant_id))
        )
        for name, expression, severity in DEMO_RULES:
            if name not in have:
                fields = {"name": name, "expression": expression, "severity": severity}
                await alerts.create_rule(s, p, fields)
                added += 1
    return added


async def enrollment_token(db: Database, uses: int) -> str:
    """A fresh multi-use enrollment token for ``uses`` boards, valid for an hour."""
    p = await _admin(db)
    async with db.session() as s:
        _, secret = await enrollment.create_token(
            s,
            p,
            "wrale demo fleet",
            max_uses=max(1, uses),
            expires_in_s=TOKEN_TTL_S,
            target_tags=["demo"],
        )
    return secret


async def place_boards(
    db: Database, site: DemoSite, placements: Sequence[tuple[str, BoardSpec]]
) -> int:
    """Put each enrolled board (device id, spec) in its rack slot; returns how many moved.

    Boards already in their slot stay; a slot taken by another device is left to it."""
    p = await _admin(db)
    moved = 0
    async with db.session() as s:
        for device_id, spec in placements:
            device = await s.get(Device, device_id)
            rack_id = site.rack_ids.get(spec.rack)
            if device is None or rack_id is None:
                continue
            if device.rack_id == rack_id and device.slot_u == spec.slot_u:
                continue
            taken = await s.scalar(
                select(Device.id).where(Device.rack_id == rack_id, Device.slot_u == spec.slot_u)
            )
            if taken is not None:
                continue
            await topo.place_device(s, p, device_id, {"rack_id": rack_id, "slot_u": spec.slot_u})
            moved += 1
    return moved
