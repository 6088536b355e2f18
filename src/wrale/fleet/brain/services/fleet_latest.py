"""The fresh latest readings that ``fleet_view``'s aggregates share: what "now" means
(``FRESH_S``), the metric names, the pivot of every device's latest metrics in one query
(``latest_pivot``) and Core execution for big reads. Nothing here writes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Executable, Select, and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.telemetry import TelemetryLatest
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
