"""Device twins: one row per device holding the desired document the server composed (and
its version), the operator's explicit overrides it was composed from, and the last reported
document the device sent (its own version), with what the device rejected and why."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from wrale.fleet.brain.models.base import Base, TenantMixin


class DeviceTwin(TenantMixin, Base):
    """``desired`` = effective policies deep-merged with ``overrides``; ``desired_version``
    grows by one whenever the composed document changes (1 when first composed)."""

    __tablename__ = "device_twins"

    device_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("devices.id", ondelete="CASCADE"), unique=True
    )
    desired: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    desired_version: Mapped[int] = mapped_column(Integer, default=0)
    overrides: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    reported: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    reported_version: Mapped[int] = mapped_column(Integer, default=0)
    applied_desired_version: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # dotted path → why
    updated_at: Mapped[float]
    reported_at: Mapped[float | None] = mapped_column(default=None)
