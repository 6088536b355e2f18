"""Devices, their credentials, and the enrollment tokens that admit them."""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from wrale.fleet.brain.models.base import Base, TenantMixin


class Device(TenantMixin, Base):
    """A board in the fleet. ``num`` is a compact integer key for telemetry rows."""

    __tablename__ = "devices"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name", name="uq_devices_tenant_name"),
        UniqueConstraint("rack_id", "slot_u", name="uq_devices_rack_slot"),
        Index("ix_devices_tenant_status", "tenant_id", "status"),
    )

    num: Mapped[int] = mapped_column(Integer, unique=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(100))
    model: Mapped[str | None] = mapped_column(String(100), default=None)
    hardware_profile: Mapped[str | None] = mapped_column(String(64), default=None)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    # untrusted: what the board asked for at enrollment; never selects it (tags do)
    proposed_tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    # unknown | online | offline | error | maintenance | decommissioned
    status: Mapped[str] = mapped_column(String(16), default="unknown")
    last_seen_at: Mapped[float | None] = mapped_column(default=None)
    agent_version: Mapped[str | None] = mapped_column(String(32), default=None)
    capabilities: Mapped[list[str]] = mapped_column(JSON, default=list)
    rack_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("racks.id", ondelete="SET NULL"), default=None, index=True
    )
    slot_u: Mapped[int | None] = mapped_column(Integer, default=None)
    zone_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("zones.id", ondelete="SET NULL"), default=None, index=True
    )


class DeviceCredential(TenantMixin, Base):
    """A device's own secret (hashed); rotated by adding a new one, revoked by a time."""

    __tablename__ = "device_credentials"

    device_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("devices.id", ondelete="CASCADE"), index=True
    )
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    revoked_at: Mapped[float | None] = mapped_column(default=None)
    last_used_at: Mapped[float | None] = mapped_column(default=None)


class EnrollmentToken(TenantMixin, Base):
    """Admits devices: single- or multi-use, expiring, with a target group, tags or rack."""

    __tablename__ = "enrollment_tokens"

    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    max_uses: Mapped[int | None] = mapped_column(Integer, default=1)  # None: unlimited
    uses: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[float | None] = mapped_column(default=None)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    target_group_id: Mapped[str | None] = mapped_column(String(32), default=None)
    target_tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    target_rack_id: Mapped[str | None] = mapped_column(String(32), default=None)


class Counter(Base):
    """Named counters handed out under a row lock (``device_num`` allocates ``Device.num``).

    The counter's row is the serialisation point of device creation: on PostgreSQL its
    row lock, on SQLite the write lock taken by the same UPDATE.
    """

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)
