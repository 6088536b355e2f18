"""Wear trends (``docs/wear.md``): a board's trends with their evidence and "replace
before" dates, and the fleet's maintenance queue grouped by site and rack, with the
maintenance rules' open tasks beside the worn parts (everyone reads). An unknown board,
or another organisation's, is 404."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from wrale.fleet.brain.decisions.wear import BoardWear, RackVisit
from wrale.fleet.brain.services.maintenance import wear
from wrale.fleet.brain.services.maintenance.queue_tasks import merge_tasks
from wrale.fleet.brain.services.maintenance.tasks import PlacedTask, queue_tasks
from wrale.user.api.deps import SessionDep, ViewerDep

router = APIRouter(tags=["maintenance"])


class WearTrend(BaseModel):
    """One part's wear: ``points`` are [day start (unix s), wear %] to chart; dates are unix
    seconds (``None``: not foreseen within a year, or not worn)."""

    kind: str
    baseline: float
    wear_pct: float
    z: float
    slope_pct_per_day: float
    slope_se: float
    worn: bool
    replace_before: float | None
    replace_earliest: float | None
    replace_latest: float | None
    points: list[list[float]]


class QueueTask(BaseModel):
    """An open maintenance task of a rule on the board (``docs/maintenance.md``)."""

    kind: Literal["task"] = "task"
    id: str
    rule_id: str
    rule_name: str
    title: str
    opened_at: float
    due: float


class DeviceWear(BaseModel):
    device_id: str
    device_name: str | None = None
    site_id: str | None
    site_name: str | None = None
    rack_id: str | None
    rack_name: str | None = None
    due: float | None
    throttled_days: int
    under_voltage_days: int
    trends: list[WearTrend]
    tasks: list[QueueTask] = Field(default_factory=list, description="open maintenance tasks")


class MaintenanceVisit(BaseModel):
    site_id: str | None
    site_name: str | None = None
    rack_id: str | None
    rack_name: str | None = None
    due: float | None
    devices: list[DeviceWear]


class MaintenanceQueue(BaseModel):
    visits: list[MaintenanceVisit]
    boards_read: int
    truncated: bool


def _finite(value: float) -> float:
    """JSON has no infinity: a trend too short for a slope's error reports 0."""
    return value if value == value and abs(value) != float("inf") else 0.0


def _device(w: BoardWear, names: Mapping[str, str]) -> DeviceWear:
    trends = []
    for t in w.trends:
        ev: dict[str, Any] = t.evidence()
        ev.update(z=_finite(ev["z"]), slope_se=_finite(ev["slope_se"]))
        trends.append(WearTrend.model_validate(ev))
    return DeviceWear(
        device_id=w.device_id,
        device_name=names.get(w.device_id),
        site_id=w.site,
        site_name=names.get(w.site or ""),
        rack_id=w.rack,
        rack_name=names.get(w.rack or ""),
        due=w.due,
        throttled_days=w.throttled_days,
        under_voltage_days=w.under_voltage_days,
        trends=trends,
    )


def _visit(v: RackVisit, names: Mapping[str, str]) -> MaintenanceVisit:
    return MaintenanceVisit(
        site_id=v.site,
        site_name=names.get(v.site or ""),
        rack_id=v.rack,
        rack_name=names.get(v.rack or ""),
        due=v.due,
        devices=[_device(b, names) for b in v.boards],
    )


@router.get("/devices/{device_id}/wear")
async def device_wear(device_id: str, p: ViewerDep, session: SessionDep) -> DeviceWear:
    """A board's wear trends over the last 30 days of its hourly telemetry."""
    w = await wear.device_wear(session, p.tenant_id, device_id, time.time())
    return _device(w, await wear.names(session, p.tenant_id, [w]))


@router.get("/maintenance/queue")
async def maintenance_queue(p: ViewerDep, session: SessionDep) -> MaintenanceQueue:
    """The boards with a worn part or an open maintenance task (items of kind "task"
    beside the wear trends), grouped by site and rack, most urgent visit first; a board's
    and a visit's ``due`` is the earliest of its replace-before dates and task dues."""
    q = await wear.queue(session, p.tenant_id, time.time())
    names = await wear.names(session, p.tenant_id, [b for v in q.visits for b in v.boards])
    return MaintenanceQueue(
        visits=_with_tasks(
            [_visit(v, names) for v in q.visits], await queue_tasks(session, p.tenant_id)
        ),
        boards_read=q.boards_read,
        truncated=q.truncated,
    )


def _with_tasks(
    visits: list[MaintenanceVisit], placed: Sequence[PlacedTask]
) -> list[MaintenanceVisit]:
    """The open tasks merged into the queue (``services.maintenance.queue_tasks``)."""
    return merge_tasks(visits, placed, _new_visit, _new_device, _queue_task)


def _new_visit(pt: PlacedTask) -> MaintenanceVisit:
    return MaintenanceVisit(
        site_id=pt.site_id,
        site_name=pt.site_name,
        rack_id=pt.rack_id,
        rack_name=pt.rack_name,
        due=None,
        devices=[],
    )


def _new_device(pt: PlacedTask) -> DeviceWear:
    return DeviceWear(
        device_id=pt.device_id,
        device_name=pt.device_name,
        site_id=pt.site_id,
        site_name=pt.site_name,
        rack_id=pt.rack_id,
        rack_name=pt.rack_name,
        due=None,
        throttled_days=0,
        under_voltage_days=0,
        trends=[],
    )


def _queue_task(t: Mapping[str, Any]) -> QueueTask:
    return QueueTask(
        id=t["id"],
        rule_id=t["rule_id"],
        rule_name=t["rule_name"],
        title=t["title"],
        opened_at=t["opened_at"],
        due=t["due_at"],
    )
