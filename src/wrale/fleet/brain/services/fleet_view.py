"""Read-only aggregates of the whole fleet for the dashboard's overview and physical view:
devices by status, open alerts by severity, power against rack budgets, the temperature
distribution, boards on battery, recent events, and the latest metrics of racked boards.

Each answer is one or two SQL queries whatever the fleet's size: GROUP BY in the database,
the latest metrics of every device in one pivoting query (``latest_pivot``), Core execution
(no ORM objects) for the big reads. Nothing here writes. "Now" figures ignore readings older than
``FRESH_S``: a silent board draws no power that we know of.
"""

from __future__ import annotations

import bisect
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Executable, Select, and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from wrale.fleet.brain.models import Device, Rack, Room, Site
from wrale.fleet.brain.models.alerts import Alert
from wrale.fleet.brain.models.channel import DeviceEvent
from wrale.fleet.brain.models.telemetry import TelemetryLatest
from wrale.fleet.brain.services.alerts import OPEN_STATES
from wrale.fleet.brain.services.telemetry_store import lookup_metric_ids

FRESH_S = 600.0  # a latest value older than this is not "now"
NO_METRIC = -1  # the id of a metric nobody has reported yet: matches no row
TEMP, POWER, FAN, BATTERY, ON_BATTERY = (
    "cpu_temp_c",
    "power_w",
    "fan_pct",
    "battery_pct",
    "on_battery",
)


def fresh_since(now: float | None = None) -> float:
    return (time.time() if now is None else now) - FRESH_S


async def _metric_ids(session: AsyncSession, *names: str) -> dict[str, int]:
    found = await lookup_metric_ids(session, names)
    return {n: found.get(n, NO_METRIC) for n in names}


def latest_pivot(
    dialect: str, since: float, device_cols: Sequence[Any], metrics: Sequence[tuple[int, str]]
) -> Select[Any]:
    """``device_cols`` of every device with, per ``(metric id, "value" | "ts")``, its fresh
    latest reading (None when it has none): one row per device, to filter with ``where``.

    SQLite walks the devices and reads each metric by primary key (a join per metric);
    PostgreSQL would scan ``telemetry_latest`` once per join there, so it reads the metrics
    in one join and pivots them with ``max(CASE …)`` grouped by device."""
    if dialect == "postgresql":
        lat = aliased(TelemetryLatest, name="l")
        wanted = sorted({mid for mid, _ in metrics})
        on = and_(lat.device_num == Device.num, lat.metric_id.in_(wanted), lat.ts >= since)
        picks = [func.max(case((lat.metric_id == mid, getattr(lat, col)))) for mid, col in metrics]
        return select(*device_cols, *picks).outerjoin(lat, on).group_by(*device_cols)
    stmt = select(*device_cols)
    joined: dict[int, Any] = {}
    for mid, _ in metrics:
        if mid not in joined:
            lat = joined[mid] = aliased(TelemetryLatest, name=f"m{len(joined)}")
            on = and_(lat.device_num == Device.num, lat.metric_id == mid, lat.ts >= since)
            stmt = stmt.outerjoin(lat, on)
    return stmt.add_columns(*(getattr(joined[mid], col) for mid, col in metrics))


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


async def _rows(session: AsyncSession, stmt: Executable) -> list[Any]:
    """Rows of a Core execution: no ORM bookkeeping for thousands of plain rows."""
    conn = await session.connection()
    return list((await conn.execute(stmt)).all())


def _float(v: Any) -> float | None:
    return None if v is None else float(v)


# ----------------------------------------------------------------------------- devices, alerts


async def status_counts(session: AsyncSession, tenant_id: str) -> dict[str, int]:
    """status → number of the tenant's devices (only statuses that occur)."""
    stmt = (
        select(Device.status, func.count())
        .where(Device.tenant_id == tenant_id)
        .group_by(Device.status)
    )
    return {str(s): int(n) for s, n in await _rows(session, stmt)}


@dataclass(frozen=True, slots=True)
class SeverityCount:
    severity: str
    active: int  # not yet acknowledged
    acknowledged: int

    @property
    def total(self) -> int:
        return self.active + self.acknowledged


async def alert_counts(
    session: AsyncSession, tenant_id: str, severities: Sequence[str]
) -> list[SeverityCount]:
    """Open alerts per severity, in the order of ``severities`` (others follow)."""
    stmt = (
        select(Alert.severity, Alert.state, func.count())
        .where(Alert.tenant_id == tenant_id, Alert.state.in_(OPEN_STATES))
        .group_by(Alert.severity, Alert.state)
    )
    counts: dict[str, dict[str, int]] = {s: {} for s in severities}
    for sev, state, n in await _rows(session, stmt):
        counts.setdefault(str(sev), {})[str(state)] = int(n)
    return [
        SeverityCount(sev, c.get("active", 0), c.get("acknowledged", 0))
        for sev, c in counts.items()
    ]


async def recent_alerts(session: AsyncSession, tenant_id: str, limit: int = 8) -> list[Any]:
    """The newest open alerts, each row ``(Alert, device name | None, rack name | None)``."""
    stmt = (
        select(Alert, Device.name, Rack.name)
        .outerjoin(Device, Device.id == Alert.device_id)
        .outerjoin(Rack, Rack.id == Alert.rack_id)
        .where(Alert.tenant_id == tenant_id, Alert.state.in_(OPEN_STATES))
        .order_by(Alert.raised_at.desc(), Alert.id.desc())
        .limit(limit)
    )
    return list((await session.execute(stmt)).all())


async def recent_events(session: AsyncSession, tenant_id: str, limit: int = 10) -> list[Any]:
    """The newest device events received, each row ``(DeviceEvent, device name)``.

    Ids sort by the time they were stored, so the primary key read backwards gives the
    newest first; the tenant is compared as an expression (``|| ''``) so the planner walks
    that key instead of sorting every event of the tenant through its tenant index."""
    stmt = (
        select(DeviceEvent, Device.name)
        .join(Device, Device.id == DeviceEvent.device_id)
        .where((DeviceEvent.tenant_id + "") == tenant_id)
        .order_by(DeviceEvent.id.desc())
        .limit(limit)
    )
    return list((await session.execute(stmt)).all())


# ----------------------------------------------------------------------------- now figures
# Power, temperatures and batteries come from one walk over the tenant's devices with their
# fresh readings (four primary-key joins), then are summed up here.

HIST_LOW_C, HIST_HIGH_C, HIST_STEP_C = 30.0, 85.0, 5.0


@dataclass(frozen=True, slots=True)
class Bucket:
    low: float | None  # None: open below
    high: float | None  # None: open above
    count: int

    @property
    def label(self) -> str:
        if self.low is None:
            return f"< {self.high:g}"
        if self.high is None:
            return f"≥ {self.low:g}"
        return f"{self.low:g}–{self.high:g}"


@dataclass(frozen=True, slots=True)
class Distribution:
    buckets: list[Bucket]
    count: int
    min: float | None
    median: float | None
    max: float | None


def histogram(
    values: Sequence[float],
    low: float = HIST_LOW_C,
    high: float = HIST_HIGH_C,
    step: float = HIST_STEP_C,
) -> Distribution:
    """Fixed buckets ``< low``, ``[low, low+step)`` … ``≥ high`` (stable between refreshes),
    with the minimum, median and maximum of ``values``."""
    if step <= 0 or high <= low:
        raise ValueError("histogram: need low < high and a positive step")
    edges = [low + i * step for i in range(round((high - low) / step) + 1)]
    ordered = sorted(values)  # then every count is a difference of two bisections
    n = len(ordered)
    at = [bisect.bisect_left(ordered, e) for e in edges]
    buckets = [Bucket(None, edges[0], at[0])]
    buckets += [
        Bucket(a, b, at[i + 1] - at[i]) for i, (a, b) in enumerate(itertools.pairwise(edges))
    ]
    buckets.append(Bucket(edges[-1], None, n - at[-1]))
    median = None
    if n:
        mid = n // 2
        median = ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    return Distribution(
        buckets=buckets,
        count=n,
        min=ordered[0] if n else None,
        median=median,
        max=ordered[-1] if n else None,
    )


@dataclass(frozen=True, slots=True)
class RoomPower:
    room_id: str
    room: str
    site: str
    draw_w: float
    budget_w: float  # the sum of the room's rack budgets
    racks: int
    racks_with_budget: int
    racks_over: int  # racks drawing more than their own budget
    reporting: int  # boards with a fresh power reading


@dataclass(frozen=True, slots=True)
class PowerSummary:
    draw_w: float  # every board with a fresh reading, racked or not
    reporting: int
    racked_draw_w: float  # boards in racks that have a budget
    budget_w: float
    racks_over: int
    rooms: list[RoomPower]


@dataclass(frozen=True, slots=True)
class OnBattery:
    count: int
    by_room: list[tuple[str | None, str, int]]  # (room id, "Site / Room" or "Not in a rack", n)
    boards: list[dict[str, Any]]  # the lowest batteries first: id, name, ts, battery_pct


@dataclass(frozen=True, slots=True)
class NowFigures:
    power: PowerSummary
    temperatures: Distribution
    battery: OnBattery


@dataclass(frozen=True, slots=True)
class RackPlace:
    """A rack with its budget and where it stands (for sums per room)."""

    rack_id: str
    room_id: str
    budget_w: float | None
    room: str
    site: str


@dataclass(slots=True)
class _RoomSum:
    room: str
    site: str
    draw: float = 0.0
    budget: float = 0.0
    racks: int = 0
    with_budget: int = 0
    over: int = 0
    reporting: int = 0


def sum_power(
    per_rack: dict[str | None, tuple[float, int]], racks: Sequence[RackPlace]
) -> PowerSummary:
    """Power per room and against budgets from (draw, reporting boards) per rack id (None:
    boards not in a rack)."""
    rooms: dict[str, _RoomSum] = {}
    racked_draw = budget_total = 0.0
    over_total = 0
    for rack in racks:
        r = rooms.setdefault(rack.room_id, _RoomSum(rack.room, rack.site))
        draw, n = per_rack.get(rack.rack_id, (0.0, 0))
        r.draw += draw
        r.reporting += n
        r.racks += 1
        if rack.budget_w is not None:
            r.budget += rack.budget_w
            r.with_budget += 1
            racked_draw += draw
            budget_total += rack.budget_w
            if draw > rack.budget_w:
                r.over += 1
                over_total += 1
    room_rows = [
        RoomPower(
            room_id=rid,
            room=r.room,
            site=r.site,
            draw_w=round(r.draw, 3),
            budget_w=round(r.budget, 3),
            racks=r.racks,
            racks_with_budget=r.with_budget,
            racks_over=r.over,
            reporting=r.reporting,
        )
        for rid, r in rooms.items()
    ]
    room_rows.sort(key=lambda r: (r.site, r.room))
    return PowerSummary(
        draw_w=round(sum(w for w, _ in per_rack.values()), 3),
        reporting=sum(n for _, n in per_rack.values()),
        racked_draw_w=round(racked_draw, 3),
        budget_w=round(budget_total, 3),
        racks_over=over_total,
        rooms=room_rows,
    )


def sum_battery(
    boards: Sequence[tuple[str, str, str | None, float, float | None]],
    racks: Sequence[RackPlace],
    limit: int,
) -> OnBattery:
    """Boards on battery ``(id, name, rack id, ts, battery_pct)``: how many per room, and
    the ``limit`` with the lowest battery."""
    place = {r.rack_id: r for r in racks}
    rooms: dict[str | None, tuple[str, int]] = {}
    for _, _, rack_id, _, _ in boards:
        rack = place.get(rack_id) if rack_id else None
        key, label = (rack.room_id, f"{rack.site} / {rack.room}") if rack else (None, "")
        _, n = rooms.get(key, (label or "Not in a rack", 0))
        rooms[key] = (label or "Not in a rack", n + 1)
    by_room = sorted(((k, lb, n) for k, (lb, n) in rooms.items()), key=lambda r: (-r[2], r[1]))
    lowest = sorted(boards, key=lambda b: (b[4] is None, b[4] or 0.0, b[1]))[:limit]
    return OnBattery(
        count=len(boards),
        by_room=by_room,
        boards=[{"id": i, "name": n, "ts": ts, "battery_pct": pct} for i, n, _, ts, pct in lowest],
    )


async def rack_places(session: AsyncSession, tenant_id: str) -> list[RackPlace]:
    stmt = (
        select(Rack.id, Rack.room_id, Rack.power_budget_w, Room.name, Site.name)
        .join(Room, Room.id == Rack.room_id)
        .join(Site, Site.id == Room.site_id)
        .where(Rack.tenant_id == tenant_id)
    )
    return [RackPlace(*row) for row in await _rows(session, stmt)]


def _fresh(metric_id: int, since: float, name: str) -> Any:
    """``telemetry_latest`` as the fresh readings of one metric, joined to ``Device``."""
    lat = aliased(TelemetryLatest, name=name)
    return lat, and_(lat.device_num == Device.num, lat.metric_id == metric_id, lat.ts >= since)


async def now_figures(
    session: AsyncSession, tenant_id: str, since: float, battery_limit: int = 8
) -> NowFigures:
    """Fresh power (per room, against rack budgets), the ``cpu_temp_c`` distribution and
    the boards on battery. The database adds up power per rack and picks the few boards on
    battery; only the temperatures come back one per board (for the median)."""
    ids = await _metric_ids(session, TEMP, POWER, ON_BATTERY, BATTERY)
    mine = Device.tenant_id == tenant_id
    power, on_power = _fresh(ids[POWER], since, "p")
    per_rack_stmt = (
        select(Device.rack_id, func.sum(power.value), func.count(power.value))
        .join(power, on_power)
        .where(mine)
        .group_by(Device.rack_id)
    )
    per_rack = {rack: (float(w), int(n)) for rack, w, n in await _rows(session, per_rack_stmt)}
    temp, on_temp = _fresh(ids[TEMP], since, "t")
    temps_stmt = select(temp.value).select_from(Device).join(temp, on_temp).where(mine)
    temps = [float(v) for (v,) in await _rows(session, temps_stmt)]
    flag, on_flag = _fresh(ids[ON_BATTERY], since, "b")
    pct, on_pct = _fresh(ids[BATTERY], since, "c")
    battery_stmt = (
        select(Device.id, Device.name, Device.rack_id, flag.ts, pct.value)
        .join(flag, and_(on_flag, flag.value >= 0.5))
        .outerjoin(pct, on_pct)
        .where(mine)
    )
    on_battery = [
        (str(did), str(name), rack_id, float(ts), _float(v))
        for did, name, rack_id, ts, v in await _rows(session, battery_stmt)
    ]
    racks = await rack_places(session, tenant_id)
    return NowFigures(
        power=sum_power(per_rack, racks),
        temperatures=histogram(temps),
        battery=sum_battery(on_battery, racks, battery_limit),
    )


async def device_count(session: AsyncSession, tenant_id: str) -> int:
    stmt = select(func.count()).select_from(Device).where(Device.tenant_id == tenant_id)
    return int((await _rows(session, stmt))[0][0])


# ----------------------------------------------------------------------------- physical


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
