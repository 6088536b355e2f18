"""Config templates: immutable versions of a JSON body whose strings may hold ``${var}``
placeholders, with a schema of typed variables; rendering (pure, errors name the
variable); deployments of a version to a device, a group or the fleet, which write the
rendered keys into each device's twin ``config`` and track per-device status
(pending → applied | failed + reason, or superseded); and rollback to an earlier version.

The template language itself (schema, placeholders, rendering) is in ``template_render``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.bus import EventBus
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.base import now as wall_now
from wrale.fleet.brain.models.templates import (
    ConfigDeployment,
    ConfigDeploymentDevice,
    ConfigTemplate,
    ConfigTemplateVersion,
)
from wrale.fleet.brain.services import audit, groups, twin
from wrale.fleet.brain.services.lookup import get_owned
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.fleet.brain.services.template_render import check_schema as check_schema
from wrale.fleet.brain.services.template_render import check_template as check_template
from wrale.fleet.brain.services.template_render import render as render
from wrale.fleet.brain.services.template_status import contains as contains
from wrale.fleet.brain.services.template_status import (
    update_status_from_reported as update_status_from_reported,
)
from wrale.fleet.brain.services.template_views import DEVICE_STATUSES as DEVICE_STATUSES
from wrale.fleet.brain.services.template_views import counts as counts
from wrale.fleet.brain.services.template_views import deployment_view as deployment_view
from wrale.fleet.brain.services.template_views import device_status_view as device_status_view
from wrale.fleet.brain.services.template_views import template_view as template_view
from wrale.fleet.brain.services.template_views import version_view as version_view
from wrale.shared.errors import ConflictError, InvalidRequestError, NotFoundError

TARGETS = ("device", "group", "fleet")

# ----------------------------------------------------------------------------- templates


async def get_template(session: AsyncSession, tenant_id: str, template_id: str) -> ConfigTemplate:
    return await get_owned(session, ConfigTemplate, tenant_id, template_id, "config template")


async def get_version(
    session: AsyncSession, tenant_id: str, template_id: str, version: int | None = None
) -> ConfigTemplateVersion:
    """A version of the template (None: the latest)."""
    t = await get_template(session, tenant_id, template_id)
    number = t.latest_version if version is None else version
    row = await session.scalar(
        select(ConfigTemplateVersion).where(
            ConfigTemplateVersion.template_id == t.id, ConfigTemplateVersion.version == number
        )
    )
    if row is None:
        raise NotFoundError(
            f"config template {t.name!r} has no version {number} (latest: {t.latest_version})",
            version=number,
        )
    return row


async def _unique_name(session: AsyncSession, tenant_id: str, name: str) -> None:
    taken = await session.scalar(
        select(ConfigTemplate.id).where(
            ConfigTemplate.tenant_id == tenant_id, ConfigTemplate.name == name
        )
    )
    if taken:
        raise ConflictError(f"a config template named {name!r} already exists", name=name)


async def create_template(
    session: AsyncSession,
    p: Principal,
    name: str,
    body: Any,
    variables: Any,
    *,
    description: str | None = None,
    note: str | None = None,
) -> tuple[ConfigTemplate, ConfigTemplateVersion]:
    """A new template at version 1."""
    p.require(Role.OPERATOR, "creating config templates")
    clean_body, schema = check_template(body, variables)
    await _unique_name(session, p.tenant_id, name)
    at = wall_now()
    t = ConfigTemplate(
        tenant_id=p.tenant_id, name=name, description=description, latest_version=1, updated_at=at
    )
    session.add(t)
    await session.flush()
    v = ConfigTemplateVersion(
        tenant_id=p.tenant_id,
        template_id=t.id,
        version=1,
        body=clean_body,
        variables=schema,
        note=note,
        created_by=p.name,
    )
    session.add(v)
    await session.flush()
    audit.record(
        session,
        p,
        "config_template.create",
        resource_type="config_template",
        resource_id=t.id,
        after=template_view(t, v),
    )
    return t, v


async def add_version(
    session: AsyncSession,
    p: Principal,
    template_id: str,
    body: Any,
    variables: Any,
    note: str | None,
) -> ConfigTemplateVersion:
    """The template's next version (earlier ones never change)."""
    p.require(Role.OPERATOR, "changing config templates")
    t = await get_template(session, p.tenant_id, template_id)
    clean_body, schema = check_template(body, variables)
    t.latest_version += 1
    t.updated_at = wall_now()
    v = ConfigTemplateVersion(
        tenant_id=p.tenant_id,
        template_id=t.id,
        version=t.latest_version,
        body=clean_body,
        variables=schema,
        note=note,
        created_by=p.name,
    )
    session.add(v)
    await session.flush()
    audit.record(
        session,
        p,
        "config_template.version",
        resource_type="config_template",
        resource_id=t.id,
        after=version_view(v),
    )
    return v


async def update_template(
    session: AsyncSession, p: Principal, template_id: str, changes: dict[str, Any]
) -> ConfigTemplate:
    """Rename or describe (the body changes only by adding a version)."""
    p.require(Role.OPERATOR, "changing config templates")
    t = await get_template(session, p.tenant_id, template_id)
    before = template_view(t)
    name = changes.get("name")
    if name is not None and name != t.name:
        await _unique_name(session, p.tenant_id, name)
        t.name = name
    if "description" in changes:
        t.description = changes["description"]
    if before != template_view(t):
        t.updated_at = wall_now()
        audit.record(
            session,
            p,
            "config_template.update",
            resource_type="config_template",
            resource_id=t.id,
            before=before,
            after=template_view(t),
        )
    return t


async def delete_template(session: AsyncSession, p: Principal, template_id: str) -> None:
    """Delete the template, its versions and deployment records (admin). Config already
    written into twins stays there."""
    p.require(Role.ADMIN, "deleting config templates")
    t = await get_template(session, p.tenant_id, template_id)
    audit.record(
        session,
        p,
        "config_template.delete",
        resource_type="config_template",
        resource_id=t.id,
        before=template_view(t),
    )
    await session.delete(t)


# ----------------------------------------------------------------------------- deployments


async def get_deployment(
    session: AsyncSession, tenant_id: str, template_id: str, deployment_id: str
) -> ConfigDeployment:
    dep = await get_owned(session, ConfigDeployment, tenant_id, deployment_id, "deployment")
    if dep.template_id != template_id:
        raise NotFoundError(f"no deployment {deployment_id}", deployment_id=deployment_id)
    return dep


async def _targets(
    session: AsyncSession, tenant_id: str, target_type: str, target_id: str | None
) -> tuple[str, list[Device]]:
    if target_type not in TARGETS:
        raise InvalidRequestError(f"target_type: one of {', '.join(TARGETS)}", field="target_type")
    if target_type == "fleet":
        if target_id:
            raise InvalidRequestError("target_id: the fleet takes none", field="target_id")
        rows = await session.scalars(
            select(Device).where(Device.tenant_id == tenant_id).order_by(Device.id)
        )
        devices = list(rows)
        key = ""
    elif not target_id:
        raise InvalidRequestError(f"target_id: the {target_type}'s id", field="target_id")
    elif target_type == "group":
        devices = await groups.devices_in_group(session, tenant_id, target_id, recursive=True)
        key = target_id
    else:
        devices = [await get_owned(session, Device, tenant_id, target_id, "device")]
        key = target_id
    return key, [d for d in devices if d.status != "decommissioned"]


async def _previous_keys(session: AsyncSession, template_id: str, device_id: str) -> set[str]:
    """The config keys this template last wrote into the device's twin."""
    rendered = await session.scalar(
        select(ConfigDeployment.rendered)
        .join(ConfigDeploymentDevice, ConfigDeploymentDevice.deployment_id == ConfigDeployment.id)
        .where(
            ConfigDeploymentDevice.device_id == device_id,
            ConfigDeployment.template_id == template_id,
        )
        .order_by(ConfigDeployment.id.desc())
        .limit(1)
    )
    return set(rendered or {})


async def _supersede(
    session: AsyncSession, dep: ConfigDeployment, device_id: str, at: float
) -> None:
    """Pending rows of the device that this deployment overwrites can never apply."""
    rows = await session.execute(
        select(ConfigDeploymentDevice, ConfigDeployment.rendered)
        .join(ConfigDeployment, ConfigDeployment.id == ConfigDeploymentDevice.deployment_id)
        .where(
            ConfigDeploymentDevice.device_id == device_id,
            ConfigDeploymentDevice.status == "pending",
            ConfigDeploymentDevice.deployment_id != dep.id,
        )
    )
    for row, rendered in rows:
        if row.template_id == dep.template_id or set(rendered or {}) & set(dep.rendered):
            row.status = "superseded"
            row.reason = f"superseded by deployment {dep.id}"
            row.updated_at = at


async def deploy(
    session: AsyncSession,
    p: Principal,
    template_id: str,
    *,
    target_type: str,
    target_id: str | None,
    variables: Any = None,
    version: int | None = None,
    bus: EventBus | None = None,
    rollback_of: str | None = None,
) -> ConfigDeployment:
    """Render a version with ``variables`` and write it into the config of every target
    device's twin (bumping its desired version); each device starts ``pending``.
    Decommissioned devices are left out."""
    p.require(Role.OPERATOR, "deploying config templates")
    v = await get_version(session, p.tenant_id, template_id, version)
    rendered = render(v.body, v.variables, variables)
    key, devices = await _targets(session, p.tenant_id, target_type, target_id)
    dep = ConfigDeployment(
        tenant_id=p.tenant_id,
        template_id=v.template_id,
        version=v.version,
        target_type=target_type,
        target_id=key,
        variables=dict(variables or {}),
        rendered=rendered,
        rollback_of=rollback_of,
        created_by=p.name,
    )
    session.add(dep)
    await session.flush()
    at = wall_now()
    for device in devices:
        remove = await _previous_keys(session, v.template_id, device.id) - set(rendered)
        t = await twin.set_config(session, device, rendered, remove, bus)
        await _supersede(session, dep, device.id, at)
        row = ConfigDeploymentDevice(
            tenant_id=p.tenant_id,
            deployment_id=dep.id,
            device_id=device.id,
            template_id=v.template_id,
            status="pending",
            desired_version=t.desired_version,
            updated_at=at,
        )
        if t.reported_version and contains(t.reported.get("config"), rendered):
            row.status = "applied"
        session.add(row)
    await session.flush()
    audit.record(
        session,
        p,
        "config_template.rollback" if rollback_of else "config_template.deploy",
        resource_type="config_template",
        resource_id=v.template_id,
        after={**deployment_view(dep), "devices": len(devices)},
    )
    return dep


async def rollback(
    session: AsyncSession,
    p: Principal,
    template_id: str,
    deployment_id: str,
    *,
    version: int | None = None,
    variables: Any = None,
    bus: EventBus | None = None,
) -> ConfigDeployment:
    """Deploy an earlier version to the deployment's target. Without ``version``: the
    version deployed to that target before this one (with its variables), else the
    version just below this one."""
    p.require(Role.OPERATOR, "rolling back config templates")
    dep = await get_deployment(session, p.tenant_id, template_id, deployment_id)
    chosen_vars = variables
    if version is None:
        prior = await session.scalar(
            select(ConfigDeployment)
            .where(
                ConfigDeployment.template_id == dep.template_id,
                ConfigDeployment.target_type == dep.target_type,
                ConfigDeployment.target_id == dep.target_id,
                ConfigDeployment.version != dep.version,
                ConfigDeployment.id < dep.id,
            )
            .order_by(ConfigDeployment.id.desc())
            .limit(1)
        )
        if prior is not None:
            version = prior.version
            chosen_vars = prior.variables if variables is None else variables
        elif dep.version > 1:
            version = dep.version - 1
        else:
            raise ConflictError(
                "this deployment is of version 1 and nothing else was deployed to its target "
                "before: there is no earlier version to roll back to"
            )
    if chosen_vars is None:
        chosen_vars = dep.variables
    return await deploy(
        session,
        p,
        template_id,
        target_type=dep.target_type,
        target_id=dep.target_id or None,
        variables=chosen_vars,
        version=version,
        bus=bus,
        rollback_of=dep.id,
    )
