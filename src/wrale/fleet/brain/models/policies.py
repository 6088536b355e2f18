"""Policies: versioned thermal / power / security / sampling documents attached to the
fleet, a group or a device. ``Policy`` holds the current version; every write also adds a
``PolicyVersion`` row, so the history is kept."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from wrale.fleet.brain.models.base import Base, TenantMixin


class Policy(TenantMixin, Base):
    """One document per (scope, kind); ``scope_id`` is "" for the whole fleet."""

    __tablename__ = "policies"
    __table_args__ = (
        UniqueConstraint(
            "tenant_id", "scope_type", "scope_id", "kind", name="uq_policies_scope_kind"
        ),
    )

    scope_type: Mapped[str] = mapped_column(String(8))  # fleet | group | device
    scope_id: Mapped[str] = mapped_column(String(32), default="")
    kind: Mapped[str] = mapped_column(String(16))  # thermal | power | security | sampling
    document: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[float]
    updated_by: Mapped[str | None] = mapped_column(String(100), default=None)


class PolicyVersion(TenantMixin, Base):
    __tablename__ = "policy_versions"
    __table_args__ = (
        UniqueConstraint("policy_id", "version", name="uq_policy_versions_policy_version"),
    )

    policy_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("policies.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    document: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    author: Mapped[str | None] = mapped_column(String(100), default=None)
