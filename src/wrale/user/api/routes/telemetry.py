"""``/devices/{id}/telemetry`` (series, newest values, batch upload) and ``/telemetry``
(a series aggregated across a group, a rack or a list of devices)."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import Device, Rack
from wrale.fleet.brain.services import registry, telemetry, telemetry_query, topology
from wrale.shared.errors import InvalidRequestError, NotFoundError
from wrale.user.api.deps import OperatorDep, PrincipalDep, SessionDep, StateDep
from wrale.user.api.metrics import metrics_of
from wrale.user.api.schemas.telemetry import (
    METRIC_PATTERN,
    DeviceLatestPublic,
    FleetSeriesPublic,
    IngestResultPublic,
    LatestValue,
    SeriesPublic,
    Step,
    TelemetryBatchIn,
)

router = APIRouter(tags=["telemetry"])

MIN_TIME = 0.0
MAX_TIME = 32_503_680_000.0  # year 3000
DEFAULT_RANGE_S = 3600.0
MAX_DEVICE_IDS = 1000
TIME_HELP = "unix seconds or ISO 8601 (a time without a zone is UTC)"

Metric = Annotated[str, Query(pattern=METRIC_PATTERN, description="e.g. cpu_temp_c")]
# unix seconds, or an ISO 8601 date / date-time (1970–2999) with an optional zone; "": default
TIME_PATTERN = (
    r"^(|[0-9]{1,10}(\.[0-9]{1,9})?|(19[7-9][0-9]|2[0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?"
    r"(Z|[+\- ]([01][0-9]|2[0-3]):?[0-5][0-9])?)?)$"
)
Time = Annotated[str | None, Query(max_length=64, pattern=TIME_PATTERN, description=TIME_HELP)]


def parse_time(value: str | None, name: str, default: float) -> float:
    """Unix seconds or ISO 8601 → unix seconds (an unencoded ``+`` arrives as a space)."""
    text = (value or "").strip()
    if not text:
        return default
    try:
        at = float(text)
    except ValueError:
        at = _iso(text, name)
    if not math.isfinite(at) or not MIN_TIME <= at <= MAX_TIME:
        raise InvalidRequestError(f"{name} {value!r} is out of range (1970 to 3000)")
    return at


def _iso(text: str, name: str) -> float:
    for candidate in (text, text.replace(" ", "+")):
        try:
            parsed = datetime.fromisoformat(candidate)
        except ValueError:
            continue
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    raise InvalidRequestError(f"{name} {text!r} is neither unix seconds nor ISO 8601")


def time_range(start: str | None, end: str | None) -> tuple[float, float]:
    stop = parse_time(end, "end", time.time())
    begin = parse_time(start, "start", stop - DEFAULT_RANGE_S)
    if begin > stop:
        raise InvalidRequestError("start is after end")
    return begin, stop


@router.get("/devices/{device_id}/telemetry")
async def device_telemetry(
    device_id: str,
    p: PrincipalDep,
    session: SessionDep,
    metric: Metric,
    start: Time = None,
    end: Time = None,
    step: Annotated[Step | None, Query(description="omit for raw points")] = None,
) -> SeriesPublic:
    """One metric of one device: raw ``[[ts, value], …]``, or with a step
    ``[[bucket_ts, mean, min, max, last], …]`` (buckets without data are left out).
    Default range: the last hour. At most 10,000 points (else 422: ask a coarser step)."""
    device = await registry.get_device(session, p.tenant_id, device_id)
    begin, stop = time_range(start, end)
    series = await telemetry_query.device_series(session, device, metric, begin, stop, step)
    return SeriesPublic(
        metric=metric,
        device_id=device.id,
        step=series.step,
        start=begin,
        end=stop,
        columns=list(series.columns),
        points=series.points,
    )


@router.get("/devices/{device_id}/telemetry/latest")
async def device_latest(device_id: str, p: PrincipalDep, session: SessionDep) -> DeviceLatestPublic:
    """The newest value of every metric the device has reported."""
    device = await registry.get_device(session, p.tenant_id, device_id)
    latest = await telemetry.device_latest(session, device)
    return DeviceLatestPublic(
        device_id=device.id,
        metrics={m: LatestValue(ts=ts, value=v) for m, (ts, v) in latest.items()},
    )


@router.post("/devices/{device_id}/telemetry")
async def upload_telemetry(
    device_id: str,
    body: TelemetryBatchIn,
    request: Request,
    p: OperatorDep,
    session: SessionDep,
    state: StateDep,
) -> IngestResultPublic:
    """Store a batch for the device (scripts and tests; devices use their channel). A batch
    whose seq is not above the device's last stored one is acknowledged, not stored again.
    Telemetry is data, not an action: uploads are not audited."""
    device = await registry.get_device(session, p.tenant_id, device_id)
    points = [(pt.metric, pt.ts, pt.value) for pt in body.points]
    result = await telemetry.ingest_batch(session, device, body.seq, points)
    metrics_of(request).telemetry_points.inc(result.points)
    if result.stored and points:
        state.bus.publish(p.tenant_id, "telemetry.summary", summary(device.id, body.seq, points))
    return IngestResultPublic(
        stored=result.stored,
        duplicate=result.duplicate,
        acked_seq=result.acked_seq,
        last_seq=result.last_seq,
        points=result.points,
    )


def summary(device_id: str, seq: int, points: list[tuple[str, float, float]]) -> dict[str, Any]:
    """What WebSocket subscribers hear of a stored batch: the newest value of each metric."""
    newest: dict[str, tuple[float, float]] = {}
    for metric, ts, value in points:
        if metric not in newest or ts >= newest[metric][0]:
            newest[metric] = (ts, value)
    return {
        "device_id": device_id,
        "seq": seq,
        "points": len(points),
        "latest": {m: {"ts": ts, "value": v} for m, (ts, v) in sorted(newest.items())},
    }


async def _scope(
    session: AsyncSession,
    tenant_id: str,
    group_id: str | None,
    rack_id: str | None,
    device_ids: list[str],
) -> list[int]:
    """Nums of the tenant's devices matching every filter given (none: the whole fleet)."""
    stmt = select(Device.num).where(Device.tenant_id == tenant_id)
    if group_id:
        from wrale.fleet.brain.services.groups import devices_in_group  # another area's

        members = await devices_in_group(session, tenant_id, group_id, recursive=True)
        stmt = stmt.where(Device.id.in_([d.id for d in members]))
    if rack_id:
        rack = await topology.get(session, Rack, tenant_id, rack_id, "rack")
        stmt = stmt.where(Device.rack_id == rack.id)
    if device_ids:
        if len(device_ids) > MAX_DEVICE_IDS:
            raise InvalidRequestError(f"at most {MAX_DEVICE_IDS} device_id values")
        for d in device_ids:
            if not registry.is_id(d):
                raise NotFoundError(f"no device {d[:40]}", device_id=d[:40])
        found = await telemetry.device_nums(session, tenant_id, device_ids)
        missing = sorted(set(device_ids) - set(found.values()))
        if missing:
            raise NotFoundError(f"no device {missing[0]}", device_id=missing[0])
        stmt = stmt.where(Device.num.in_(list(found)))
    return list(await session.scalars(stmt))


@router.get("/telemetry")
async def fleet_telemetry(
    p: PrincipalDep,
    session: SessionDep,
    metric: Metric,
    group_id: Annotated[str | None, Query(max_length=32)] = None,
    rack_id: Annotated[str | None, Query(max_length=32)] = None,
    device_id: Annotated[list[str] | None, Query(description="repeatable, at most 1000")] = None,
    start: Time = None,
    end: Time = None,
    step: Step = "1m",
) -> FleetSeriesPublic:
    """One metric across devices, per bucket: ``[[bucket_ts, mean, min, max, devices], …]``
    — the mean of every point, the lowest, the highest, and how many devices reported.
    The devices are those matching every filter given: a group (with its subgroups), a
    rack, listed devices; no filter: the whole fleet."""
    ids = device_id or []
    nums = await _scope(session, p.tenant_id, group_id, rack_id, ids)
    begin, stop = time_range(start, end)
    series = await telemetry_query.fleet_series(session, nums, metric, begin, stop, step)
    return FleetSeriesPublic(
        metric=metric,
        group_id=group_id,
        rack_id=rack_id,
        device_ids=ids,
        devices=len(nums),
        step=step,
        start=begin,
        end=stop,
        columns=list(series.columns),
        points=series.points,
    )
