"""The brain's decision loops' stored state: the memory a loop carries from one period to
the next (capping streaks, recent moves), one row per organisation and loop, so any
replica holding the loop's lease continues where the last one stopped; and operators'
pauses of a loop, per site (``site_id`` ``*``: every site)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from wrale.fleet.brain.models.base import Base, TenantMixin


class DecisionLoopState(TenantMixin, Base):
    __tablename__ = "decision_loop_states"
    __table_args__ = (UniqueConstraint("tenant_id", "loop", name="uq_decision_loop_states"),)

    loop: Mapped[str] = mapped_column(String(32))
    state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[float]


class DecisionPause(TenantMixin, Base):
    __tablename__ = "decision_pauses"
    __table_args__ = (UniqueConstraint("tenant_id", "loop", "site_id", name="uq_decision_pauses"),)

    loop: Mapped[str] = mapped_column(String(32))
    site_id: Mapped[str] = mapped_column(String(32))  # "*": every site
    paused_by: Mapped[str | None] = mapped_column(String(100), default=None)
