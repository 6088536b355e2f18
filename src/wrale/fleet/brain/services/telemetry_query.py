"""Telemetry series: raw points of one device, stepped series from the 1-minute or 1-hour
rollups, and series aggregated across devices (a rack, a group, a list of devices).

Read-only; the source table is chosen by the step (rollups are merged at ingest, so they
never lag behind the raw points).
"""

# ruff: noqa: S608 - SQL text interpolates only placeholders and constant table names
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import Device
from wrale.fleet.brain.services.telemetry_store import fetch, lookup_metric_ids, placeholders
from wrale.shared.errors import InvalidRequestError

STEPS: dict[str, int] = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "6h": 21600, "1d": 86400}
MAX_POINTS = 10_000
RAW_COLUMNS = ("ts", "value")
STEP_COLUMNS = ("ts", "mean", "min", "max", "last")
FLEET_COLUMNS = ("ts", "mean", "min", "max", "devices")

Point = list[float]


@dataclass(frozen=True, slots=True)
class Series:
    metric: str
    step: str | None
    columns: tuple[str, ...]
    points: list[Point]


def _step_s(step: str) -> int:
    if step not in STEPS:
        raise InvalidRequestError(f"step must be one of {', '.join(STEPS)} (or omitted for raw)")
    return STEPS[step]


def _buckets(start: float, end: float, size: int) -> tuple[int, int]:
    """First and last bucket start covering [start, end]; refuses too many points."""
    if end < start:
        raise InvalidRequestError("end is before start")
    first, last = int(start // size) * size, int(end // size) * size
    count = (last - first) // size + 1
    if count > MAX_POINTS:
        raise InvalidRequestError(
            f"{count} points at this step exceed the limit of {MAX_POINTS}; "
            "ask for a coarser step or a shorter range"
        )
    return first, last


def _source(size: int) -> str:
    return "telemetry_1h" if size >= 3600 else "telemetry_1m"


async def device_series(
    session: AsyncSession, device: Device, metric: str, start: float, end: float, step: str | None
) -> Series:
    """Raw ``[[ts, value], …]`` without a step; else ``[[bucket_ts, mean, min, max, last], …]``
    for every bucket with data."""
    if step is None:
        return Series(metric, None, RAW_COLUMNS, await _raw(session, device, metric, start, end))
    size = _step_s(step)
    first, last = _buckets(start, end, size)
    mid = (await lookup_metric_ids(session, [metric])).get(metric)
    if mid is None:
        return Series(metric, step, STEP_COLUMNS, [])
    conn = await session.connection()
    a, b, c, d = placeholders(conn, 4).split(", ")
    sql = (
        f'SELECT bucket_ts, "min", "max", "sum", "count", "last", last_ts FROM {_source(size)} '
        f"WHERE device_num = {a} AND metric_id = {b} AND bucket_ts >= {c} AND bucket_ts < {d} "
        "ORDER BY bucket_ts"
    )
    rows = await fetch(conn, sql, (device.num, mid, first, last + size))
    points: list[Point] = []
    cur: list[float] | None = None  # bucket, min, max, sum, count, last, last_ts
    for bucket_ts, lo, hi, total, count, last_v, last_ts in rows:
        key = bucket_ts // size * size
        if cur is None or cur[0] != key:
            if cur is not None:
                points.append(_step_point(cur))
            cur = [key, lo, hi, total, count, last_v, last_ts]
            continue
        cur[1] = min(cur[1], lo)
        cur[2] = max(cur[2], hi)
        cur[3] += total
        cur[4] += count
        if last_ts >= cur[6]:
            cur[5], cur[6] = last_v, last_ts
    if cur is not None:
        points.append(_step_point(cur))
    return Series(metric, step, STEP_COLUMNS, points)


def _step_point(c: list[float]) -> Point:
    return [int(c[0]), c[3] / c[4], float(c[1]), float(c[2]), float(c[5])]


async def _raw(
    session: AsyncSession, device: Device, metric: str, start: float, end: float
) -> list[Point]:
    if end < start:
        raise InvalidRequestError("end is before start")
    mid = (await lookup_metric_ids(session, [metric])).get(metric)
    if mid is None:
        return []
    conn = await session.connection()
    a, b, c, d = placeholders(conn, 4).split(", ")
    sql = (
        f"SELECT ts, value FROM telemetry_raw WHERE device_num = {a} AND metric_id = {b} "
        f"AND ts >= {c} AND ts <= {d} ORDER BY ts LIMIT {MAX_POINTS + 1}"
    )
    rows = await fetch(conn, sql, (device.num, mid, start, end))
    if len(rows) > MAX_POINTS:
        raise InvalidRequestError(
            f"more than {MAX_POINTS} raw points in this range; ask for a step (e.g. step=1m) "
            "or a shorter range"
        )
    return [[float(t), float(v)] for t, v in rows]


async def fleet_series(
    session: AsyncSession,
    device_nums: Sequence[int],
    metric: str,
    start: float,
    end: float,
    step: str,
) -> Series:
    """``[[bucket_ts, mean, min, max, devices], …]`` across ``device_nums``: the mean of every
    point in the bucket, the lowest and highest, and how many devices reported."""
    size = _step_s(step)
    first, last = _buckets(start, end, size)
    mid = (await lookup_metric_ids(session, [metric])).get(metric)
    if mid is None or not device_nums:
        return Series(metric, step, FLEET_COLUMNS, [])
    conn = await session.connection()
    merged: dict[int, list[float]] = {}  # bucket → [sum, count, min, max, devices]
    nums = sorted(set(device_nums))
    for i in range(0, len(nums), 1000):  # chunks are disjoint sets of devices
        chunk = nums[i : i + 1000]
        b, c, d = placeholders(conn, 3).split(", ")
        marks = placeholders(conn, len(chunk), 4)
        sql = (
            f'SELECT bucket_ts / {size} * {size} AS b, SUM("sum"), SUM("count"), MIN("min"), '
            f'MAX("max"), COUNT(DISTINCT device_num) FROM {_source(size)} '
            f"WHERE metric_id = {b} AND bucket_ts >= {c} AND bucket_ts < {d} "
            f"AND device_num IN ({marks}) GROUP BY b"
        )
        for bucket, total, count, lo, hi, devices in await fetch(
            conn, sql, (mid, first, last + size, *chunk)
        ):
            m = merged.get(int(bucket))
            if m is None:
                merged[int(bucket)] = [float(total), float(count), lo, hi, float(devices)]
            else:
                m[0] += total
                m[1] += count
                m[2] = min(m[2], lo)
                m[3] = max(m[3], hi)
                m[4] += devices
    points = [
        [b, m[0] / m[1], float(m[2]), float(m[3]), int(m[4])] for b, m in sorted(merged.items())
    ]
    return Series(metric, step, FLEET_COLUMNS, points)
