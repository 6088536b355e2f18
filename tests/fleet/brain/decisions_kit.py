"""Helpers of the decision-loop tests: readings written as the telemetry ingest stores
them (the newest value of each metric, and raw points for trends) on the jobs kit's
world, and reads of the decision log."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from tests.fleet.brain.jobs_kit import World
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.decisions import Decision
from wrale.fleet.brain.models.telemetry import TelemetryLatest, TelemetryRaw
from wrale.fleet.brain.services.telemetry_store import metric_ids

COOL = {"cpu_temp_c": 45.0, "ambient_temp_c": 24.0, "fan_pct": 30.0, "fan_rpm": 3000.0}


async def readings(w: World, board: str, at: float, **values: float) -> None:
    """``board`` reported ``values`` at ``at`` (replacing its newest values)."""
    async with w.db.session() as s:
        device = await s.get(Device, w.ids[board])
        assert device is not None
        ids = await metric_ids(s, list(values))
        await s.execute(
            delete(TelemetryLatest).where(
                TelemetryLatest.device_num == device.num,
                TelemetryLatest.metric_id.in_(list(ids.values())),
            )
        )
        await s.execute(
            delete(TelemetryRaw).where(
                TelemetryRaw.device_num == device.num,
                TelemetryRaw.metric_id.in_(list(ids.values())),
                TelemetryRaw.ts == at,
            )
        )
        for name, value in values.items():
            s.add(TelemetryLatest(device_num=device.num, metric_id=ids[name], ts=at, value=value))
            s.add(TelemetryRaw(device_num=device.num, metric_id=ids[name], ts=at, value=value))


async def series(w: World, board: str, metric: str, points: list[tuple[float, float]]) -> None:
    """Raw points of one metric (for its trend)."""
    async with w.db.session() as s:
        device = await s.get(Device, w.ids[board])
        assert device is not None
        mid = (await metric_ids(s, [metric]))[metric]
        for ts, value in points:
            s.add(TelemetryRaw(device_num=device.num, metric_id=mid, ts=ts, value=value))


async def decisions(w: World, loop: str) -> list[Decision]:
    async with w.db.session() as s:
        rows = await s.scalars(
            select(Decision)
            .where(Decision.tenant_id == w.operator.tenant_id, Decision.loop == loop)
            .order_by(Decision.id)
        )
        return list(rows)


def board(view: Any, w: World, name: str) -> Any:
    b = view.board(w.ids[name])
    assert b is not None
    return b
