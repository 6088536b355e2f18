"""Telemetry tables: raw points, 1-minute and 1-hour rollups, the newest value of each
(device, metric), per-device batch sequence numbers and the metric-name dictionary.

Rows are keyed by ``Device.num`` and a small metric id (no foreign keys: ingest speed);
every key is a composite primary key, WITHOUT ROWID on SQLite, so range scans are cheap.

On PostgreSQL the raw points and both rollups are partitioned by time (RANGE on ``ts`` /
``bucket_ts``; ``services/telemetry_partitions.py`` creates the partitions ahead and drops
expired ones, so retention is a ``DROP TABLE``, not millions of deletes). Each table is
created with a DEFAULT partition, so a point outside every partition (an old backfill, or
before the first duty ran) is still stored. Tables whose rows are updated in place (the
rollups' partitions, the newest values) leave room in their pages (``fillfactor``), so
PostgreSQL updates them without touching the index (HOT updates).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import DDL, BigInteger, Float, Index, Integer, SmallInteger, String, event
from sqlalchemy.orm import Mapped, mapped_column

from wrale.fleet.brain.models.base import Base

_NO_ROWID = {"sqlite_with_rowid": False}
PARTITION_SCHEMA = "telemetry_parts"  # partitions live apart: the schema diff sees parents only


def _partitioned(column: str) -> dict[str, Any]:
    """A partitioned table has no storage of its own: the partitions get the fillfactor."""
    return {**_NO_ROWID, "postgresql_partition_by": f"RANGE ({column})"}


def _with_default_partition(table: Any) -> None:
    """``create_all`` on PostgreSQL: the partitions' schema and the DEFAULT partition."""
    name = table.name
    for sql in (
        f"CREATE SCHEMA IF NOT EXISTS {PARTITION_SCHEMA}",
        f"CREATE TABLE IF NOT EXISTS {PARTITION_SCHEMA}.{name}_default PARTITION OF {name} DEFAULT",
    ):
        ddl = DDL(sql)  # type: ignore[no-untyped-call]
        event.listen(table, "after_create", ddl.execute_if(dialect="postgresql"))


class TelemetryMetric(Base):
    """Metric name → small id; immutable once assigned (cached per process)."""

    __tablename__ = "telemetry_metrics"

    # SMALLSERIAL on PostgreSQL; INTEGER PRIMARY KEY (the rowid, auto-assigned) on SQLite
    id: Mapped[int] = mapped_column(
        SmallInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    name: Mapped[str] = mapped_column(String(64), unique=True)


class TelemetryRaw(Base):
    """One reading; kept ``telemetry_raw_retention_h`` hours."""

    __tablename__ = "telemetry_raw"
    __table_args__ = _partitioned("ts")

    device_num: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    metric_id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    ts: Mapped[float] = mapped_column(Float(precision=53), primary_key=True)
    value: Mapped[float] = mapped_column(Float(precision=53))


class _Rollup:
    """Aggregate of a bucket: mean = sum / count; ``last`` is the value at ``last_ts``."""

    device_num: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    metric_id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    bucket_ts: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    min: Mapped[float] = mapped_column(Float(precision=53))
    max: Mapped[float] = mapped_column(Float(precision=53))
    sum: Mapped[float] = mapped_column(Float(precision=53))
    count: Mapped[int] = mapped_column(Integer)
    last: Mapped[float] = mapped_column(Float(precision=53))
    last_ts: Mapped[float] = mapped_column(Float(precision=53))


class TelemetryRollup1m(_Rollup, Base):
    __tablename__ = "telemetry_1m"
    __table_args__ = _partitioned("bucket_ts")


class TelemetryRollup1h(_Rollup, Base):
    __tablename__ = "telemetry_1h"
    __table_args__ = _partitioned("bucket_ts")


class TelemetryLatest(Base):
    """The newest reading of each (device, metric): O(devices) answers for dashboards.

    Also indexed by metric: the fleet views read one metric of every board (a tenant's
    power per rack, the temperature spread) without walking every device's rows."""

    __tablename__ = "telemetry_latest"
    __table_args__ = (
        Index("ix_telemetry_latest_metric_id", "metric_id", "device_num"),
        {**_NO_ROWID, "postgresql_with": {"fillfactor": 70}},
    )

    device_num: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    metric_id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    ts: Mapped[float] = mapped_column(Float(precision=53))
    value: Mapped[float] = mapped_column(Float(precision=53))


class TelemetrySeq(Base):
    """The highest batch sequence number stored per device (idempotent redelivery)."""

    __tablename__ = "telemetry_seq"

    device_num: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[float] = mapped_column(Float(precision=53))


for _model in (TelemetryRaw, TelemetryRollup1m, TelemetryRollup1h):
    _with_default_partition(_model.__table__)
