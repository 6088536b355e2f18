"""``/policies`` (versioned thermal / power / security / sampling documents on the fleet, a
group or a device), ``/policies/recompose/{id}`` (the background recomposition of the twins
a change touched) and ``/devices/{id}/effective-policy``. Admins write; everyone reads."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from sqlalchemy import select

from wrale.fleet.brain.models.policies import Policy, PolicyVersion
from wrale.fleet.brain.services import policies, twin_recompose
from wrale.user.api.deps import AdminDep, PageDep, SessionDep, StateDep, ViewerDep
from wrale.user.api.schemas.common import Page, fetch_page, page_of
from wrale.user.api.schemas.policies import (
    EffectivePolicy,
    Kind,
    PolicyCreate,
    PolicyPublic,
    PolicyUpdate,
    PolicyVersionPublic,
    RecomposePublic,
)

router = APIRouter()


def _policy(p: Policy, recompose: dict[str, Any] | None = None) -> PolicyPublic:
    return PolicyPublic.model_validate({**policies.policy_view(p), "recompose": recompose})


@router.get("/policies", tags=["policies"])
async def list_policies(
    p: ViewerDep,
    session: SessionDep,
    page: PageDep,
    scope_type: Annotated[str | None, Query(pattern="^(fleet|group|device)$")] = None,
    scope_id: Annotated[str | None, Query(max_length=32)] = None,
    kind: Kind | None = None,
) -> Page[PolicyPublic]:
    stmt = select(Policy).where(Policy.tenant_id == p.tenant_id)
    if scope_type:
        stmt = stmt.where(Policy.scope_type == scope_type)
    if scope_id:
        stmt = stmt.where(Policy.scope_id == scope_id)
    if kind:
        stmt = stmt.where(Policy.kind == kind)
    rows = await fetch_page(session, stmt, Policy.id, page)
    return page_of(rows, page, _policy)


@router.post("/policies", status_code=201, tags=["policies"])
async def create_policy(
    body: PolicyCreate, p: AdminDep, session: SessionDep, state: StateDep
) -> PolicyPublic:
    """Attach a (partial) policy document to the fleet, a group or a device (version 1).
    A device's twin is recomposed at once; a group's or the fleet's twins in the
    background: ``recompose`` says how far (poll ``/policies/recompose/{id}``)."""
    document = body.document.model_dump(mode="json", exclude_unset=True)
    scope_id = getattr(body, "scope_id", None)
    pol = await policies.create_policy(
        session, p, body.scope_type, scope_id, body.kind, document, state.bus
    )
    return _policy(pol, policies.recompose_of(session))


@router.get("/policies/recompose/{recompose_id}", tags=["policies"])
async def get_recompose(recompose_id: str, p: ViewerDep, session: SessionDep) -> RecomposePublic:
    """How far the background recomposition of a change's twins is (recent ones only)."""
    return RecomposePublic.model_validate(
        await twin_recompose.status(session, p.tenant_id, recompose_id)
    )


@router.get("/policies/{policy_id}", tags=["policies"])
async def get_policy(policy_id: str, p: ViewerDep, session: SessionDep) -> PolicyPublic:
    return _policy(await policies.get_policy(session, p.tenant_id, policy_id))


@router.put("/policies/{policy_id}", tags=["policies"])
async def update_policy(
    policy_id: str, body: PolicyUpdate, p: AdminDep, session: SessionDep, state: StateDep
) -> PolicyPublic:
    """Replace the document; the policy moves to its next version (history is kept). The
    twins of its scope are recomposed as on creation (``recompose``)."""
    document = body.document.model_dump(mode="json", exclude_unset=True)
    pol = await policies.update_policy(
        session, p, policy_id, document, body.expected_version, state.bus
    )
    return _policy(pol, policies.recompose_of(session))


@router.delete("/policies/{policy_id}", status_code=204, tags=["policies"])
async def delete_policy(
    policy_id: str, p: AdminDep, session: SessionDep, state: StateDep
) -> Response:
    await policies.delete_policy(session, p, policy_id, state.bus)
    return Response(status_code=204)


@router.get("/policies/{policy_id}/versions", tags=["policies"])
async def list_versions(
    policy_id: str, p: ViewerDep, session: SessionDep, page: PageDep
) -> Page[PolicyVersionPublic]:
    """Every version of the policy, oldest first."""
    rows = await policies.versions(session, p.tenant_id, policy_id, page.after, page.limit + 1)
    return page_of(rows, page, _version)


def _version(v: PolicyVersion) -> PolicyVersionPublic:
    return PolicyVersionPublic(
        version=v.version, document=v.document, author=v.author, created_at=v.created_at
    )


@router.get("/devices/{device_id}/effective-policy", tags=["policies"])
async def effective_policy(device_id: str, p: ViewerDep, session: SessionDep) -> EffectivePolicy:
    """Per kind, the merged document (fleet → groups, farthest first → device; nearest
    wins) and, for every field, the policy and version it came from (null: default)."""
    return EffectivePolicy.model_validate(
        await policies.effective_policy(session, p.tenant_id, device_id)
    )
