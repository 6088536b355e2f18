"""Builds the decisions' fleet view (``decisions.view.FleetView``) of one organisation from
the database: one immutable snapshot per control period, read in a handful of queries —
the boards (state, place, latest readings, temperature trend of the last minutes), their
racks and budgets, the active placements and the jobs. Reads only; decides nothing.

Unknown power source: one rule for the whole brain. A board whose readings are fresh but
that reports no ``on_battery`` flag (no power monitor) counts as on mains, as the hard
rules of ``job_boards.block`` count it; a board whose readings are stale (older than
``STALE_AFTER_S``) is unknown throughout, and ``decisions.placement`` keeps physical work
off it for that reason (its thermal and power headroom are unknown too). So an unknown
source never blocks a board the stale-readings rule would have accepted, and the spread
baseline keeps placing on boards without a power monitor.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.decisions.view import (
    STALE_AFTER_S,
    BoardView,
    FleetView,
    JobSpec,
    PlacementView,
    RackView,
    Source,
    slope_per_min,
)
from wrale.fleet.brain.models import Device, Rack
from wrale.fleet.brain.models.jobs import Job, JobPlacement
from wrale.fleet.brain.models.telemetry import TelemetryLatest, TelemetryRaw
from wrale.fleet.brain.services.job_boards import Board, load_boards, selected_ids
from wrale.fleet.brain.services.job_state import ACTIVE
from wrale.fleet.brain.services.telemetry_store import lookup_metric_ids

TREND_WINDOW_S = 300.0  # the temperature trend is the slope of the last five minutes
FAN_SPINNING_RPM = 100.0  # below this a fan driven at FAN_DRIVEN_PCT or more has failed
FAN_DRIVEN_PCT = 20.0
TEMP, AMBIENT, FAN, RPM, POWER, ON_BATTERY, BATTERY, THROTTLED, UNDER_VOLTAGE = (
    "cpu_temp_c",
    "ambient_temp_c",
    "fan_pct",
    "fan_rpm",
    "power_w",
    "on_battery",
    "battery_pct",
    "throttled",
    "under_voltage",
)
METRICS = (TEMP, AMBIENT, FAN, RPM, POWER, ON_BATTERY, BATTERY, THROTTLED, UNDER_VOLTAGE)
TRENDED = (TEMP, AMBIENT)

Latest = dict[str, tuple[float, float]]  # metric -> (ts, value)


async def _latest(
    session: AsyncSession, nums: Sequence[int], ids: Mapping[str, int]
) -> dict[int, Latest]:
    names = {mid: name for name, mid in ids.items()}
    out: dict[int, Latest] = defaultdict(dict)
    if not nums or not names:
        return out
    rows = await session.execute(
        select(
            TelemetryLatest.device_num,
            TelemetryLatest.metric_id,
            TelemetryLatest.ts,
            TelemetryLatest.value,
        ).where(
            TelemetryLatest.device_num.in_(list(nums)),
            TelemetryLatest.metric_id.in_(sorted(names)),
        )
    )
    for num, mid, ts, value in rows:
        out[num][names[mid]] = (float(ts), float(value))
    return out


async def _trends(
    session: AsyncSession, nums: Sequence[int], ids: Mapping[str, int], now: float
) -> dict[tuple[int, str], float]:
    """(device num, metric) -> slope per minute of its raw readings in the trend window."""
    names = {ids[m]: m for m in TRENDED if m in ids}
    if not nums or not names:
        return {}
    rows = await session.execute(
        select(TelemetryRaw.device_num, TelemetryRaw.metric_id, TelemetryRaw.ts, TelemetryRaw.value)
        .where(
            TelemetryRaw.device_num.in_(list(nums)),
            TelemetryRaw.metric_id.in_(sorted(names)),
            TelemetryRaw.ts >= now - TREND_WINDOW_S,
            TelemetryRaw.ts <= now,
        )
        .order_by(TelemetryRaw.ts)
    )
    samples: dict[tuple[int, str], list[tuple[float, float]]] = defaultdict(list)
    for num, mid, ts, value in rows:
        samples[num, names[mid]].append((float(ts), float(value)))
    out = {}
    for key, pts in samples.items():
        slope = slope_per_min(pts)
        if slope is not None:
            out[key] = slope
    return out


def _source(latest: Latest, fresh: bool) -> Source | None:
    """Battery when a fresh flag says so; mains when fresh otherwise (no flag: no power
    monitor, see the module docstring); unknown when stale."""
    if not fresh:
        return None
    flag = latest.get(ON_BATTERY)
    return Source.BATTERY if flag is not None and flag[1] >= 0.5 else Source.MAIN


def board_view(
    b: Board,
    latest: Latest,
    trends: Mapping[tuple[int, str], float],
    placements: Sequence[PlacementView],
    now: float,
    freq_cap_pct: float | None = None,
) -> BoardView:
    """One board's view from its readings (pure): the age of its temperature reading is
    the age of its readings; a fan driven but not turning has failed."""
    d = b.device

    def value(metric: str) -> float | None:
        got = latest.get(metric)
        return None if got is None else got[1]

    temp = latest.get(TEMP)
    age = None if temp is None else max(0.0, now - temp[0])
    fresh = age is not None and age <= STALE_AFTER_S
    duty, rpm = value(FAN), value(RPM)
    failed = duty is not None and rpm is not None and duty >= FAN_DRIVEN_PCT
    failed = failed and rpm is not None and rpm < FAN_SPINNING_RPM
    return BoardView(
        device_id=d.id,
        name=d.name,
        rack_id=d.rack_id,
        room_id=b.place.room_id if b.place else None,
        site_id=b.place.site_id if b.place else None,
        online=d.status == "online",
        mode=b.mode or "normal",
        lockdown=b.lockdown,
        cpu_temp_c=value(TEMP),
        temp_trend_c_per_min=trends.get((d.num, TEMP)),
        ambient_c=value(AMBIENT),
        ambient_trend_c_per_min=trends.get((d.num, AMBIENT)),
        fan_duty_pct=duty,
        fan_rpm=rpm,
        fan_failed=bool(failed),
        power_w=value(POWER),
        power_source=_source(latest, fresh),
        battery_pct=value(BATTERY),
        throttled=(value(THROTTLED) or 0.0) >= 0.5,
        under_voltage=(value(UNDER_VOLTAGE) or 0.0) >= 0.5,
        freq_cap_pct=freq_cap_pct,
        reading_age_s=age,
        placements=tuple(placements),
    )


async def _placements(
    session: AsyncSession, tenant_id: str
) -> tuple[dict[str, list[PlacementView]], list[Job]]:
    rows = await session.execute(
        select(JobPlacement, Job)
        .join(Job, Job.id == JobPlacement.job_id)
        .where(JobPlacement.tenant_id == tenant_id, JobPlacement.state.in_(ACTIVE))
        .order_by(JobPlacement.id)
    )
    on: dict[str, list[PlacementView]] = defaultdict(list)
    for p, job in rows:
        if p.device_id is None:
            continue
        on[p.device_id].append(placement_view_of(p, job))
    jobs = await session.scalars(
        select(Job).where(Job.tenant_id == tenant_id, Job.stopped_at.is_(None)).order_by(Job.id)
    )
    return on, list(jobs)


def placement_view_of(p: JobPlacement, job: Job, *, starting: bool | None = None) -> PlacementView:
    return PlacementView(
        id=p.id,
        job_id=job.id,
        priority=job.priority,
        cpu_pct=job.cpu_pct,
        watts=job.watts,
        restartable=job.restartable,
        cpu_quota_pct=p.cpu_quota_pct,
        starting=p.state == "starting" if starting is None else starting,
    )


async def job_spec(session: AsyncSession, job: Job, boards: Sequence[Board]) -> JobSpec:
    """The job as the decisions see it: its selector (and a sim_load's need of a simulated
    board) resolved to the device ids it may run on."""
    devices: frozenset[str] | None = None
    sim_only = (job.workload or {}).get("kind") == "sim_load"
    if job.selector or sim_only:
        ids = await selected_ids(session, job, boards)
        if sim_only:
            ids &= {b.device.id for b in boards if b.sim}
        devices = frozenset(ids)
    return JobSpec(
        id=job.id,
        priority=job.priority,
        cpu_pct=job.cpu_pct,
        watts=job.watts,
        restartable=job.restartable,
        max_per_rack=job.max_per_rack,
        allow_battery=job.allow_battery,
        strategy=job.strategy,
        devices=devices,
    )


async def build_fleet_view(
    session: AsyncSession,
    tenant_id: str,
    now: float,
    *,
    freq_caps: Mapping[str, float] | None = None,
    skip_sites: Collection[str] = (),
    boards: Sequence[Board] | None = None,
    with_trends: bool = True,
) -> FleetView:
    """The organisation's fleet view at ``now``. ``freq_caps``: the brain's frequency caps
    in force by device (the capping loop's state); ``skip_sites``: sites left out (a loop
    paused there); ``boards``: already loaded (``job_boards.load_boards``); ``with_trends``
    False leaves the temperature trends unknown (capping reads none of them, and they cost
    a read of every raw reading of the last five minutes)."""
    if boards is None:
        devices = await session.scalars(
            select(Device).where(Device.tenant_id == tenant_id).order_by(Device.name)
        )
        boards = await load_boards(session, list(devices), now)
    kept = [b for b in boards if not (b.place and b.place.site_id in skip_sites)]
    ids = await lookup_metric_ids(session, METRICS)
    nums = [b.device.num for b in kept]
    latest = await _latest(session, nums, ids)
    trends = await _trends(session, nums, ids, now) if with_trends else {}
    on, jobs = await _placements(session, tenant_id)
    caps = freq_caps or {}
    views = tuple(
        board_view(
            b,
            latest.get(b.device.num, {}),
            trends,
            on.get(b.device.id, ()),
            now,
            caps.get(b.device.id),
        )
        for b in kept
    )
    rack_ids = sorted({b.device.rack_id for b in kept if b.device.rack_id})
    racks: list[RackView] = []
    if rack_ids:
        rows = await session.execute(
            select(Rack.id, Rack.room_id, Rack.power_budget_w, Rack.name).where(
                Rack.id.in_(rack_ids)
            )
        )
        racks = [RackView(r.id, r.room_id, r.power_budget_w, name=r.name) for r in rows]
    specs = tuple([await job_spec(session, j, boards) for j in jobs])
    return FleetView(views, tuple(racks), specs, now)


def with_placement(view: FleetView, device_id: str, placement: PlacementView) -> FleetView:
    """``view`` with one more placement on a board (a decision taken earlier in the same
    period, so the next one sees it). Pure."""
    boards = tuple(_add(b, placement) if b.device_id == device_id else b for b in view.boards)
    return FleetView(boards, view.racks, view.jobs, view.now)


def _add(b: BoardView, placement: PlacementView) -> BoardView:
    return replace(b, placements=(*b.placements, placement))


def inputs_of(b: BoardView) -> dict[str, Any]:
    """The readings of a board a decision records as its inputs."""
    return {
        "cpu_temp_c": b.known_temp_c,
        "trend_c_per_min": b.known_trend_c_per_min,
        "ambient_c": b.known_ambient_c,
        "power_w": b.known_power_w,
        "power_source": None if b.known_source is None else b.known_source.value,
        "fan_failed": b.fan_failed,
        "reading_age_s": b.reading_age_s,
    }
