"""``/config-templates``: templates with immutable versions (operators write, admins
delete, everyone reads), rendering previews, deployments to a device, a group or the
fleet with per-device status, and rollback to an earlier version."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from sqlalchemy import select

from wrale.fleet.brain.models.templates import (
    ConfigDeployment,
    ConfigDeploymentDevice,
    ConfigTemplate,
    ConfigTemplateVersion,
)
from wrale.fleet.brain.services import templates as svc
from wrale.user.api.deps import AdminDep, OperatorDep, PageDep, SessionDep, StateDep, ViewerDep
from wrale.user.api.schemas.common import Page, fetch_page, page_of
from wrale.user.api.schemas.templates import (
    DeploymentCreate,
    DeploymentDevicePublic,
    DeploymentPublic,
    DeviceStatus,
    Rendered,
    RenderRequest,
    RollbackRequest,
    TemplateCreate,
    TemplatePublic,
    TemplateUpdate,
    VersionCreate,
    VersionPublic,
)

router = APIRouter(prefix="/config-templates", tags=["config templates"])
# 0 is accepted (and not found) so every path parameter answers 404, not 422, to a stranger
VersionPath = Annotated[int, Path(ge=0, le=2**31 - 1)]
NameQ = Annotated[
    str | None, Query(max_length=100, pattern=r"^[^\x00-\x1f\x7f]*$", description="exact name")
]


def _template(t: ConfigTemplate, latest: ConfigTemplateVersion | None = None) -> TemplatePublic:
    return TemplatePublic.model_validate(svc.template_view(t, latest))


def _version(v: ConfigTemplateVersion) -> VersionPublic:
    return VersionPublic.model_validate(svc.version_view(v))


async def _deployment(session: SessionDep, d: ConfigDeployment) -> DeploymentPublic:
    counts = await svc.counts(session, [d.id])
    return DeploymentPublic.model_validate(svc.deployment_view(d, counts[d.id]))


@router.get("")
async def list_templates(
    p: ViewerDep, session: SessionDep, page: PageDep, name: NameQ = None
) -> Page[TemplatePublic]:
    stmt = select(ConfigTemplate).where(ConfigTemplate.tenant_id == p.tenant_id)
    if name:
        stmt = stmt.where(ConfigTemplate.name == name)
    return page_of(await fetch_page(session, stmt, ConfigTemplate.id, page), page, _template)


@router.post("", status_code=201)
async def create_template(
    body: TemplateCreate, p: OperatorDep, session: SessionDep
) -> TemplatePublic:
    """A template at version 1 (errors name the variable or the body path)."""
    t, v = await svc.create_template(
        session,
        p,
        body.name,
        body.body,
        {k: s.model_dump(exclude_none=True) for k, s in body.variables.items()},
        description=body.description,
        note=body.note,
    )
    return _template(t, v)


@router.get("/{template_id}")
async def get_template(template_id: str, p: ViewerDep, session: SessionDep) -> TemplatePublic:
    """The template with its latest version."""
    v = await svc.get_version(session, p.tenant_id, template_id)
    return _template(await svc.get_template(session, p.tenant_id, template_id), v)


@router.patch("/{template_id}")
async def update_template(
    template_id: str, body: TemplateUpdate, p: OperatorDep, session: SessionDep
) -> TemplatePublic:
    """Rename or describe; the body changes only through a new version."""
    changes = body.model_dump(exclude_unset=True)
    if changes.get("name", "") is None:
        changes.pop("name")
    return _template(await svc.update_template(session, p, template_id, changes))


@router.delete("/{template_id}", status_code=204)
async def delete_template(template_id: str, p: AdminDep, session: SessionDep) -> Response:
    """Delete the template, its versions and deployment records (admin); config already
    in the twins stays."""
    await svc.delete_template(session, p, template_id)
    return Response(status_code=204)


# ----------------------------------------------------------------------------- versions


@router.get("/{template_id}/versions")
async def list_versions(
    template_id: str, p: ViewerDep, session: SessionDep, page: PageDep
) -> Page[VersionPublic]:
    """Every version, oldest first."""
    t = await svc.get_template(session, p.tenant_id, template_id)
    stmt = select(ConfigTemplateVersion).where(ConfigTemplateVersion.template_id == t.id)
    rows = await fetch_page(session, stmt, ConfigTemplateVersion.id, page)
    return page_of(rows, page, _version)


@router.post("/{template_id}/versions", status_code=201)
async def add_version(
    template_id: str, body: VersionCreate, p: OperatorDep, session: SessionDep
) -> VersionPublic:
    """The next version (earlier versions never change)."""
    variables = {k: s.model_dump(exclude_none=True) for k, s in body.variables.items()}
    v = await svc.add_version(session, p, template_id, body.body, variables, body.note)
    return _version(v)


@router.get("/{template_id}/versions/{version}")
async def get_version(
    template_id: str, version: VersionPath, p: ViewerDep, session: SessionDep
) -> VersionPublic:
    return _version(await svc.get_version(session, p.tenant_id, template_id, version))


@router.post("/{template_id}/render")
async def render(
    template_id: str,
    p: ViewerDep,
    session: SessionDep,
    body: RenderRequest | None = None,
) -> Rendered:
    """Preview a version rendered with variables (nothing is stored)."""
    req = body or RenderRequest()
    v = await svc.get_version(session, p.tenant_id, template_id, req.version)
    rendered = svc.render(v.body, v.variables, req.variables)
    return Rendered(template_id=v.template_id, version=v.version, rendered=rendered)


# ----------------------------------------------------------------------------- deployments


@router.get("/{template_id}/deployments")
async def list_deployments(
    template_id: str, p: ViewerDep, session: SessionDep, page: PageDep
) -> Page[DeploymentPublic]:
    """Deployments of the template, oldest first, with their per-status device counts."""
    t = await svc.get_template(session, p.tenant_id, template_id)
    stmt = select(ConfigDeployment).where(ConfigDeployment.template_id == t.id)
    rows = await fetch_page(session, stmt, ConfigDeployment.id, page)
    counts = await svc.counts(session, [r.id for r in rows[: page.limit]])
    return page_of(
        rows,
        page,
        lambda d: DeploymentPublic.model_validate(svc.deployment_view(d, counts.get(d.id))),
    )


@router.post("/{template_id}/deployments", status_code=201)
async def deploy(
    template_id: str, body: DeploymentCreate, p: OperatorDep, session: SessionDep, state: StateDep
) -> DeploymentPublic:
    """Render a version and write it into the config of each target device's twin; every
    device starts pending and becomes applied or failed from what it reports."""
    dep = await svc.deploy(
        session,
        p,
        template_id,
        target_type=body.target_type,
        target_id=body.target_id,
        variables=body.variables,
        version=body.version,
        bus=state.bus,
    )
    return await _deployment(session, dep)


@router.get("/{template_id}/deployments/{deployment_id}")
async def get_deployment(
    template_id: str, deployment_id: str, p: ViewerDep, session: SessionDep
) -> DeploymentPublic:
    dep = await svc.get_deployment(session, p.tenant_id, template_id, deployment_id)
    return await _deployment(session, dep)


@router.get("/{template_id}/deployments/{deployment_id}/devices")
async def deployment_devices(
    template_id: str,
    deployment_id: str,
    p: ViewerDep,
    session: SessionDep,
    page: PageDep,
    status: Annotated[list[DeviceStatus] | None, Query(description="any of")] = None,
) -> Page[DeploymentDevicePublic]:
    """Each target device's status: pending, applied, failed (with the reason) or
    superseded by a later deployment."""
    dep = await svc.get_deployment(session, p.tenant_id, template_id, deployment_id)
    stmt = select(ConfigDeploymentDevice).where(ConfigDeploymentDevice.deployment_id == dep.id)
    if status:
        stmt = stmt.where(ConfigDeploymentDevice.status.in_(status))
    rows = await fetch_page(session, stmt, ConfigDeploymentDevice.id, page)
    return page_of(
        rows, page, lambda r: DeploymentDevicePublic.model_validate(svc.device_status_view(r))
    )


@router.post("/{template_id}/deployments/{deployment_id}/rollback", status_code=201)
async def rollback(
    template_id: str,
    deployment_id: str,
    p: OperatorDep,
    session: SessionDep,
    state: StateDep,
    body: RollbackRequest | None = None,
) -> DeploymentPublic:
    """Deploy an earlier version to the same target: by default the version deployed
    there before this one (with its variables), else the version below it."""
    req = body or RollbackRequest()
    dep = await svc.rollback(
        session,
        p,
        template_id,
        deployment_id,
        version=req.version,
        variables=req.variables,
        bus=state.bus,
    )
    return await _deployment(session, dep)
