"""Jobs: work the brain places on boards (``docs/jobs.md``). A job has one placement per
replica; a placement is on at most one board at a time (``device_id`` None while
pending) and every change of its state is a ``PlacementTransition``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from wrale.fleet.brain.models.base import Base, TenantMixin


class Job(TenantMixin, Base):
    """What to run (``workload``), on how many boards, where and how urgently.

    ``state``: pending (not every replica placed) | running | succeeded | failed |
    stopped. ``stopped_at`` is when a stop was asked (DELETE); the job is ``stopped``
    once every placement has ended."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_tenant_state", "tenant_id", "state"),)

    name: Mapped[str] = mapped_column(String(100))
    workload: Mapped[dict[str, Any]] = mapped_column(JSON)
    replicas: Mapped[int] = mapped_column(Integer)
    priority: Mapped[int] = mapped_column(Integer, default=50)
    strategy: Mapped[str] = mapped_column(String(16), default="physical")  # physical | spread
    duration_s: Mapped[float | None] = mapped_column(default=None)  # None: a service
    restartable: Mapped[bool] = mapped_column(Boolean, default=True)
    selector: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    max_per_rack: Mapped[int | None] = mapped_column(Integer, default=None)
    cpu_pct: Mapped[float]  # resource hints: share of one board's CPU, expected draw
    watts: Mapped[float]
    allow_battery: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    updated_at: Mapped[float]
    stopped_at: Mapped[float | None] = mapped_column(default=None)
    created_by: Mapped[str | None] = mapped_column(String(100), default=None)


class JobPlacement(TenantMixin, Base):
    """One replica of a job: pending → starting → running → (moving) → succeeded |
    failed | stopped. What the board last reported of it (exit code, CPU seconds, the
    tail of its output) is kept here; ``cpu_quota_pct`` is the share the brain allows."""

    __tablename__ = "job_placements"
    __table_args__ = (
        UniqueConstraint("job_id", "replica", name="uq_job_placements_job_replica"),
        # a board's active placements (its desired jobs section, releasing a board)
        Index("ix_job_placements_device_state", "device_id", "state"),
        # the placement loop's pending work, and the active placements it sweeps
        Index("ix_job_placements_state_job", "state", "job_id"),
    )

    job_id: Mapped[str] = mapped_column(String(32), ForeignKey("jobs.id", ondelete="CASCADE"))
    device_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("devices.id", ondelete="SET NULL"), default=None
    )
    replica: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    reason: Mapped[str | None] = mapped_column(String(2000), default=None)
    cpu_quota_pct: Mapped[float | None] = mapped_column(default=None)
    started_at: Mapped[float | None] = mapped_column(default=None)
    ended_at: Mapped[float | None] = mapped_column(default=None)
    exit_code: Mapped[int | None] = mapped_column(Integer, default=None)
    cpu_s: Mapped[float | None] = mapped_column(default=None)
    output_tail: Mapped[str | None] = mapped_column(Text, default=None)
    updated_at: Mapped[float]


class PlacementTransition(TenantMixin, Base):
    """One change of a placement's state: when, why and who (``brain``, ``device`` or the
    user's name); ``device_id`` is the board it concerned (None while unplaced)."""

    __tablename__ = "placement_transitions"
    __table_args__ = (
        Index("ix_placement_transitions_placement", "placement_id", "at"),
        Index("ix_placement_transitions_job", "job_id", "at"),
    )

    placement_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("job_placements.id", ondelete="CASCADE")
    )
    job_id: Mapped[str] = mapped_column(String(32), ForeignKey("jobs.id", ondelete="CASCADE"))
    device_id: Mapped[str | None] = mapped_column(String(32), default=None)
    from_state: Mapped[str | None] = mapped_column(String(16), default=None)
    to_state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(2000), default=None)
    at: Mapped[float]
    actor: Mapped[str] = mapped_column(String(100))
