"""Many devices' telemetry batches stored at once (the device channel's group commit):
``ingest_batches``, and on PostgreSQL one statement for every device's batch.

No business rules of its own: each batch is checked and stored exactly as
``telemetry.ingest_batch`` stores it alone (sequence marks, dedupe, rollups).
"""

# ruff: noqa: S608 - SQL text interpolates only placeholders and constant table names
from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from wrale.fleet.brain.models import Device
from wrale.fleet.brain.services.telemetry import (
    IngestResult,
    batch_rows,
    check_batch,
    result_of,
)
from wrale.fleet.brain.services.telemetry_store import (
    LATEST_SQL,
    RAW_SQL,
    BatchRows,
    agg_columns,
    fetch,
    is_pg,
    metric_ids,
    rollup_sql,
    write_batch,
)
from wrale.shared.errors import InvalidRequestError


async def ingest_batches(
    session: AsyncSession,
    batches: Sequence[tuple[Device, int, Sequence[tuple[str, float, float]], int | None]],
    *,
    now: float | None = None,
) -> list[IngestResult | None]:
    """``ingest_batch`` of many ``(device, seq, points, prev)`` at once, in order (the
    channel's group commit: on PostgreSQL one statement for all the devices). A batch
    ``ingest_batch`` would refuse is left out (None), for the caller to store alone."""
    at = time.time() if now is None else now
    ok: list[int] = []
    for i, (_, seq, points, prev) in enumerate(batches):
        try:
            check_batch(seq, prev, points, at)
        except InvalidRequestError:
            continue
        ok.append(i)
    names = {p[0] for i in ok for p in batches[i][2]}
    ids = await metric_ids(session, names) if names else {}
    rows = [
        batch_rows(batches[i][0], batches[i][1], batches[i][2], at, batches[i][3], ids) for i in ok
    ]
    written = await write_batches(await session.connection(), rows)
    out: list[IngestResult | None] = [None] * len(batches)
    for i, r, (stored, last) in zip(ok, rows, written, strict=True):
        out[i] = result_of(r, stored, last)
    return out


# PostgreSQL, many devices' batches (the channel's group commit): one statement for all,
# one batch per device (a statement does not see its own changes: a device's next batch
# goes in the next statement). Each device's batch is stored iff its mark advanced
# (``prev`` NULL: any mark below ``seq``), exactly as ``telemetry_store``'s one-batch statements.
_PG_MANY = (
    "WITH b AS (SELECT * FROM unnest($1::integer[], $2::bigint[], $3::bigint[], "
    "$4::float8[]) AS b(num, seq, prev, at)), "
    "su AS (UPDATE telemetry_seq t SET last_seq = b.seq, updated_at = b.at FROM b "
    "WHERE t.device_num = b.num AND t.last_seq < b.seq "
    "AND (b.prev IS NULL OR t.last_seq >= b.prev) RETURNING t.device_num), "
    "si AS (INSERT INTO telemetry_seq (device_num, last_seq, updated_at) "
    "SELECT b.num, b.seq, b.at FROM b WHERE (b.prev IS NULL OR b.prev = 0) AND NOT EXISTS "
    "(SELECT 1 FROM telemetry_seq t WHERE t.device_num = b.num) ORDER BY b.num "
    "ON CONFLICT (device_num) DO NOTHING RETURNING device_num), "
    "s AS (SELECT device_num FROM su UNION ALL SELECT device_num FROM si), "
    "r AS ("
    + RAW_SQL.format(
        source="SELECT * FROM unnest($5::integer[], $6::smallint[], $7::float8[], "
        "$8::float8[]) AS u(d, m, t, v) WHERE d IN (SELECT device_num FROM s)"
    )
    + "), m AS ("
    + rollup_sql(
        "telemetry_1m",
        "LEAST",
        "GREATEST",
        "SELECT * FROM unnest($9::integer[], $10::smallint[], $11::bigint[], $12::float8[], "
        "$13::float8[], $14::float8[], $15::integer[], $16::float8[], $17::float8[]) "
        "AS u(d) WHERE d IN (SELECT device_num FROM s)",
    )
    + "), h AS ("
    + rollup_sql(
        "telemetry_1h",
        "LEAST",
        "GREATEST",
        "SELECT * FROM unnest($18::integer[], $19::smallint[], $20::bigint[], $21::float8[], "
        "$22::float8[], $23::float8[], $24::integer[], $25::float8[], $26::float8[]) "
        "AS u(d) WHERE d IN (SELECT device_num FROM s)",
    )
    + "), l AS ("
    + LATEST_SQL.format(
        source="SELECT * FROM unnest($27::integer[], $28::smallint[], $29::float8[], "
        "$30::float8[]) AS u(d) WHERE d IN (SELECT device_num FROM s)"
    )
    + ") SELECT b.num, EXISTS (SELECT 1 FROM s WHERE s.device_num = b.num), "
    "(SELECT t.last_seq FROM telemetry_seq t WHERE t.device_num = b.num) FROM b"
)


def _many_params(batches: Sequence[BatchRows]) -> tuple[list[Any], ...]:
    """The columns of ``_PG_MANY``: devices in order, each table's rows in key order (the
    same lock order in every transaction)."""
    order = sorted(batches, key=lambda b: b.num)
    raw: list[list[Any]] = [[], [], [], []]
    m1: list[list[Any]] = [[] for _ in range(9)]
    h1: list[list[Any]] = [[] for _ in range(9)]
    latest: list[list[Any]] = [[], [], [], []]
    for b in order:
        n = b.num
        keys = sorted(b.raw)
        values = b.raw
        raw[0] += [n] * len(keys)
        raw[1] += [m for m, _ in keys]
        raw[2] += [t for _, t in keys]
        raw[3] += [values[k] for k in keys]
        for agg, cols in ((b.m1, m1), (b.h1, h1)):
            cols[0] += [n] * len(agg)
            for i, col in enumerate(agg_columns(dict(sorted(agg.items()))), 1):
                cols[i] += col
        ids = sorted(b.latest)
        latest[0] += [n] * len(ids)
        latest[1] += ids
        latest[2] += [float(b.latest[m][0]) for m in ids]
        latest[3] += [float(b.latest[m][1]) for m in ids]
    heads = (
        [b.num for b in order],
        [b.seq for b in order],
        [b.prev for b in order],
        [b.at for b in order],
    )
    return (*heads, *(_grid(c) for c in (*raw, *m1, *h1, *latest)))


def _grid(column: list[Any]) -> list[Any]:
    """A column as a near-square 2-D array (the last row padded with NULLs: their device is
    NULL, so no row is made of them; ``unnest`` reads it row by row). asyncpg checks every
    element of a flat list for being a sub-array (an ``isinstance`` on an ABC, ~0.25 µs),
    but only the first row of a 2-D one: a 4,000-element array costs 0.3 ms, not 1.3."""
    n = len(column)
    if n < 64:
        return column
    width = math.isqrt(n - 1) + 1
    rows = [column[i : i + width] for i in range(0, n, width)]
    rows[-1] += [None] * (width - len(rows[-1]))
    return rows


async def write_batches(
    conn: AsyncConnection, batches: Sequence[BatchRows]
) -> list[tuple[bool, int]]:
    """``write_batch`` of each of ``batches``, in order; on PostgreSQL one statement for
    every device's batch (a device's second batch in a following one, after its first)."""
    if not is_pg(conn):
        return [await write_batch(conn, b) for b in batches]
    results: dict[int, tuple[bool, int]] = {}
    rounds: list[list[tuple[int, BatchRows]]] = []
    seen: dict[int, int] = {}  # device → its batches so far
    for i, b in enumerate(batches):
        k = seen[b.num] = seen.get(b.num, -1) + 1
        if k == len(rounds):
            rounds.append([])
        rounds[k].append((i, b))
    for part in rounds:
        if len(part) == 1:
            results[part[0][0]] = await write_batch(conn, part[0][1])
            continue
        found = {
            int(n): (bool(ok), int(last) if last is not None else -1)
            for n, ok, last in await fetch(conn, _PG_MANY, _many_params([b for _, b in part]))
        }
        for i, b in part:
            ok, last = found[b.num]
            results[i] = (True, b.seq) if ok else (False, last)
    return [results[i] for i in range(len(batches))]
