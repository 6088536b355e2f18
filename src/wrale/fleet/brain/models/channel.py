"""The device channel's tables: open and past sessions (so any replica can serve an MQTT
message of a session opened on another), device events with per-stream sequence marks,
and the reason a device was quarantined.

Telemetry keeps its own mark (``TelemetrySeq``, keyed by ``Device.num``); ``StreamSeq`` holds
the marks of every other stream (``events``) keyed by device id.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from wrale.fleet.brain.models.base import Base, TenantMixin


class ChannelSession(TenantMixin, Base):
    """One connection of a device (``id`` is the session id the protocol carries).

    Open while ``closed_at`` is None; at most one open row per device is current (opening a
    new one closes the others with reason ``replaced``). ``replica`` names the process that
    holds a WebSocket; MQTT sessions belong to no replica (``replica`` None).
    """

    __tablename__ = "device_sessions"
    __table_args__ = (Index("ix_device_sessions_device_closed", "device_id", "closed_at"),)

    device_id: Mapped[str] = mapped_column(String(32), ForeignKey("devices.id", ondelete="CASCADE"))
    credential_id: Mapped[str | None] = mapped_column(String(32), default=None)
    transport: Mapped[str] = mapped_column(String(8))  # ws | mqtt
    replica: Mapped[str | None] = mapped_column(String(128), default=None)
    remote: Mapped[str | None] = mapped_column(String(64), default=None)
    agent_version: Mapped[str | None] = mapped_column(String(32), default=None)
    mode: Mapped[str | None] = mapped_column(String(16), default=None)
    desired_sent: Mapped[int] = mapped_column(BigInteger, default=0)
    opened_at: Mapped[float]
    last_seen_at: Mapped[float]
    closed_at: Mapped[float | None] = mapped_column(default=None)
    close_reason: Mapped[str | None] = mapped_column(String(32), default=None)


class StreamSeq(Base):
    """The highest batch sequence number stored per (device, stream) other than telemetry."""

    __tablename__ = "stream_seq"

    device_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    )
    stream: Mapped[str] = mapped_column(String(16), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[float]


class DeviceEvent(TenantMixin, Base):
    """An event a board raised (metald's type and severity), stored once per (batch, index)."""

    __tablename__ = "device_events"
    __table_args__ = (
        Index("ix_device_events_device_ts", "device_id", "ts"),
        Index("ix_device_events_device_seq", "device_id", "seq", "idx", unique=True),
    )

    device_id: Mapped[str] = mapped_column(String(32), ForeignKey("devices.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(BigInteger)
    idx: Mapped[int] = mapped_column(Integer)
    ts: Mapped[float]
    type: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(String(500), default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class DeviceQuarantine(Base):
    """Why and by whom a device was quarantined (the row goes when it is released)."""

    __tablename__ = "device_quarantines"

    device_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    )
    tenant_id: Mapped[str] = mapped_column(String(32), ForeignKey("tenants.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(String(500))
    by: Mapped[str | None] = mapped_column(String(100), default=None)
    at: Mapped[float]
