"""Dry-runs on the digital copy of the fleet (``docs/dry-run.md``): the change an operator
asked to try, for how many simulated minutes, and what became of it (``queued`` →
``running`` → ``done`` with its result, or ``failed`` with the reason). A worker runs the
queued ones, one at a time per process; a request never does."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from wrale.fleet.brain.models.base import Base, TenantMixin

STATES = ("queued", "running", "done", "failed")


class DryRun(TenantMixin, Base):
    __tablename__ = "dry_runs"
    __table_args__ = (
        Index("ix_dry_runs_tenant_id_id", "tenant_id", "id"),
        Index("ix_dry_runs_state_id", "state", "id"),
    )

    change: Mapped[dict[str, Any]] = mapped_column(JSON)
    minutes: Mapped[int]
    state: Mapped[str] = mapped_column(String(16), default="queued")
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None, nullable=True)
    error: Mapped[str | None] = mapped_column(String(500), default=None)
    created_by: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[float | None] = mapped_column(default=None)
    finished_at: Mapped[float | None] = mapped_column(default=None)
    runner: Mapped[str | None] = mapped_column(String(120), default=None)
