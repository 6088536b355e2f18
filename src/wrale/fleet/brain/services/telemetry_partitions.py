"""PostgreSQL: the telemetry tables partitioned by time, their partitions made ahead and
expired ones dropped.

``telemetry_raw`` (by ``ts``) and ``telemetry_1m`` (by ``bucket_ts``) have one partition
per UTC day, ``telemetry_1h`` one per 30 days (kept 730 days: some 25 partitions, not 730).
The partitions live in their own schema (``telemetry_parts``) so the schema comparison of
the migrations sees the parent tables only. A DEFAULT partition catches a point outside
every partition (an old backfill; before the first duty ran): nothing is refused.

Retention drops a partition once all of it is older than the retention: a ``DROP TABLE``
instead of deleting millions of rows (no dead tuples, no vacuum debt). Rows of the newest
expired day stay until their whole partition has expired (at most one period longer than
the retention); the DEFAULT partition is trimmed by ``DELETE`` to the exact cutoff.

Creating or dropping a partition briefly locks the parent table (ingest waits a moment):
the duty runs rarely, and gives up after ``LOCK_TIMEOUT`` rather than queue ingest behind
a long query (it is retried next interval). SQLite keeps plain tables: nothing here runs.
"""

# ruff: noqa: S608 - SQL text interpolates only integers and constant table names
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models.telemetry import PARTITION_SCHEMA
from wrale.fleet.brain.services.telemetry_store import fetch, is_pg

DAY = 86_400
AHEAD_S = 3 * DAY  # partitions exist this far ahead (points may be up to 1 day ahead)
PARTITIONS_INTERVAL_S = 3600.0  # how often the duty runs
LOCK_TIMEOUT = "5s"


@dataclass(frozen=True, slots=True)
class Scheme:
    """How one table is partitioned: by ``column``, ``period_s`` seconds a partition."""

    table: str
    column: str
    period_s: int
    fillfactor: int  # rollup buckets are updated in place: room for HOT updates


SCHEMES = (
    Scheme("telemetry_raw", "ts", DAY, 100),
    Scheme("telemetry_1m", "bucket_ts", DAY, 80),
    Scheme("telemetry_1h", "bucket_ts", 30 * DAY, 80),
)
BY_TABLE = {s.table: s for s in SCHEMES}


@dataclass(frozen=True, slots=True)
class Range:
    name: str
    lo: float
    hi: float


def period_start(s: Scheme, t: float) -> int:
    return int(t // s.period_s) * s.period_s


def partition_name(s: Scheme, start: int) -> str:
    return f"{s.table}_p{time.strftime('%Y%m%d', time.gmtime(start))}"


def default_name(s: Scheme) -> str:
    return f"{PARTITION_SCHEMA}.{s.table}_default"


def create_sql(s: Scheme, start: int) -> str:
    """The partition of the period starting at ``start`` (an integer: safe to inline)."""
    return (
        f"CREATE TABLE IF NOT EXISTS {PARTITION_SCHEMA}.{partition_name(s, start)} "
        f"PARTITION OF {s.table} FOR VALUES FROM ({int(start)}) TO ({int(start) + s.period_s}) "
        f"WITH (fillfactor = {s.fillfactor})"
    )


def wanted_starts(s: Scheme, now: float, ahead_s: float = AHEAD_S) -> list[int]:
    """Starts of the periods from the current one to ``now + ahead_s``."""
    first, last = period_start(s, now), period_start(s, now + ahead_s)
    return list(range(first, last + 1, s.period_s))


def expired(ranges: list[Range], cutoff: float) -> list[Range]:
    """The partitions holding only rows older than ``cutoff``."""
    return [r for r in ranges if r.hi <= cutoff]


_BOUND = re.compile(r"FROM \('?([-+0-9.e]+)'?\) TO \('?([-+0-9.e]+)'?\)")


async def ranges(conn: AsyncConnection, s: Scheme) -> list[Range]:
    """The table's range partitions (the DEFAULT one is left out), oldest first."""
    rows = await fetch(
        conn,
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = $1::regclass",
        (s.table,),
    )
    out = []
    for name, bound in rows:
        m = _BOUND.search(str(bound))
        if m is not None:
            out.append(Range(str(name), float(m.group(1)), float(m.group(2))))
    return sorted(out, key=lambda r: r.lo)


async def _create(conn: AsyncConnection, s: Scheme, start: int) -> None:
    """Create one partition; rows of its period already in the DEFAULT partition (the
    duty was down) move into it, or PostgreSQL would refuse the new partition."""
    lo, hi = int(start), int(start) + s.period_s
    where = f"{s.column} >= {lo} AND {s.column} < {hi}"
    probe = f"SELECT EXISTS (SELECT 1 FROM {default_name(s)} WHERE {where})"
    (waiting,) = (await fetch(conn, probe))[0]
    if not waiting:
        await conn.exec_driver_sql(create_sql(s, start))
        return
    # no insert may land in the DEFAULT partition between the move and the new partition
    await conn.exec_driver_sql(f"LOCK TABLE {s.table} IN SHARE ROW EXCLUSIVE MODE")
    await conn.exec_driver_sql(
        f"CREATE TEMPORARY TABLE wrale_moved (LIKE {s.table}) ON COMMIT DROP"
    )
    await conn.exec_driver_sql(
        f"WITH d AS (DELETE FROM {default_name(s)} WHERE {where} RETURNING *) "
        "INSERT INTO pg_temp.wrale_moved SELECT * FROM d"
    )
    await conn.exec_driver_sql(create_sql(s, start))
    await conn.exec_driver_sql(f"INSERT INTO {s.table} SELECT * FROM pg_temp.wrale_moved")
    await conn.exec_driver_sql("DROP TABLE pg_temp.wrale_moved")


async def ensure_partitions(
    session: AsyncSession, now: float | None = None, ahead_s: float = AHEAD_S
) -> list[str]:
    """Create the missing partitions from the current period to ``now + ahead_s``; returns
    their names (none on SQLite). Idempotent: replicas may race, the loser's
    ``IF NOT EXISTS`` does nothing."""
    conn = await session.connection()
    if not is_pg(conn):
        return []
    at = time.time() if now is None else now
    await conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    made = []
    for s in SCHEMES:
        have = {int(r.lo) for r in await ranges(conn, s)}
        for start in wanted_starts(s, at, ahead_s):
            if start not in have:
                await _create(conn, s, start)
                made.append(partition_name(s, start))
    return made


async def drop_expired(conn: AsyncConnection, cutoffs: dict[str, float]) -> list[str]:
    """Per table ``{table: cutoff}``: drop the partitions older than the cutoff and trim
    the DEFAULT partition to it. Returns the dropped partitions' names."""
    await conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    dropped = []
    for table, cutoff in cutoffs.items():
        s = BY_TABLE[table]
        for r in expired(await ranges(conn, s), cutoff):
            await conn.exec_driver_sql(f"DROP TABLE IF EXISTS {PARTITION_SCHEMA}.{r.name}")
            dropped.append(r.name)
        await conn.exec_driver_sql(
            f"DELETE FROM {default_name(s)} WHERE {s.column} < $1", (cutoff,)
        )
    return dropped


class _HasDb(Protocol):
    db: Database


async def partition_duty(ctx: _HasDb, now: float) -> None:
    """The background duty (lease-guarded, every ``PARTITIONS_INTERVAL_S``): partitions ahead."""
    if ctx.db.is_sqlite:
        return
    async with ctx.db.session() as s:
        await ensure_partitions(s, now)
