"""Alert rules, their per-(rule, key) evaluation state, alerts with their history, and
notification channels with the deliveries queued for them.

Everything rule evaluation needs between runs lives here (not in process memory), so any
replica can evaluate any rule.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from wrale.fleet.brain.models.base import Base, TenantMixin


class AlertRule(TenantMixin, Base):
    """``metric op threshold for for_s`` over a scope; ``aggregate`` "rack_sum" sums the
    latest values of a rack's devices and may compare against the rack's power budget."""

    __tablename__ = "alert_rules"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_alert_rules_tenant_name"),)

    name: Mapped[str] = mapped_column(String(100))
    metric: Mapped[str] = mapped_column(String(64))
    op: Mapped[str] = mapped_column(String(2))
    threshold: Mapped[float | None] = mapped_column(default=None)  # None: the rack budget
    aggregate: Mapped[str] = mapped_column(String(16), default="device")  # device | rack_sum
    for_s: Mapped[float] = mapped_column(default=0.0)
    severity: Mapped[str] = mapped_column(String(8))
    scope_type: Mapped[str] = mapped_column(String(8))  # device | group | rack | zone | fleet
    scope_id: Mapped[str | None] = mapped_column(String(32), default=None)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    channel_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    flap_window_s: Mapped[float] = mapped_column(default=600.0)
    flap_threshold: Mapped[int] = mapped_column(Integer, default=3)
    description: Mapped[str | None] = mapped_column(String(255), default=None)
    updated_at: Mapped[float | None] = mapped_column(default=None)


class AlertRuleState(TenantMixin, Base):
    """Evaluation memory of one (rule, key): key is a device id or a rack id."""

    __tablename__ = "alert_rule_states"
    __table_args__ = (UniqueConstraint("rule_id", "key", name="uq_alert_rule_states_rule_key"),)

    rule_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("alert_rules.id", ondelete="CASCADE"), index=True
    )
    key: Mapped[str] = mapped_column(String(32))
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    alert_id: Mapped[str | None] = mapped_column(String(32), default=None)
    pending_since: Mapped[float | None] = mapped_column(default=None)
    last_cleared_at: Mapped[float | None] = mapped_column(default=None)
    flap_count: Mapped[int] = mapped_column(Integer, default=0)
    flap_window_start: Mapped[float | None] = mapped_column(default=None)
    flapping: Mapped[bool] = mapped_column(Boolean, default=False)
    last_change_at: Mapped[float | None] = mapped_column(default=None)


class Alert(TenantMixin, Base):
    """One alert of a (rule, key): active → acknowledged → cleared; reopened when it fires
    again within the rule's flap window."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_tenant_state", "tenant_id", "state"),
        Index("ix_alerts_rule_key", "rule_id", "key"),
    )

    rule_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("alert_rules.id", ondelete="SET NULL"), default=None
    )
    rule_name: Mapped[str] = mapped_column(String(100))
    key: Mapped[str] = mapped_column(String(32))
    device_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    rack_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    metric: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(16), default="active")
    value: Mapped[float | None] = mapped_column(default=None)
    threshold: Mapped[float | None] = mapped_column(default=None)
    message: Mapped[str] = mapped_column(String(255))
    raised_at: Mapped[float]
    updated_at: Mapped[float]
    acknowledged_at: Mapped[float | None] = mapped_column(default=None)
    acknowledged_by: Mapped[str | None] = mapped_column(String(100), default=None)
    cleared_at: Mapped[float | None] = mapped_column(default=None)
    cleared_by: Mapped[str | None] = mapped_column(String(100), default=None)
    assignee_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    flap_count: Mapped[int] = mapped_column(Integer, default=0)
    flapping: Mapped[bool] = mapped_column(Boolean, default=False)


class AlertEvent(TenantMixin, Base):
    """A line of an alert's history: a state change or an assignment, who, when, why."""

    __tablename__ = "alert_events"

    alert_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("alerts.id", ondelete="CASCADE"), index=True
    )
    action: Mapped[str] = mapped_column(String(16))
    from_state: Mapped[str | None] = mapped_column(String(16), default=None)
    to_state: Mapped[str | None] = mapped_column(String(16), default=None)
    actor_name: Mapped[str | None] = mapped_column(String(100), default=None)
    actor_id: Mapped[str | None] = mapped_column(String(32), default=None)
    note: Mapped[str | None] = mapped_column(String(1000), default=None)
    value: Mapped[float | None] = mapped_column(default=None)


class NotificationChannel(TenantMixin, Base):
    """Where notifications go; ``config`` is validated by the channel type's own model."""

    __tablename__ = "notification_channels"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name", name="uq_notification_channels_tenant_name"),
    )

    name: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(16))
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[float | None] = mapped_column(default=None)


class NotificationDelivery(TenantMixin, Base):
    """One notification to one channel: pending → sending (claimed until
    ``claim_expires_at``) → delivered | failed, or back to pending to retry. A claim that
    expires (its sender died) makes the delivery due again."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        Index("ix_notification_deliveries_due", "status", "next_attempt_at"),
        Index("ix_notification_deliveries_claims", "status", "claim_expires_at"),
    )

    channel_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("notification_channels.id", ondelete="CASCADE"), index=True
    )
    alert_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("alerts.id", ondelete="SET NULL"), default=None
    )
    event: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float]
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)
    delivered_at: Mapped[float | None] = mapped_column(default=None)
    claimed_by: Mapped[str | None] = mapped_column(String(64), default=None)
    claim_expires_at: Mapped[float | None] = mapped_column(default=None)
