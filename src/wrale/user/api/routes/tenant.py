"""``/tenant``: the caller's own organisation — status, quotas and usage; admins rename it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, StringConstraints

from wrale.fleet.brain.services import tenants
from wrale.user.api.deps import AdminDep, PrincipalDep, SessionDep
from wrale.user.api.schemas.common import Strict

router = APIRouter(tags=["tenant"])


class Quotas(BaseModel):
    devices: int
    users: int


class TenantPublic(BaseModel):
    id: str
    name: str
    status: str
    created_at: float
    quotas: Quotas
    usage: Quotas


class TenantUpdate(Strict):
    name: Annotated[
        str, StringConstraints(pattern=r"^[\w .@-]{1,100}$", strip_whitespace=True, min_length=1)
    ]


@router.get("/tenant")
async def get_tenant(p: PrincipalDep, session: SessionDep) -> TenantPublic:
    return TenantPublic.model_validate(await tenants.view(session, await tenants.own(session, p)))


@router.patch("/tenant")
async def update_tenant(body: TenantUpdate, p: AdminDep, session: SessionDep) -> TenantPublic:
    tenant = await tenants.rename(session, p, body.name)
    return TenantPublic.model_validate(await tenants.view(session, tenant))
