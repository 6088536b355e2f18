"""Device groups: static (explicit members) or dynamic (a selector over tags, status,
location, model), nested under a parent. Membership of dynamic groups is computed, not stored."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from wrale.fleet.brain.models.base import Base, TenantMixin


class Group(TenantMixin, Base):
    """A group of devices; ``kind`` is "static" or "dynamic" and never changes."""

    __tablename__ = "groups"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_groups_tenant_name"),)

    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(String(255), default=None)
    kind: Mapped[str] = mapped_column(String(8), default="static")
    selector: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # RESTRICT: a group with subgroups cannot be deleted (the service says so first).
    parent_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("groups.id", ondelete="RESTRICT"), default=None, index=True
    )


class GroupMember(TenantMixin, Base):
    """An explicit member of a static group."""

    __tablename__ = "group_members"
    __table_args__ = (
        UniqueConstraint("group_id", "device_id", name="uq_group_members_group_device"),
    )

    group_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("groups.id", ondelete="CASCADE"), index=True
    )
    device_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("devices.id", ondelete="CASCADE"), index=True
    )
