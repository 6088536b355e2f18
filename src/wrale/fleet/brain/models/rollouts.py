"""Staged rollouts (``services.rollouts``): one change delivered in waves to the boards a
selector named, each wave gated on what the boards it reached did. The rollout is a state
machine advanced only by the lease-guarded ``rollouts`` loop; operators pause, resume,
approve or abort it. Each board keeps what it had before the change (for the rollback)
and its values before its wave (its baseline)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from wrale.fleet.brain.models.base import Base, TenantMixin

STATES = ("running", "waiting_approval", "paused", "succeeded", "aborted", "rolled_back")
WAVE_STATES = ("pending", "observing", "passed", "failed", "rolled_back", "skipped")
DEVICE_STATES = ("pending", "applying", "applied", "failed", "rolled_back")


class Rollout(TenantMixin, Base):
    """``change``: what is delivered; ``gates``: the wave limits and ``observe_s``;
    ``current_wave``: the index of the wave in progress; ``paused_at``: since when it is
    paused (paused time does not count in a wave's observation); ``rollback_due``: an abort
    whose rollback the loop has yet to perform; ``actor_*``: on whose authority the loop
    acts (the creator's name and role when it was created; the services check that role
    at each step)."""

    __tablename__ = "rollouts"
    __table_args__ = (Index("ix_rollouts_tenant_state", "tenant_id", "state", "id"),)

    name: Mapped[str] = mapped_column(String(100))
    change: Mapped[dict[str, Any]] = mapped_column(JSON)
    selector: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    waves_spec: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    gates: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    on_gate_failure: Mapped[str] = mapped_column(String(8), default="abort")
    require_approval: Mapped[bool] = mapped_column(default=False)
    state: Mapped[str] = mapped_column(String(20), default="running")
    current_wave: Mapped[int] = mapped_column(Integer, default=0)
    paused_at: Mapped[float | None] = mapped_column(default=None)
    rollback_due: Mapped[bool] = mapped_column(default=False)
    reason: Mapped[str | None] = mapped_column(String(500), default=None)
    actor_name: Mapped[str] = mapped_column(String(100))
    actor_role: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[float]
    finished_at: Mapped[float | None] = mapped_column(default=None)


class RolloutWave(TenantMixin, Base):
    """One wave: its index, state, when its observation started and how long it was paused
    since, its gate's verdict, and the baselines of its boards and of the boards not yet
    reached (the weather) taken when it started. ``attempt`` counts the retries."""

    __tablename__ = "rollout_waves"
    __table_args__ = (UniqueConstraint("rollout_id", "idx"),)

    rollout_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("rollouts.id", ondelete="CASCADE"), index=True
    )
    idx: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[float | None] = mapped_column(default=None)
    paused_s: Mapped[float] = mapped_column(default=0.0)
    finished_at: Mapped[float | None] = mapped_column(default=None)
    baselines: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    gate: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class RolloutDevice(TenantMixin, Base):
    """A board in a rollout: its wave, state, what it had before the change (``before``:
    the restorable value; ``None`` with ``had_before`` False: nothing) and the handle of
    what was done to it (a command or deployment id)."""

    __tablename__ = "rollout_devices"
    __table_args__ = (UniqueConstraint("rollout_id", "device_id"),)

    rollout_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("rollouts.id", ondelete="CASCADE"), index=True
    )
    device_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("devices.id", ondelete="CASCADE"), index=True
    )
    wave: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None, nullable=True)
    handle: Mapped[str | None] = mapped_column(String(32), default=None)
    detail: Mapped[str | None] = mapped_column(String(500), default=None)
    updated_at: Mapped[float]
