"""``/enrollment-tokens`` (admin), ``/enroll`` (a device with a token, no user) and
``/enroll/bulk`` (an operator enrolling many boards at once, credentials returned once)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy import or_, select

from wrale.fleet.brain.models import EnrollmentToken
from wrale.fleet.brain.models.base import now
from wrale.fleet.brain.services import enrollment
from wrale.fleet.brain.services.principal import Role
from wrale.user.api.broker_accounts import provision_broker
from wrale.user.api.deps import AdminDep, OperatorDep, PageDep, SessionDep, StateDep
from wrale.user.api.routes.devices import device_public
from wrale.user.api.schemas.common import Page, fetch_page, page_of
from wrale.user.api.schemas.registry import (
    BulkEnrolled,
    BulkEnrollRequest,
    Enrolled,
    EnrollmentTokenCreate,
    EnrollmentTokenCreated,
    EnrollmentTokenPublic,
    EnrollRequest,
)

router = APIRouter()


def token_public(t: EnrollmentToken) -> EnrollmentTokenPublic:
    return EnrollmentTokenPublic.model_validate(enrollment.token_view(t))


@router.post("/enrollment-tokens", status_code=201, tags=["enrollment"])
async def create_token(
    body: EnrollmentTokenCreate, p: AdminDep, session: SessionDep
) -> EnrollmentTokenCreated:
    """A new enrollment token (admin); the ``token`` is shown once."""
    token, secret = await enrollment.create_token(
        session,
        p,
        body.name,
        max_uses=body.max_uses,
        expires_in_s=body.expires_in_s,
        target_group_id=body.target_group_id,
        target_tags=body.target_tags,
        target_rack_id=body.target_rack_id,
    )
    return EnrollmentTokenCreated(**enrollment.token_view(token), token=secret)


@router.get("/enrollment-tokens", tags=["enrollment"])
async def list_tokens(
    p: AdminDep,
    session: SessionDep,
    page: PageDep,
    active: Annotated[bool | None, Query(description="only usable (or only unusable)")] = None,
) -> Page[EnrollmentTokenPublic]:
    """The organisation's enrollment tokens, without secrets (admin)."""
    p.require(Role.ADMIN, "listing enrollment tokens")
    stmt = select(EnrollmentToken).where(EnrollmentToken.tenant_id == p.tenant_id)
    if active is not None:
        usable = (
            EnrollmentToken.revoked.is_(False)
            & or_(EnrollmentToken.expires_at.is_(None), EnrollmentToken.expires_at > now())
            & or_(
                EnrollmentToken.max_uses.is_(None),
                EnrollmentToken.uses < EnrollmentToken.max_uses,
            )
        )
        stmt = stmt.where(usable if active else ~usable)
    rows = await fetch_page(session, stmt, EnrollmentToken.id, page)
    return page_of(rows, page, token_public)


@router.get("/enrollment-tokens/{token_id}", tags=["enrollment"])
async def get_token(token_id: str, p: AdminDep, session: SessionDep) -> EnrollmentTokenPublic:
    p.require(Role.ADMIN, "reading enrollment tokens")
    return token_public(await enrollment.get_token(session, p.tenant_id, token_id))


@router.delete("/enrollment-tokens/{token_id}", tags=["enrollment"])
async def revoke_token(token_id: str, p: AdminDep, session: SessionDep) -> EnrollmentTokenPublic:
    """Revoke the token (admin): devices already enrolled keep their credentials."""
    return token_public(await enrollment.revoke_token(session, p, token_id))


def _enrolled(e: enrollment.Enrolled, broker_auth: bool = False) -> Enrolled:
    return Enrolled(
        device_id=e.device.id,
        device_secret=e.secret,
        device=device_public(e.device),
        target_group_id=e.target_group_id,
        mqtt_broker_auth=broker_auth,
    )


@router.post("/enroll", status_code=201, tags=["enrollment"])
async def enroll(
    body: EnrollRequest, request: Request, state: StateDep, session: SessionDep
) -> Enrolled:
    """A device exchanges an enrollment token for its own credential (no user login).

    401 when the token is unknown, revoked, expired or used up.
    """
    spec: dict[str, Any] = body.model_dump(exclude_none=True, exclude={"token"})
    source = request.client.host if request.client else None
    result = await enrollment.enroll(session, body.token, spec, source_ip=source, bus=state.bus)
    await provision_broker(request, [(result.device.id, result.secret, result.credential_id)])
    return _enrolled(result, state.settings.mqtt_broker_auth)


@router.post("/enroll/bulk", status_code=201, tags=["enrollment"])
async def enroll_bulk(
    body: BulkEnrollRequest, request: Request, p: OperatorDep, session: SessionDep, state: StateDep
) -> BulkEnrolled:
    """Enroll up to 1000 boards in one transaction (operator), each with its own secret.

    With ``token_id`` or ``token`` every device uses the token once and gets its targets;
    409 when the token cannot take them all.
    """
    specs = [d.model_dump(exclude_none=True) for d in body.devices]
    results = await enrollment.enroll_bulk(
        session, p, specs, token_id=body.token_id, token_secret=body.token, bus=state.bus
    )
    await provision_broker(request, [(e.device.id, e.secret, e.credential_id) for e in results])
    token_id = results[0].token_id if results else None
    broker_auth = state.settings.mqtt_broker_auth
    return BulkEnrolled(items=[_enrolled(e, broker_auth) for e in results], token_id=token_id)
