"""Recommendations the brain raised for operators (``decisions.analysis``): what, about
which rack, board or room (``subject``), the figures it is based on, what accepting it
does, and what became of it. At most one ``open`` row per (organisation, kind, subject):
the loop updates it while it applies and expires it when it no longer does."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from wrale.fleet.brain.models.base import Base, TenantMixin

STATES = ("open", "accepted", "dismissed", "expired")


class Recommendation(TenantMixin, Base):
    """``action``: what accepting it does (``None``: nothing automatic, accepting it
    acknowledges it); ``result``: what accepting or dismissing it did (or why it expired)."""

    __tablename__ = "recommendations"
    __table_args__ = (
        Index("ix_recommendations_tenant_state", "tenant_id", "state", "id"),
        Index("ix_recommendations_tenant_subject", "tenant_id", "kind", "subject", "state"),
    )

    kind: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(300))
    advice: Mapped[str] = mapped_column(String(300), default="")
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    score: Mapped[float]
    action: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None, nullable=True)
    state: Mapped[str] = mapped_column(String(16), default="open")
    updated_at: Mapped[float]
    decided_by: Mapped[str | None] = mapped_column(String(100), default=None)
    decided_at: Mapped[float | None] = mapped_column(default=None)
    result: Mapped[str | None] = mapped_column(String(500), default=None)
