"""Config templates as the API shows them: templates, versions, deployments and each
device's status in a deployment, and the per-status counts of deployments."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models.templates import (
    ConfigDeployment,
    ConfigDeploymentDevice,
    ConfigTemplate,
    ConfigTemplateVersion,
)

DEVICE_STATUSES = ("pending", "applied", "failed", "superseded")


def template_view(t: ConfigTemplate, latest: ConfigTemplateVersion | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": t.id,
        "name": t.name,
        "description": t.description,
        "latest_version": t.latest_version,
        "created_at": t.created_at,
        "updated_at": t.updated_at,
    }
    if latest is not None:
        out["latest"] = version_view(latest)
    return out


def version_view(v: ConfigTemplateVersion) -> dict[str, Any]:
    return {
        "template_id": v.template_id,
        "version": v.version,
        "body": v.body,
        "variables": v.variables,
        "note": v.note,
        "created_by": v.created_by,
        "created_at": v.created_at,
    }


def deployment_view(d: ConfigDeployment, counts: Mapping[str, int] | None = None) -> dict[str, Any]:
    return {
        "id": d.id,
        "template_id": d.template_id,
        "version": d.version,
        "target_type": d.target_type,
        "target_id": d.target_id or None,
        "variables": d.variables,
        "rendered": d.rendered,
        "rollback_of": d.rollback_of,
        "created_by": d.created_by,
        "created_at": d.created_at,
        "counts": {s: int((counts or {}).get(s, 0)) for s in DEVICE_STATUSES},
    }


def device_status_view(r: ConfigDeploymentDevice) -> dict[str, Any]:
    return {
        "id": r.id,
        "deployment_id": r.deployment_id,
        "device_id": r.device_id,
        "status": r.status,
        "reason": r.reason,
        "desired_version": r.desired_version,
        "updated_at": r.updated_at,
    }


async def counts(session: AsyncSession, deployment_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """Per deployment, how many of its devices are in each status."""
    out: dict[str, dict[str, int]] = {d: {} for d in deployment_ids}
    if not deployment_ids:
        return out
    rows = await session.execute(
        select(
            ConfigDeploymentDevice.deployment_id,
            ConfigDeploymentDevice.status,
            func.count(),
        )
        .where(ConfigDeploymentDevice.deployment_id.in_(list(deployment_ids)))
        .group_by(ConfigDeploymentDevice.deployment_id, ConfigDeploymentDevice.status)
    )
    for dep, status, n in rows:
        out[dep][status] = int(n)
    return out
