"""Maintenance windows (``docs/maintenance.md``): when disruptive work may happen on the
boards of the whole organisation, a site or a group — a cron expression and a duration in
a time zone, plus conditions on the board's readings — and the operators' overrides that
let one command through outside its windows. Maintenance rules: conditions on the boards'
readings that open maintenance tasks with a due date."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from wrale.fleet.brain.models.base import Base, TenantMixin

SCOPES = ("fleet", "site", "group")


class MaintenanceWindow(TenantMixin, Base):
    """``scope_id``: the site or group (None for the fleet); ``conditions``: keys of
    ``services.maintenance.conditions.CONDITION_KEYS``."""

    __tablename__ = "maintenance_windows"
    __table_args__ = (Index("ix_maintenance_windows_tenant_scope", "tenant_id", "scope"),)

    name: Mapped[str] = mapped_column(String(100))
    scope: Mapped[str] = mapped_column(String(8))
    scope_id: Mapped[str | None] = mapped_column(String(32), default=None)
    cron: Mapped[str] = mapped_column(String(100))
    duration_s: Mapped[float]
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    conditions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    enabled: Mapped[bool] = mapped_column(default=True)
    created_by: Mapped[str | None] = mapped_column(String(100), default=None)
    updated_at: Mapped[float]


class WindowOverride(TenantMixin, Base):
    """A command an operator let through outside its maintenance windows, and why."""

    __tablename__ = "maintenance_overrides"

    command_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("commands.id", ondelete="CASCADE"), unique=True
    )
    reason: Mapped[str] = mapped_column(String(500))
    created_by: Mapped[str | None] = mapped_column(String(100), default=None)


RULE_SCOPES = ("fleet", "group", "site", "rack", "device")
TASK_STATES = ("open", "done")


class MaintenanceRule(TenantMixin, Base):
    """A condition on the boards' readings (``condition``: a tree of ``all``/``any`` over
    ``{"metric", "op", "value", "for_s"}``) that opens a maintenance task, due
    ``due_in_s`` later, on each board of its scope where it holds."""

    __tablename__ = "maintenance_rules"

    name: Mapped[str] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(String(200))
    scope: Mapped[str] = mapped_column(String(8))
    scope_id: Mapped[str | None] = mapped_column(String(32), default=None)
    condition: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    due_in_s: Mapped[float]
    enabled: Mapped[bool] = mapped_column(default=True)
    created_by: Mapped[str | None] = mapped_column(String(100), default=None)
    updated_at: Mapped[float]


class MaintenanceTask(TenantMixin, Base):
    """Work a rule asks for on one board. ``open_key`` (rule:device) is set only while the
    task is open, so the database itself refuses a second open task of a rule on a board;
    ``rule_id`` is kept (no foreign key) after the rule is deleted, for the history.
    ``condition_cleared_at``: when the rule's condition stopped holding on the board (a
    new task may open once it holds again and this one is done)."""

    __tablename__ = "maintenance_tasks"
    __table_args__ = (Index("ix_maintenance_tasks_tenant_state", "tenant_id", "state"),)

    rule_id: Mapped[str] = mapped_column(String(32), index=True)
    rule_name: Mapped[str] = mapped_column(String(100))
    device_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("devices.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(8), default="open")
    open_key: Mapped[str | None] = mapped_column(String(65), unique=True, default=None)
    opened_at: Mapped[float]
    due_at: Mapped[float]
    readings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    condition_cleared_at: Mapped[float | None] = mapped_column(default=None)
    closed_at: Mapped[float | None] = mapped_column(default=None)
    closed_by: Mapped[str | None] = mapped_column(String(100), default=None)
    close_reason: Mapped[str | None] = mapped_column(String(16), default=None)
    note: Mapped[str | None] = mapped_column(String(1000), default=None)
