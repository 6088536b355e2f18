"""The fleet's physical view: sites → rooms → racks (``layout``), per-rack and per-band
figures for heatmaps (``rack_stats``: one GROUP BY) and the boards of rooms with their fresh
metrics (``boards_in_rooms``: one pivoting query). Nothing here writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import Device, Rack, Room, Site
from wrale.fleet.brain.services.fleet_latest import (
    FAN,
    POWER,
    TEMP,
    _dialect,
    _float,
    _metric_ids,
    _rows,
    latest_pivot,
)


@dataclass(frozen=True, slots=True)
class RackInfo:
    id: str
    name: str
    room_id: str
    units: int
    budget_w: float | None


@dataclass(frozen=True, slots=True)
class RoomInfo:
    id: str
    name: str
    site_id: str
    racks: list[RackInfo]


@dataclass(frozen=True, slots=True)
class SiteInfo:
    id: str
    name: str
    rooms: list[RoomInfo]


async def layout(session: AsyncSession, tenant_id: str) -> list[SiteInfo]:
    """Sites → rooms → racks by name (no devices: those come with their metrics)."""
    t = tenant_id
    sites = await _rows(session, select(Site.id, Site.name).where(Site.tenant_id == t))
    rooms = await _rows(
        session, select(Room.id, Room.name, Room.site_id).where(Room.tenant_id == t)
    )
    racks = await _rows(
        session,
        select(Rack.id, Rack.name, Rack.room_id, Rack.units, Rack.power_budget_w).where(
            Rack.tenant_id == t
        ),
    )
    racks_of: dict[str, list[RackInfo]] = {}
    for r in sorted(racks, key=lambda r: r.name):
        racks_of.setdefault(r.room_id, []).append(
            RackInfo(r.id, r.name, r.room_id, int(r.units), r.power_budget_w)
        )
    rooms_of: dict[str, list[RoomInfo]] = {}
    for m in sorted(rooms, key=lambda m: m.name):
        rooms_of.setdefault(m.site_id, []).append(
            RoomInfo(m.id, m.name, m.site_id, racks_of.get(m.id, []))
        )
    return [
        SiteInfo(s.id, s.name, rooms_of.get(s.id, [])) for s in sorted(sites, key=lambda s: s.name)
    ]


@dataclass(frozen=True, slots=True)
class BandStats:
    """The boards of one band of ``band_u`` slots of a rack, with their fresh temperatures."""

    boards: int
    max_temp_c: float | None
    mean_temp_c: float | None


@dataclass(slots=True)
class RackStats:
    boards: int = 0
    max_temp_c: float | None = None
    mean_temp_c: float | None = None
    draw_w: float = 0.0
    power_reporting: int = 0
    bands: dict[int, BandStats] = field(default_factory=dict)  # band index (0: U1…) → stats


async def rack_stats(
    session: AsyncSession, tenant_id: str, since: float, band_u: int = 6
) -> dict[str, RackStats]:
    """rack id → boards, hottest and mean fresh ``cpu_temp_c`` and fresh draw, overall and
    per band of ``band_u`` slots (for heatmaps): one GROUP BY over every racked board."""
    ids = await _metric_ids(session, TEMP, POWER)
    cols = (Device.id, Device.rack_id, Device.slot_u)
    pivot = latest_pivot(
        _dialect(session), since, cols, [(ids[TEMP], "value"), (ids[POWER], "value")]
    )
    each = pivot.where(Device.tenant_id == tenant_id, Device.rack_id.is_not(None)).subquery()
    rack, slot, temp, power = (each.c[i] for i in (1, 2, 3, 4))
    band = (slot - 1) // band_u
    stmt = select(
        rack,
        band,
        func.count(),
        func.max(temp),
        func.sum(temp),
        func.count(temp),
        func.sum(power),
        func.count(power),
    ).group_by(rack, band)
    out: dict[str, RackStats] = {}
    temp_sums: dict[str, tuple[float, int]] = {}
    for rid, b, n, tmax, tsum, tn, psum, pn in await _rows(session, stmt):
        st = out.setdefault(str(rid), RackStats())
        hottest = _float(tmax)
        st.boards += int(n)
        st.draw_w += float(psum or 0.0)
        st.power_reporting += int(pn)
        if hottest is not None and (st.max_temp_c is None or hottest > st.max_temp_c):
            st.max_temp_c = hottest
        s, c = temp_sums.get(str(rid), (0.0, 0))
        temp_sums[str(rid)] = (s + float(tsum or 0.0), c + int(tn))
        mean = float(tsum) / int(tn) if tn else None
        st.bands[int(b or 0)] = BandStats(int(n), hottest, mean)
    for rid, st in out.items():
        s, c = temp_sums[rid]
        st.mean_temp_c = s / c if c else None
        st.draw_w = round(st.draw_w, 3)
    return out


@dataclass(frozen=True, slots=True)
class Board:
    id: str
    name: str
    status: str
    rack_id: str
    slot_u: int
    temp_c: float | None
    power_w: float | None
    fan_pct: float | None


async def boards_in_rooms(
    session: AsyncSession,
    tenant_id: str,
    room_ids: Sequence[str],
    since: float,
    rack_ids: Sequence[str] | None = None,
) -> dict[str, list[Board]]:
    """rack id → its boards (by slot) with fresh temperature, power and fan: one query for
    the boards of the rooms (only of ``rack_ids`` when given), metrics pivoted by joins."""
    if not room_ids:
        return {}
    ids = await _metric_ids(session, TEMP, POWER, FAN)
    racks = select(Rack.id).where(Rack.tenant_id == tenant_id, Rack.room_id.in_(list(room_ids)))
    if rack_ids is not None:
        racks = racks.where(Rack.id.in_(list(rack_ids)))
    cols = (Device.id, Device.name, Device.status, Device.rack_id, Device.slot_u)
    metrics = [(ids[TEMP], "value"), (ids[POWER], "value"), (ids[FAN], "value")]
    stmt = latest_pivot(_dialect(session), since, cols, metrics)
    stmt = stmt.where(Device.tenant_id == tenant_id, Device.rack_id.in_(racks))
    out: dict[str, list[Board]] = {}
    for did, name, status, rack_id, slot, temp, power, fan in await _rows(session, stmt):
        if slot is None:
            continue
        board = Board(
            did, name, status, rack_id, int(slot), _float(temp), _float(power), _float(fan)
        )
        out.setdefault(rack_id, []).append(board)
    for boards in out.values():
        boards.sort(key=lambda b: b.slot_u)
    return out
