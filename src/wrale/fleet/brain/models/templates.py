"""Config templates: named, with immutable numbered versions (a JSON body with ``${var}``
placeholders and a schema of its variables); deployments of one version to a device, a
group or the fleet, and each target device's deployment status."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from wrale.fleet.brain.models.base import Base, TenantMixin


class ConfigTemplate(TenantMixin, Base):
    __tablename__ = "config_templates"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name", name="uq_config_templates_tenant_name"),
    )

    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(String(255), default=None)
    latest_version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[float]


class ConfigTemplateVersion(TenantMixin, Base):
    """Never changed once written: deployments and rollbacks refer to it by number."""

    __tablename__ = "config_template_versions"
    __table_args__ = (
        UniqueConstraint(
            "template_id", "version", name="uq_config_template_versions_template_version"
        ),
    )

    template_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("config_templates.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    variables: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    note: Mapped[str | None] = mapped_column(String(255), default=None)
    created_by: Mapped[str | None] = mapped_column(String(100), default=None)


class ConfigDeployment(TenantMixin, Base):
    """One version rendered with ``variables`` and written into the targets' twins."""

    __tablename__ = "config_deployments"

    template_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("config_templates.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    target_type: Mapped[str] = mapped_column(String(8))  # device | group | fleet
    target_id: Mapped[str] = mapped_column(String(32), default="")  # "" for the fleet
    variables: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    rendered: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    rollback_of: Mapped[str | None] = mapped_column(String(32), default=None)
    created_by: Mapped[str | None] = mapped_column(String(100), default=None)


class ConfigDeploymentDevice(TenantMixin, Base):
    """A target device of a deployment: pending → applied | failed (+ reason), or
    superseded when a later deployment rewrites the same keys first."""

    __tablename__ = "config_deployment_devices"
    __table_args__ = (
        UniqueConstraint(
            "deployment_id", "device_id", name="uq_config_deployment_devices_deployment_device"
        ),
        Index("ix_config_deployment_devices_device_status", "device_id", "status"),
    )

    deployment_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("config_deployments.id", ondelete="CASCADE"), index=True
    )
    device_id: Mapped[str] = mapped_column(String(32), ForeignKey("devices.id", ondelete="CASCADE"))
    template_id: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    reason: Mapped[str | None] = mapped_column(String(2000), default=None)
    desired_version: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[float]
