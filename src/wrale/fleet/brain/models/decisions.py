"""The decision log: what a loop of the brain decided (placement, capping, balancing…),
about what, why, and the inputs it used; ``DecisionSubject`` indexes every id a decision
names so the log can be filtered by a board, a rack or a job."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from wrale.fleet.brain.models.base import Base, TenantMixin


class Decision(TenantMixin, Base):
    """``subjects`` maps a role to an id (``{"job": …, "device": …, "rack": …}``);
    ``reasons`` and ``inputs`` are the explanation and the figures it was based on."""

    __tablename__ = "decisions"
    __table_args__ = (
        Index("ix_decisions_tenant_loop", "tenant_id", "loop", "id"),
        Index("ix_decisions_tenant_at", "tenant_id", "at"),
    )

    at: Mapped[float]
    loop: Mapped[str] = mapped_column(String(32))  # placement | capping | balancing | …
    action: Mapped[str] = mapped_column(String(32))  # place | release | cap | move | …
    subjects: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    summary: Mapped[str] = mapped_column(String(500))
    reasons: Mapped[list[Any]] = mapped_column(JSON, default=list)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class DecisionSubject(Base):
    """One id a decision names (the filter ``GET /decisions?subject=``)."""

    __tablename__ = "decision_subjects"
    __table_args__ = (Index("ix_decision_subjects_subject", "subject_id", "decision_id"),)

    decision_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("decisions.id", ondelete="CASCADE"), primary_key=True
    )
    subject_id: Mapped[str] = mapped_column(String(32), primary_key=True)
