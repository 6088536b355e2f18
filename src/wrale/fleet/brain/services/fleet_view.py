"""Read-only aggregates of the whole fleet for the dashboard's overview and physical view:
devices by status, open alerts by severity, power against rack budgets, the temperature
distribution, boards on battery, recent events, and the latest metrics of racked boards.

Each answer is one or two SQL queries whatever the fleet's size: GROUP BY in the database,
the latest metrics of every device in one pivoting query (``latest_pivot``), Core execution
(no ORM objects) for the big reads. Nothing here writes. "Now" figures ignore readings older than
``FRESH_S``: a silent board draws no power that we know of.

Devices and alerts are here; the shared fresh-reading queries are ``fleet_latest``, the now
figures ``fleet_now``, the physical view ``fleet_physical`` (all re-exported here, so callers
keep using ``fleet_view.*``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import Device, Rack
from wrale.fleet.brain.models.alerts import Alert
from wrale.fleet.brain.models.channel import DeviceEvent
from wrale.fleet.brain.services.alerts import OPEN_STATES
from wrale.fleet.brain.services.fleet_latest import BATTERY as BATTERY
from wrale.fleet.brain.services.fleet_latest import FAN as FAN
from wrale.fleet.brain.services.fleet_latest import FRESH_S as FRESH_S
from wrale.fleet.brain.services.fleet_latest import NO_METRIC as NO_METRIC
from wrale.fleet.brain.services.fleet_latest import ON_BATTERY as ON_BATTERY
from wrale.fleet.brain.services.fleet_latest import POWER as POWER
from wrale.fleet.brain.services.fleet_latest import TEMP as TEMP
from wrale.fleet.brain.services.fleet_latest import _rows
from wrale.fleet.brain.services.fleet_latest import fresh_since as fresh_since
from wrale.fleet.brain.services.fleet_latest import latest_pivot as latest_pivot
from wrale.fleet.brain.services.fleet_now import HIST_HIGH_C as HIST_HIGH_C
from wrale.fleet.brain.services.fleet_now import HIST_LOW_C as HIST_LOW_C
from wrale.fleet.brain.services.fleet_now import HIST_STEP_C as HIST_STEP_C
from wrale.fleet.brain.services.fleet_now import Bucket as Bucket
from wrale.fleet.brain.services.fleet_now import Distribution as Distribution
from wrale.fleet.brain.services.fleet_now import NowFigures as NowFigures
from wrale.fleet.brain.services.fleet_now import OnBattery as OnBattery
from wrale.fleet.brain.services.fleet_now import PowerSummary as PowerSummary
from wrale.fleet.brain.services.fleet_now import RackPlace as RackPlace
from wrale.fleet.brain.services.fleet_now import RoomPower as RoomPower
from wrale.fleet.brain.services.fleet_now import histogram as histogram
from wrale.fleet.brain.services.fleet_now import now_figures as now_figures
from wrale.fleet.brain.services.fleet_now import rack_places as rack_places
from wrale.fleet.brain.services.fleet_now import sum_battery as sum_battery
from wrale.fleet.brain.services.fleet_now import sum_power as sum_power
from wrale.fleet.brain.services.fleet_physical import BandStats as BandStats
from wrale.fleet.brain.services.fleet_physical import Board as Board
from wrale.fleet.brain.services.fleet_physical import RackInfo as RackInfo
from wrale.fleet.brain.services.fleet_physical import RackStats as RackStats
from wrale.fleet.brain.services.fleet_physical import RoomInfo as RoomInfo
from wrale.fleet.brain.services.fleet_physical import SiteInfo as SiteInfo
from wrale.fleet.brain.services.fleet_physical import boards_in_rooms as boards_in_rooms
from wrale.fleet.brain.services.fleet_physical import layout as layout
from wrale.fleet.brain.services.fleet_physical import rack_stats as rack_stats

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


async def device_count(session: AsyncSession, tenant_id: str) -> int:
    stmt = select(func.count()).select_from(Device).where(Device.tenant_id == tenant_id)
    return int((await _rows(session, stmt))[0][0])
