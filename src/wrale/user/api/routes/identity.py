"""``/auth``, ``/users``, ``/api-tokens`` and ``/audit``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import select

from wrale.fleet.brain.models import ApiToken, AuditEntry, User
from wrale.fleet.brain.services import audit, identity
from wrale.fleet.brain.services.login_throttle import LoginThrottledError
from wrale.fleet.brain.services.principal import Role
from wrale.user.api.deps import (
    AdminDep,
    AuditReaderDep,
    PageDep,
    PrincipalDep,
    SessionDep,
    StateDep,
)
from wrale.user.api.errors import error_json
from wrale.user.api.schemas.common import Page, fetch_page, page_of
from wrale.user.api.schemas.identity import (
    ApiTokenCreate,
    ApiTokenCreated,
    ApiTokenPublic,
    AuditPublic,
    LoginRequest,
    MePublic,
    RefreshRequest,
    TokenResponse,
    UserCreate,
    UserPublic,
    UserUpdate,
)

router = APIRouter()


def _tokens(t: identity.Tokens) -> TokenResponse:
    return TokenResponse(
        access_token=t.access_token,
        expires_in=t.expires_in,
        refresh_token=t.refresh_token,
        user=UserPublic.model_validate(identity.user_view(t.user)),
    )


def throttled(exc: LoginThrottledError) -> JSONResponse:
    """429 with ``Retry-After``: the address must wait before its next login attempt."""
    headers = {"Retry-After": str(exc.retry_after_s)}
    return error_json(429, exc.code, exc.message, exc.details, headers)


@router.post(
    "/auth/login",
    response_model=TokenResponse,
    tags=["auth"],
    responses={429: {"description": "too many failed logins; see Retry-After"}},
)
async def login(
    body: LoginRequest, request: Request, state: StateDep, session: SessionDep
) -> TokenResponse | JSONResponse:
    """Exchange a username and password for an access token and a refresh token.

    Failures are throttled per address+username and per address with a back-off."""
    source = request.client.host if request.client else None
    try:
        tokens = await identity.login(session, body.username, body.password, state.auth, source)
    except LoginThrottledError as exc:
        return throttled(exc)
    return _tokens(tokens)


@router.post("/auth/refresh", tags=["auth"])
async def refresh(body: RefreshRequest, state: StateDep, session: SessionDep) -> TokenResponse:
    """Exchange a refresh token (spent by the exchange) for new tokens."""
    return _tokens(await identity.refresh(session, body.refresh_token, state.auth))


@router.post("/auth/logout", status_code=204, tags=["auth"])
async def logout(body: RefreshRequest, session: SessionDep) -> Response:
    await identity.logout(session, body.refresh_token)
    return Response(status_code=204)


@router.get("/auth/me", tags=["auth"])
async def me(p: PrincipalDep) -> MePublic:
    return MePublic(
        tenant_id=p.tenant_id,
        role=p.role,
        actor_type=p.actor_type,
        actor_id=p.actor_id,
        name=p.name,
    )


# ----------------------------------------------------------------------------- users


@router.get("/users", tags=["users"])
async def list_users(p: AdminDep, session: SessionDep, page: PageDep) -> Page[UserPublic]:
    p.require(Role.ADMIN, "listing users")
    stmt = select(User).where(User.tenant_id == p.tenant_id)
    rows = await fetch_page(session, stmt, User.id, page)
    return page_of(rows, page, lambda u: UserPublic.model_validate(identity.user_view(u)))


@router.post("/users", status_code=201, tags=["users"])
async def create_user(body: UserCreate, p: AdminDep, session: SessionDep) -> UserPublic:
    user = await identity.create_user(session, p, body.username, body.password, body.role)
    return UserPublic.model_validate(identity.user_view(user))


@router.get("/users/{user_id}", tags=["users"])
async def get_user(user_id: str, p: PrincipalDep, session: SessionDep) -> UserPublic:
    if user_id != p.actor_id:
        p.require(Role.ADMIN, "reading other users")
    user = await identity.get_user(session, p.tenant_id, user_id)
    return UserPublic.model_validate(identity.user_view(user))


@router.patch("/users/{user_id}", tags=["users"])
async def update_user(
    user_id: str, body: UserUpdate, p: AdminDep, session: SessionDep
) -> UserPublic:
    user = await identity.update_user(
        session, p, user_id, role=body.role, disabled=body.disabled, password=body.password
    )
    return UserPublic.model_validate(identity.user_view(user))


@router.delete("/users/{user_id}", status_code=204, tags=["users"])
async def delete_user(user_id: str, p: AdminDep, session: SessionDep) -> Response:
    await identity.delete_user(session, p, user_id)
    return Response(status_code=204)


# ----------------------------------------------------------------------------- API tokens


@router.get("/api-tokens", tags=["api-tokens"])
async def list_tokens(p: AdminDep, session: SessionDep, page: PageDep) -> Page[ApiTokenPublic]:
    p.require(Role.ADMIN, "listing API tokens")
    stmt = select(ApiToken).where(ApiToken.tenant_id == p.tenant_id)
    rows = await fetch_page(session, stmt, ApiToken.id, page)
    return page_of(rows, page, lambda t: ApiTokenPublic.model_validate(identity.token_view(t)))


@router.post("/api-tokens", status_code=201, tags=["api-tokens"])
async def create_token(body: ApiTokenCreate, p: AdminDep, session: SessionDep) -> ApiTokenCreated:
    token, secret = await identity.create_api_token(
        session, p, body.name, body.role, body.expires_in_s
    )
    return ApiTokenCreated(**identity.token_view(token), token=secret)


@router.delete("/api-tokens/{token_id}", tags=["api-tokens"])
async def revoke_token(token_id: str, p: AdminDep, session: SessionDep) -> ApiTokenPublic:
    token = await identity.revoke_api_token(session, p, token_id)
    return ApiTokenPublic.model_validate(identity.token_view(token))


# ----------------------------------------------------------------------------- audit


def _audit_view(e: AuditEntry) -> AuditPublic:
    return AuditPublic(
        id=e.id,
        at=e.created_at,
        actor_type=e.actor_type,
        actor_id=e.actor_id,
        actor_name=e.actor_name,
        action=e.action,
        resource_type=e.resource_type,
        resource_id=e.resource_id,
        outcome=e.outcome,
        before=e.before,
        after=e.after,
        source_ip=e.source_ip,
        details=e.details,
    )


@router.get("/audit", tags=["audit"])
async def list_audit(
    p: AuditReaderDep,
    session: SessionDep,
    page: PageDep,
    action: Annotated[str | None, Query(max_length=64)] = None,
    actor: Annotated[str | None, Query(max_length=100)] = None,
    resource_type: Annotated[str | None, Query(max_length=32)] = None,
    resource_id: Annotated[str | None, Query(max_length=64)] = None,
    outcome: Annotated[str | None, Query(pattern="^(success|denied|failed)$")] = None,
    since: Annotated[float | None, Query(ge=0, le=1e11)] = None,
    until: Annotated[float | None, Query(ge=0, le=1e11)] = None,
) -> Page[AuditPublic]:
    """The audit log, newest first (``services.audit.READ_ROLE``: admins)."""
    rows = await audit.query(
        session,
        p.tenant_id,
        after_id=page.after,
        limit=page.limit + 1,
        action=action,
        actor=actor,
        resource_type=resource_type,
        resource_id=resource_id,
        outcome=outcome,
        since=since,
        until=until,
    )
    return page_of(rows, page, _audit_view)
