"""The fleet's "now" figures for the overview: fresh power per room against rack budgets,
the ``cpu_temp_c`` distribution and the boards on battery, from a few queries summed up by
pure functions (``sum_power``, ``sum_battery``, ``histogram``). Nothing here writes.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from wrale.fleet.brain.models import Device, Rack, Room, Site
from wrale.fleet.brain.models.telemetry import TelemetryLatest
from wrale.fleet.brain.services.fleet_latest import (
    BATTERY,
    ON_BATTERY,
    POWER,
    TEMP,
    _float,
    _metric_ids,
    _rows,
)

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
