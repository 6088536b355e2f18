"""Low-level telemetry storage helpers: the metric-name dictionary (cached per process) and
dialect-specific SQL for the hot paths (raw DBAPI executemany, upserts).

No business rules here (validation and idempotency live in ``services/telemetry.py``).
"""

# ruff: noqa: S608 - SQL text interpolates only placeholders and constant table names
from __future__ import annotations

import sqlite3
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from wrale.shared.errors import InvalidRequestError

MAX_METRICS = 32_000  # the dictionary's ids are SMALLINT

# engine → {metric name → id}; ids never change once assigned, so this is safe to share
# between requests (and replicas: each learns the same ids from the database).
_CACHE: weakref.WeakKeyDictionary[Engine, dict[str, int]] = weakref.WeakKeyDictionary()
_UNCOMMITTED = "wrale_telemetry_uncommitted_metrics"


def placeholders(conn: AsyncConnection, count: int, start: int = 1) -> str:
    """``?, ?, ?`` (SQLite) or ``$1, $2, $3`` (asyncpg) for raw driver SQL."""
    if conn.dialect.paramstyle == "qmark":
        return ", ".join("?" * count)
    return ", ".join(f"${i}" for i in range(start, start + count))


def is_pg(conn: AsyncConnection) -> bool:
    return conn.dialect.name == "postgresql"


def _cache(conn: AsyncConnection) -> dict[str, int]:
    engine = conn.engine.sync_engine
    found = _CACHE.get(engine)
    if found is None:
        found = _CACHE[engine] = {}
    return found


async def _select(conn: AsyncConnection, names: Sequence[str]) -> dict[str, int]:
    marks = placeholders(conn, len(names))
    sql = f"SELECT name, id FROM telemetry_metrics WHERE name IN ({marks})"
    return {str(n): int(i) for n, i in await fetch(conn, sql, tuple(names))}


async def lookup_metric_ids(session: AsyncSession, names: Iterable[str]) -> dict[str, int]:
    """Ids of the metrics that exist among ``names`` (unknown names are left out)."""
    conn = await session.connection()
    cache = _cache(conn)
    wanted = set(names)
    known = {n: cache[n] for n in wanted if n in cache}
    missing = sorted(wanted - known.keys())
    if missing:
        found = await _select(conn, missing)
        pending: set[str] = session.info.get(_UNCOMMITTED, set())
        cache.update({n: i for n, i in found.items() if n not in pending})
        known.update(found)
    return known


async def metric_ids(session: AsyncSession, names: Iterable[str]) -> dict[str, int]:
    """Ids of ``names``, assigning new ones (insert-or-ignore, then select: safe when several
    replicas see a new name at once). Ids assigned by this still-open transaction are not
    cached until a later session sees them committed."""
    wanted = set(names)
    known = await lookup_metric_ids(session, wanted)
    new = sorted(wanted - known.keys())
    if not new:
        return known
    conn = await session.connection()
    count = (await conn.exec_driver_sql("SELECT COUNT(*) FROM telemetry_metrics")).scalar_one()
    if int(count) + len(new) > MAX_METRICS:
        raise InvalidRequestError(
            f"too many distinct metric names (at most {MAX_METRICS} per installation)"
        )
    sql = f"INSERT INTO telemetry_metrics (name) VALUES ({placeholders(conn, 1)})"
    await conn.exec_driver_sql(sql + " ON CONFLICT (name) DO NOTHING", [(n,) for n in new])
    session.info.setdefault(_UNCOMMITTED, set()).update(new)
    known.update(await _select(conn, new))
    return known


# ----------------------------------------------------------------------------- hot-path SQL

Agg = dict[
    tuple[int, int], list[float]
]  # (metric_id, bucket_ts) → min, max, sum, count, last, last_ts


@dataclass(frozen=True, slots=True)
class BatchRows:
    """One batch, aggregated in Python: what each table receives."""

    num: int
    seq: int
    at: float
    raw: dict[tuple[int, float], float]  # (metric_id, ts) → value
    m1: Agg
    h1: Agg
    latest: dict[int, tuple[float, float]]  # metric_id → (ts, value)
    prev: int | None = None  # the sender's previous seq: store iff prev <= last stored < seq


def rollup_sql(table: str, least: str, greatest: str, source: str) -> str:
    """Merge partial aggregates into buckets (additive: min, max, sum, count, last)."""
    cols = 'device_num, metric_id, bucket_ts, "min", "max", "sum", "count", "last", last_ts'
    return (
        f"INSERT INTO {table} ({cols}) {source} "
        "ON CONFLICT (device_num, metric_id, bucket_ts) DO UPDATE SET "
        f'"min" = {least}({table}."min", excluded."min"), '
        f'"max" = {greatest}({table}."max", excluded."max"), '
        f'"sum" = {table}."sum" + excluded."sum", '
        f'"count" = {table}."count" + excluded."count", '
        f'"last" = CASE WHEN excluded.last_ts >= {table}.last_ts '
        f'THEN excluded."last" ELSE {table}."last" END, '
        f"last_ts = {greatest}({table}.last_ts, excluded.last_ts)"
    )


_SEQ = (
    "INSERT INTO telemetry_seq (device_num, last_seq, updated_at) {source} "
    "ON CONFLICT (device_num) DO UPDATE "
    "SET last_seq = excluded.last_seq, updated_at = excluded.updated_at "
    "WHERE telemetry_seq.last_seq < excluded.last_seq RETURNING last_seq"
)
LATEST_SQL = (
    "INSERT INTO telemetry_latest (device_num, metric_id, ts, value) {source} "
    "ON CONFLICT (device_num, metric_id) DO UPDATE "
    "SET ts = excluded.ts, value = excluded.value WHERE excluded.ts >= telemetry_latest.ts"
)
RAW_SQL = (
    "INSERT INTO telemetry_raw (device_num, metric_id, ts, value) {source} ON CONFLICT DO NOTHING"
)

# SQLite: plain VALUES rows, run back to back on the driver's own thread (one hop).
_SQLITE_SEQ = _SEQ.format(source="VALUES (?, ?, ?)")
_SQLITE_RAW = RAW_SQL.format(source="VALUES (?, ?, ?, ?)")
_SQLITE_LATEST = LATEST_SQL.format(source="VALUES (?, ?, ?, ?)")
_SQLITE_ROLLUP = {
    t: rollup_sql(t, "MIN", "MAX", "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
    for t in ("telemetry_1m", "telemetry_1h")
}

# With the sender's ``prev``: advance only from a mark in [prev, seq), or create the mark
# when the sender starts from nothing (prev = 0). Written before any read (the write lock).
_SQLITE_SEQ_PREV = (
    "UPDATE telemetry_seq SET last_seq = ?, updated_at = ? "
    "WHERE device_num = ? AND last_seq >= ? AND last_seq < ?"
)
_SQLITE_SEQ_FIRST = (
    "INSERT INTO telemetry_seq (device_num, last_seq, updated_at) VALUES (?, ?, ?) "
    "ON CONFLICT (device_num) DO NOTHING"
)
_PG_SEQ = "WITH s AS (" + _SEQ.format(source="VALUES ($1::integer, $2::bigint, $3::float8)") + ")"
_PG_SEQ_PREV = (
    "WITH su AS (UPDATE telemetry_seq SET last_seq = $2::bigint, updated_at = $3::float8 "
    "WHERE device_num = $1::integer AND last_seq >= $26::bigint AND last_seq < $2::bigint "
    "RETURNING last_seq), "
    "si AS (INSERT INTO telemetry_seq (device_num, last_seq, updated_at) "
    "SELECT $1::integer, $2::bigint, $3::float8 WHERE $26::bigint = 0 AND NOT EXISTS "
    "(SELECT 1 FROM telemetry_seq WHERE device_num = $1::integer) "
    "ON CONFLICT (device_num) DO NOTHING RETURNING last_seq), "
    "s AS (SELECT last_seq FROM su UNION ALL SELECT last_seq FROM si)"
)

# PostgreSQL: the whole batch in one statement (data-modifying CTEs over unnested arrays,
# each insert conditional on the sequence number having advanced): one round trip.
_PG_REST = (
    ", r AS ("
    + RAW_SQL.format(
        source="SELECT $1::integer, m, t, v FROM unnest($4::smallint[], $5::float8[], "
        "$6::float8[]) AS u(m, t, v) WHERE EXISTS (SELECT 1 FROM s)"
    )
    + "), m AS ("
    + rollup_sql(
        "telemetry_1m",
        "LEAST",
        "GREATEST",
        "SELECT $1::integer, * FROM unnest($7::smallint[], $8::bigint[], $9::float8[], "
        "$10::float8[], $11::float8[], $12::integer[], $13::float8[], $14::float8[]) "
        "WHERE EXISTS (SELECT 1 FROM s)",
    )
    + "), h AS ("
    + rollup_sql(
        "telemetry_1h",
        "LEAST",
        "GREATEST",
        "SELECT $1::integer, * FROM unnest($15::smallint[], $16::bigint[], $17::float8[], "
        "$18::float8[], $19::float8[], $20::integer[], $21::float8[], $22::float8[]) "
        "WHERE EXISTS (SELECT 1 FROM s)",
    )
    + "), l AS ("
    + LATEST_SQL.format(
        source="SELECT $1::integer, * FROM unnest($23::smallint[], $24::float8[], "
        "$25::float8[]) WHERE EXISTS (SELECT 1 FROM s)"
    )
    + ") SELECT (SELECT last_seq FROM s), "
    "(SELECT last_seq FROM telemetry_seq WHERE device_num = $1::integer)"
)
_PG_BATCH = _PG_SEQ + _PG_REST
_PG_BATCH_PREV = _PG_SEQ_PREV + _PG_REST


def agg_columns(agg: Agg) -> list[list[Any]]:
    cols: list[list[Any]] = [[], [], [], [], [], [], [], []]
    for (mid, bucket), a in agg.items():
        cols[0].append(mid)
        cols[1].append(bucket)
        cols[2].append(float(a[0]))
        cols[3].append(float(a[1]))
        cols[4].append(float(a[2]))
        cols[5].append(int(a[3]))
        cols[6].append(float(a[4]))
        cols[7].append(float(a[5]))
    return cols


async def _write_pg(conn: AsyncConnection, b: BatchRows) -> tuple[bool, int]:
    raw = sorted(b.raw.items())  # in key order: each index page is visited in turn, once
    params = (
        b.num,
        b.seq,
        b.at,
        [m for (m, _), _ in raw],
        [t for (_, t), _ in raw],
        [v for _, v in raw],
        *agg_columns(b.m1),
        *agg_columns(b.h1),
        list(b.latest),
        [float(t) for t, _ in b.latest.values()],
        [float(v) for _, v in b.latest.values()],
    )
    if b.prev is None:
        stored, last = (await fetch(conn, _PG_BATCH, params))[0]
    else:
        stored, last = (await fetch(conn, _PG_BATCH_PREV, (*params, b.prev)))[0]
    if stored is not None:
        return True, int(stored)
    return False, int(last) if last is not None else -1


def _advance_sqlite(c: sqlite3.Connection, b: BatchRows) -> bool:
    if b.prev is None:
        return bool(c.execute(_SQLITE_SEQ, (b.num, b.seq, b.at)).fetchall())
    if c.execute(_SQLITE_SEQ_PREV, (b.seq, b.at, b.num, b.prev, b.seq)).rowcount == 1:
        return True
    return b.prev == 0 and c.execute(_SQLITE_SEQ_FIRST, (b.num, b.seq, b.at)).rowcount == 1


def _write_sqlite_sync(c: sqlite3.Connection, b: BatchRows) -> tuple[bool, int]:
    if _advance_sqlite(c, b):
        n = b.num
        c.executemany(_SQLITE_RAW, [(n, m, t, v) for (m, t), v in sorted(b.raw.items())])
        for table, agg in (("telemetry_1m", b.m1), ("telemetry_1h", b.h1)):
            c.executemany(_SQLITE_ROLLUP[table], [(n, m, k, *a) for (m, k), a in agg.items()])
        c.executemany(_SQLITE_LATEST, [(n, m, t, v) for m, (t, v) in b.latest.items()])
        return True, b.seq
    row = c.execute("SELECT last_seq FROM telemetry_seq WHERE device_num = ?", (b.num,)).fetchone()
    return False, int(row[0]) if row else -1


async def write_batch(conn: AsyncConnection, b: BatchRows) -> tuple[bool, int]:
    """Advance the device's sequence and, only if it advanced, store the batch.
    With ``b.prev`` it advances only if ``prev <= last stored < seq`` (no gap), atomically.
    Returns (stored, the device's last stored seq; -1 when none)."""
    if is_pg(conn):
        return await _write_pg(conn, b)
    driver = (await conn.get_raw_connection()).driver_connection
    run = getattr(driver, "_execute", None)  # aiosqlite: run a callable on its thread
    sqlite_conn = getattr(driver, "_conn", None)
    if run is None or not isinstance(sqlite_conn, sqlite3.Connection):
        raise RuntimeError("telemetry on SQLite needs the aiosqlite driver")
    result: tuple[bool, int] = await run(_write_sqlite_sync, sqlite_conn, b)
    return result


async def fetch(conn: AsyncConnection, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
    """Rows of one raw driver statement as plain tuples."""
    return [tuple(r) for r in (await conn.exec_driver_sql(sql, params)).all()]


async def executemany(conn: AsyncConnection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    if rows:
        await conn.exec_driver_sql(sql, list(rows))
