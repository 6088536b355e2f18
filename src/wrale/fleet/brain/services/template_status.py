"""Settling config deployments from what a device reports: a pending deployment to the
device becomes applied when its reported config holds the rendered values, or failed
(with the device's reasons) once it applied the desired version carrying them.

Below the twin service (which calls it on every report) and beside ``templates`` (which
re-exports it): it imports neither, so they need not import each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.base import now as wall_now
from wrale.fleet.brain.models.templates import ConfigDeployment, ConfigDeploymentDevice
from wrale.fleet.brain.services.twin_doc import same_json


def contains(have: Any, want: Any) -> bool:
    """Whether ``have`` holds everything of ``want`` (objects: each key recursively)."""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(
            k in have and contains(have[k], v) for k, v in want.items()
        )
    return same_json(want, have)


def _config_rejections(rendered: Mapping[str, Any], rejected: Mapping[str, str]) -> list[str]:
    out = []
    for path, why in rejected.items():
        parts = path.split(".")
        if len(parts) >= 2 and parts[0] == "config" and parts[1] in rendered:
            out.append(f"{path}: {why}")
    return out


async def update_status_from_reported(
    session: AsyncSession,
    device: Device,
    reported_doc: Mapping[str, Any],
    rejected: Mapping[str, str],
    applied_desired_version: int = 0,
    now: float | None = None,
) -> None:
    """Settle the device's pending deployments from what it reports: applied when its
    config holds the rendered values; failed (with the device's reasons) when it applied
    the desired version carrying them but rejected or did not take them."""
    rows = await session.execute(
        select(ConfigDeploymentDevice, ConfigDeployment.rendered)
        .join(ConfigDeployment, ConfigDeployment.id == ConfigDeploymentDevice.deployment_id)
        .where(
            ConfigDeploymentDevice.device_id == device.id,
            ConfigDeploymentDevice.status == "pending",
        )
    )
    at = wall_now() if now is None else now
    raw = reported_doc.get("config")
    config: dict[str, Any] = raw if isinstance(raw, dict) else {}
    for row, rendered in rows:
        rendered = rendered or {}
        if contains(config, rendered):
            row.status, row.reason, row.updated_at = "applied", None, at
            continue
        if applied_desired_version < row.desired_version:
            continue  # the device has not applied the desired state carrying it yet
        reasons = _config_rejections(rendered, rejected)
        if not reasons:
            missing = sorted(k for k in rendered if not contains(config.get(k), rendered[k]))
            reasons = [
                f"the device applied desired version {applied_desired_version} but reports "
                f"other values for config.{', config.'.join(missing)}"
            ]
        row.status = "failed"
        row.reason = "; ".join(reasons)[:2000]
        row.updated_at = at
