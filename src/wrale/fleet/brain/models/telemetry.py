"""Telemetry tables: raw points, 1-minute and 1-hour rollups, the newest value of each
(device, metric), per-device batch sequence numbers and the metric-name dictionary.

Rows are keyed by ``Device.num`` and a small metric id (no foreign keys: ingest speed);
every key is a composite primary key, WITHOUT ROWID on SQLite, so range scans are cheap.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Float, Integer, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from wrale.fleet.brain.models.base import Base

_NO_ROWID = {"sqlite_with_rowid": False}


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
    __table_args__ = _NO_ROWID

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
    __table_args__ = _NO_ROWID


class TelemetryRollup1h(_Rollup, Base):
    __tablename__ = "telemetry_1h"
    __table_args__ = _NO_ROWID


class TelemetryLatest(Base):
    """The newest reading of each (device, metric): O(devices) answers for dashboards."""

    __tablename__ = "telemetry_latest"
    __table_args__ = _NO_ROWID

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
