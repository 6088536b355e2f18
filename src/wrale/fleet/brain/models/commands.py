"""Commands to devices: an operation with arguments and an absolute deadline, and its
lifecycle queued → sent → succeeded | failed | refused | expired (with the reason)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from wrale.fleet.brain.models.base import Base, TenantMixin


class Command(TenantMixin, Base):
    """One command to one device; commands sent together share a ``batch_id``."""

    __tablename__ = "commands"
    __table_args__ = (
        Index("ix_commands_device_status", "device_id", "status"),
        Index("ix_commands_status_deadline", "status", "deadline"),
    )

    device_id: Mapped[str] = mapped_column(String(32), ForeignKey("devices.id", ondelete="CASCADE"))
    batch_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    op: Mapped[str] = mapped_column(String(32))
    args: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # queued | sent | succeeded | failed | refused | expired
    status: Mapped[str] = mapped_column(String(16), default="queued")
    reason: Mapped[str | None] = mapped_column(String(2000), default=None)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    deadline: Mapped[float]
    created_by: Mapped[str | None] = mapped_column(String(100), default=None)
    sent_at: Mapped[float | None] = mapped_column(default=None)
    finished_at: Mapped[float | None] = mapped_column(default=None)
