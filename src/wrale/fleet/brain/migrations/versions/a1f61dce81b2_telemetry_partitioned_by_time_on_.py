"""telemetry partitioned by time on PostgreSQL, telemetry_latest by metric

On PostgreSQL ``telemetry_raw`` (by ``ts``, a partition per day), ``telemetry_1m`` (by
``bucket_ts``, per day) and ``telemetry_1h`` (per 30 days) become partitioned tables: each
existing table is renamed, the partitioned one created with the same columns and key, a
DEFAULT partition and the partitions of the periods holding rows (and 3 days ahead) are
made in the ``telemetry_parts`` schema, the rows are moved and the old table dropped. From
then on ``services/telemetry_partitions.py`` makes partitions ahead and drops expired ones.
The DDL is spelled out here (not imported) so this revision stays what it was.

SQLite keeps plain tables; both get the index of ``telemetry_latest`` by metric.

Revision ID: a1f61dce81b2
Revises: 4b44946a5582
Create Date: 2026-12-06 19:58:35.002350
"""

# ruff: noqa: S608 - SQL text interpolates only integers and constant names
from __future__ import annotations

import time

from alembic import op

revision = "a1f61dce81b2"
down_revision = "4b44946a5582"
branch_labels = None
depends_on = None

SCHEMA = "telemetry_parts"
DAY = 86_400
AHEAD_S = 3 * DAY
OLDEST_S = 800 * DAY  # older rows go to the DEFAULT partition (retention removes them)
# table, partition column, period, fillfactor of its partitions
TABLES = (
    ("telemetry_raw", "ts", DAY, 100),
    ("telemetry_1m", "bucket_ts", DAY, 80),
    ("telemetry_1h", "bucket_ts", 30 * DAY, 80),
)


def _periods(table: str, column: str, period: int) -> list[int]:
    """Starts of the periods holding rows of ``table`` (recent ones) and those ahead."""
    now = time.time()
    rows = op.get_bind().exec_driver_sql(
        f"SELECT DISTINCT (floor({column} / {period}) * {period})::bigint FROM {table} "
        f"WHERE {column} >= {int(now - OLDEST_S)}"
    )
    starts = {int(r[0]) for r in rows}
    first = int(now // period) * period
    starts.update(range(first, int((now + AHEAD_S) // period) * period + 1, period))
    return sorted(starts)


def _partition(table: str, column: str, period: int, fillfactor: int) -> None:
    old = f"{table}_unpartitioned"
    key = f"device_num, metric_id, {column}"
    op.execute(f"ALTER TABLE {table} RENAME TO {old}")
    op.execute(f"ALTER TABLE {old} RENAME CONSTRAINT pk_{table} TO pk_{old}")
    op.execute(
        f"CREATE TABLE {table} (LIKE {old} INCLUDING DEFAULTS) PARTITION BY RANGE ({column})"
    )
    op.execute(f"ALTER TABLE {table} ADD CONSTRAINT pk_{table} PRIMARY KEY ({key})")
    op.execute(f"CREATE TABLE {SCHEMA}.{table}_default PARTITION OF {table} DEFAULT")
    for start in _periods(old, column, period):
        day = time.strftime("%Y%m%d", time.gmtime(start))
        op.execute(
            f"CREATE TABLE {SCHEMA}.{table}_p{day} PARTITION OF {table} "
            f"FOR VALUES FROM ({start}) TO ({start + period}) WITH (fillfactor = {fillfactor})"
        )
    op.execute(f"INSERT INTO {table} SELECT * FROM {old}")
    op.execute(f"DROP TABLE {old}")


def _unpartition(table: str, column: str) -> None:
    old = f"{table}_partitioned"
    op.execute(f"ALTER TABLE {table} RENAME TO {old}")
    op.execute(f"ALTER TABLE {old} RENAME CONSTRAINT pk_{table} TO pk_{old}")
    op.execute(f"CREATE TABLE {table} (LIKE {old} INCLUDING DEFAULTS)")
    key = f"device_num, metric_id, {column}"
    op.execute(f"ALTER TABLE {table} ADD CONSTRAINT pk_{table} PRIMARY KEY ({key})")
    op.execute(f"INSERT INTO {table} SELECT * FROM {old}")
    op.execute(f"DROP TABLE {old}")  # and its partitions


def upgrade() -> None:
    with op.batch_alter_table("telemetry_latest", schema=None) as batch_op:
        batch_op.create_index(
            "ix_telemetry_latest_metric_id", ["metric_id", "device_num"], unique=False
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        for table, column, period, fillfactor in TABLES:
            _partition(table, column, period, fillfactor)
        # room for HOT updates of the newest values (updated by every batch)
        op.execute("ALTER TABLE telemetry_latest SET (fillfactor = 70)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE telemetry_latest RESET (fillfactor)")
        for table, column, _, _ in TABLES:
            _unpartition(table, column)
        op.execute(f"DROP SCHEMA IF EXISTS {SCHEMA}")
    with op.batch_alter_table("telemetry_latest", schema=None) as batch_op:
        batch_op.drop_index("ix_telemetry_latest_metric_id")
