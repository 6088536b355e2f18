"""Telemetry ingestion (per-device sequence numbers, idempotent redelivery, bulk inserts,
1-minute and 1-hour rollups merged at ingest), newest values, and retention.

Queries of series live in ``telemetry_query.py``; SQL helpers in ``telemetry_store.py``.
Ingesting is data, not an action: it is not audited.
"""

# ruff: noqa: S608 - SQL text interpolates only placeholders and constant table names
from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from wrale.fleet.brain.models import Device
from wrale.fleet.brain.services.telemetry_bounds import MAX_FUTURE_S, MIN_TS, bounds_of
from wrale.fleet.brain.services.telemetry_partitions import drop_expired
from wrale.fleet.brain.services.telemetry_store import (
    BatchRows,
    executemany,
    fetch,
    is_pg,
    lookup_metric_ids,
    metric_ids,
    placeholders,
    write_batch,
)
from wrale.fleet.brain.sqlite_inline import off_loop
from wrale.shared.errors import InvalidRequestError

METRIC_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_BATCH_POINTS = 10_000
MAX_SEQ = 2**63 - 1
FOREVER = 2**62  # the cutoff that deletes every row of a deleted device

__all__ = [
    "IngestResult",
    "apply_retention",
    "device_latest",
    "ingest_batch",
    "latest_values",
    "recent_points",
]


@dataclass(frozen=True, slots=True)
class IngestResult:
    """``stored`` new points, or a ``duplicate`` batch (seq ≤ the device's last stored), or
    (with ``prev``) a ``gap``: a batch before this one is missing, nothing was stored.
    ``acked_seq`` is the batch's seq, now safe to drop from the device's outbox (not for a
    gap); ``last_seq`` is the highest seq stored for the device (-1: none)."""

    stored: bool
    duplicate: bool
    acked_seq: int
    last_seq: int
    points: int
    gap: bool = False


def validate_points(points: Sequence[tuple[str, float, float]], now: float) -> None:
    """Refuse the batch on its first bad point. The hot loop: a metric's name and bounds
    are checked once per batch, and a point of two ``float`` inside their bounds (finite:
    every metric's bounds are) takes one test; anything else gets the full check."""
    if len(points) > MAX_BATCH_POINTS:
        raise InvalidRequestError(
            f"a batch holds at most {MAX_BATCH_POINTS} points ({len(points)} sent); split it"
        )
    newest = now + MAX_FUTURE_S
    limits: dict[str, tuple[float, float]] = {}
    for i, (metric, ts, value) in enumerate(points):
        low_high = limits.get(metric)
        if low_high is None:
            if not isinstance(metric, str) or not METRIC_RE.match(metric):
                raise InvalidRequestError(
                    f"points[{i}]: metric {metric!r} must match {METRIC_RE.pattern} "
                    "(lower case with a unit suffix, e.g. cpu_temp_c)"
                )
            low_high = limits[metric] = bounds_of(metric)
        if (
            type(ts) is float
            and type(value) is float
            and MIN_TS <= ts <= newest
            and low_high[0] <= value <= low_high[1]
        ):
            continue
        _check_point(i, metric, ts, value, newest, low_high)


def _check_point(
    i: int, metric: str, ts: float, value: float, newest: float, low_high: tuple[float, float]
) -> None:
    if not (_number(ts) and MIN_TS <= ts <= newest):
        raise InvalidRequestError(
            f"points[{i}]: timestamp {ts!r} is outside [2000-01-01, now + 1 day] (unix seconds)"
        )
    if not (_number(value) and math.isfinite(value)):
        raise InvalidRequestError(f"points[{i}]: value {value!r} is not a finite number")
    if not low_high[0] <= value <= low_high[1]:
        raise InvalidRequestError(
            f"points[{i}]: {metric} = {value!r} is outside its physical bounds "
            f"[{low_high[0]}, {low_high[1]}]"
        )


def _number(x: object) -> bool:
    t = type(x)
    return t is float or t is int or isinstance(x, int | float)


def _aggregate(
    rows: dict[tuple[int, float], float], size: int
) -> dict[tuple[int, int], list[float]]:
    """(metric_id, bucket_ts) → [min, max, sum, count, last, last_ts] of raw rows."""
    out: dict[tuple[int, int], list[float]] = {}
    for (mid, ts), v in rows.items():
        key = (mid, int(ts // size) * size)
        a = out.get(key)
        if a is None:
            out[key] = [v, v, v, 1, v, ts]
            continue
        if v < a[0]:
            a[0] = v
        if v > a[1]:
            a[1] = v
        a[2] += v
        a[3] += 1
        if ts >= a[5]:
            a[4] = v
            a[5] = ts
    return out


def _merge(
    parts: dict[tuple[int, int], list[float]], size: int
) -> dict[tuple[int, int], list[float]]:
    """Coarser buckets from finer aggregates."""
    out: dict[tuple[int, int], list[float]] = {}
    for (mid, bucket), p in parts.items():
        key = (mid, bucket // size * size)
        a = out.get(key)
        if a is None:
            out[key] = list(p)
            continue
        a[0] = min(a[0], p[0])
        a[1] = max(a[1], p[1])
        a[2] += p[2]
        a[3] += p[3]
        if p[5] >= a[5]:
            a[4], a[5] = p[4], p[5]
    return out


async def ingest_batch(
    session: AsyncSession,
    device: Device,
    seq: int,
    points: Sequence[tuple[str, float, float]],
    *,
    now: float | None = None,
    prev: int | None = None,
) -> IngestResult:
    """Store one batch of ``(metric, unix_ts, value)`` points of ``device``, once.

    A batch whose ``seq`` is not above the device's last stored one was stored before (or
    superseded): it is acknowledged without storing anything. With ``prev`` (the device
    channel) it is stored only if ``prev <= last stored < seq``: a batch whose predecessor
    is missing is a ``gap`` and nothing is stored (the sender resends after ``last_seq``).
    Stored in the caller's transaction, so the acknowledgement is durable when the caller
    commits.
    """
    at = time.time() if now is None else now
    check_batch(seq, prev, points, at)
    ids = await metric_ids(session, {p[0] for p in points}) if points else {}
    rows = batch_rows(device, seq, points, at, prev, ids)
    return result_of(rows, *await write_batch(await session.connection(), rows))


def check_batch(
    seq: int, prev: int | None, points: Sequence[tuple[str, float, float]], at: float
) -> None:
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= MAX_SEQ:
        raise InvalidRequestError(f"seq must be an integer in [0, 2^63), not {seq!r}")
    if prev is not None and (
        isinstance(prev, bool) or not isinstance(prev, int) or not 0 <= prev < seq
    ):
        raise InvalidRequestError(f"prev must be an integer in [0, seq), not {prev!r}")
    validate_points(points, at)


def batch_rows(
    device: Device,
    seq: int,
    points: Sequence[tuple[str, float, float]],
    at: float,
    prev: int | None,
    ids: dict[str, int],
) -> BatchRows:
    raw: dict[tuple[int, float], float] = {}
    for metric, ts, value in points:  # one value per (metric, ts): the last one sent wins
        raw[(ids[metric], float(ts))] = float(value)
    m1 = _aggregate(raw, 60)
    h1 = _merge(m1, 3600)
    newest: dict[int, tuple[float, float]] = {}
    for (mid, _), a in h1.items():
        if mid not in newest or a[5] >= newest[mid][0]:
            newest[mid] = (a[5], a[4])
    return BatchRows(device.num, seq, at, raw, m1, h1, newest, prev)


def result_of(rows: BatchRows, stored: bool, last: int) -> IngestResult:
    gap = not stored and last < rows.seq
    return IngestResult(
        stored=stored,
        duplicate=not stored and not gap,
        acked_seq=last if gap else rows.seq,
        last_seq=last,
        points=len(rows.raw) if stored else 0,
        gap=gap,
    )


# ----------------------------------------------------------------------------- reading


async def device_nums(
    session: AsyncSession, tenant_id: str, device_ids: Sequence[str]
) -> dict[int, str]:
    """num → id of the tenant's devices among ``device_ids`` (others are left out)."""
    out: dict[int, str] = {}
    ids = list(dict.fromkeys(device_ids))
    for i in range(0, len(ids), 1000):
        rows = await session.execute(
            select(Device.num, Device.id).where(
                Device.tenant_id == tenant_id, Device.id.in_(ids[i : i + 1000])
            )
        )
        out.update((int(n), str(d)) for n, d in rows.all())
    return out


async def latest_values(
    session: AsyncSession, tenant_id: str, metric: str, device_ids: list[str]
) -> dict[str, tuple[float, float]]:
    """device_id → (ts, value) of the newest ``metric`` point of each device that has one."""
    mid = (await lookup_metric_ids(session, [metric])).get(metric)
    if mid is None or not device_ids:
        return {}
    nums = await device_nums(session, tenant_id, device_ids)
    conn = await session.connection()
    out: dict[str, tuple[float, float]] = {}
    keys = list(nums)
    for i in range(0, len(keys), 1000):
        chunk = keys[i : i + 1000]
        sql = (
            "SELECT device_num, ts, value FROM telemetry_latest WHERE metric_id = "
            f"{placeholders(conn, 1, 1)} AND device_num IN ({placeholders(conn, len(chunk), 2)})"
        )
        for n, ts, v in await fetch(conn, sql, (mid, *chunk)):
            out[nums[int(n)]] = (float(ts), float(v))
    return out


async def device_latest(session: AsyncSession, device: Device) -> dict[str, tuple[float, float]]:
    """metric name → (ts, value) of every metric the device has reported."""
    conn = await session.connection()
    sql = (
        "SELECT m.name, l.ts, l.value FROM telemetry_latest l JOIN telemetry_metrics m "
        f"ON m.id = l.metric_id WHERE l.device_num = {placeholders(conn, 1, 1)} ORDER BY m.name"
    )
    rows = await fetch(conn, sql, (device.num,))
    return {str(n): (float(t), float(v)) for n, t, v in rows}


async def recent_points(
    session: AsyncSession,
    tenant_id: str,
    metric: str,
    device_ids: list[str],
    since: float,
    until: float,
) -> dict[str, list[tuple[float, float]]]:
    """device_id → raw (ts, value) points of ``metric`` in [since, until], oldest first
    (for alert evaluation; devices without points are left out)."""
    mid = (await lookup_metric_ids(session, [metric])).get(metric)
    if mid is None or not device_ids:
        return {}
    nums = await device_nums(session, tenant_id, device_ids)
    conn = await session.connection()
    out: dict[str, list[tuple[float, float]]] = {}
    keys = sorted(nums)
    for i in range(0, len(keys), 500):  # one query per 500 devices, primary-key range scans
        chunk = keys[i : i + 500]
        b, c, d = placeholders(conn, 3).split(", ")
        sql = (
            f"SELECT device_num, ts, value FROM telemetry_raw WHERE metric_id = {b} "
            f"AND ts >= {c} AND ts <= {d} AND device_num IN ({placeholders(conn, len(chunk), 4)}) "
            "ORDER BY device_num, ts"
        )
        for num, ts, value in await fetch(conn, sql, (mid, since, until, *chunk)):
            out.setdefault(nums[int(num)], []).append((float(ts), float(value)))
    return out


# ----------------------------------------------------------------------------- retention


class RetentionSettings(Protocol):
    telemetry_raw_retention_h: float
    telemetry_1m_retention_d: float
    telemetry_1h_retention_d: float


async def apply_retention(
    session: AsyncSession, settings: RetentionSettings, now: float | None = None
) -> int:
    """Remove raw points, 1 m and 1 h rollups older than their retention, and everything of
    deleted devices. Idempotent, so replicas may run this at the same time. Returns how
    many (device, metric) series were visited.

    SQLite deletes walk the primary key per (device, metric) — no index on time needed.
    PostgreSQL drops whole expired partitions instead (``telemetry_partitions``)."""
    at = time.time() if now is None else now
    conn = await session.connection()
    pairs = await fetch(conn, "SELECT device_num, metric_id FROM telemetry_latest")
    live = {
        int(n)
        for (n,) in await fetch(
            conn,
            "SELECT l.device_num FROM telemetry_latest l JOIN devices d "
            "ON d.num = l.device_num GROUP BY l.device_num",
        )
    }
    cutoffs = {
        "telemetry_raw": ("ts", at - settings.telemetry_raw_retention_h * 3600),
        "telemetry_1m": ("bucket_ts", math.ceil(at - settings.telemetry_1m_retention_d * 86400)),
        "telemetry_1h": ("bucket_ts", math.ceil(at - settings.telemetry_1h_retention_d * 86400)),
    }
    gone = sorted({int(n) for n, _ in pairs} - live)
    if is_pg(conn):
        await drop_expired(conn, {t: c for t, (_, c) in cutoffs.items()})
        for table in (*cutoffs, "telemetry_latest", "telemetry_seq"):
            if gone:
                await conn.exec_driver_sql(
                    f"DELETE FROM {table} WHERE device_num = ANY($1::integer[])", (gone,)
                )
        return len(pairs)
    marks = placeholders(conn, 3).split(", ")
    with off_loop():  # long deletes: on the writer's thread, the loop serves meanwhile
        await _delete_expired(conn, marks, cutoffs, pairs, live, gone)
    return len(pairs)


async def _delete_expired(
    conn: AsyncConnection,
    marks: list[str],
    cutoffs: dict[str, tuple[str, float]],
    pairs: list[tuple[Any, ...]],
    live: set[int],
    gone: list[int],
) -> None:
    for table, (column, cutoff) in cutoffs.items():
        sql = (
            f"DELETE FROM {table} WHERE device_num = {marks[0]} AND metric_id = {marks[1]} "
            f"AND {column} < {marks[2]}"
        )
        await executemany(
            conn, sql, [(int(n), int(m), cutoff if int(n) in live else FOREVER) for n, m in pairs]
        )
    if gone:
        for table in ("telemetry_latest", "telemetry_seq"):
            await executemany(
                conn,
                f"DELETE FROM {table} WHERE device_num = {marks[0]}",
                [(n,) for n in gone],
            )
