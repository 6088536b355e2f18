"""API tokens for automation: minted by a signed-in user (never by another token), acting
with the lower of their own role and their creator's current one, off while the creator
is disabled, revoked when the creator is deleted. Raises domain errors only."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import ApiToken, Tenant, User
from wrale.fleet.brain.models.base import now
from wrale.fleet.brain.services import audit
from wrale.fleet.brain.services.principal import ForbiddenError, Principal, Role, at_least
from wrale.shared.errors import AuthError, InvalidRequestError, NotFoundError

API_TOKEN_PREFIX = "wrl_"  # noqa: S105 - a marker, not a secret
_INVALID = "invalid, revoked or expired API token"


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def lower_role(a: Role, b: Role) -> Role:
    return a if at_least(b, a) else b


def token_view(t: ApiToken) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "role": t.role,
        "prefix": t.prefix,
        "created_at": t.created_at,
        "expires_at": t.expires_at,
        "revoked_at": t.revoked_at,
        "last_used_at": t.last_used_at,
    }


async def create_api_token(
    session: AsyncSession, p: Principal, name: str, role: Role, expires_in_s: float | None
) -> tuple[ApiToken, str]:
    """A new API token (its secret returned once); never above the creator's role."""
    p.require(Role.ADMIN, "creating API tokens")
    if p.actor_type != "user":
        raise ForbiddenError(
            "an API token cannot create API tokens; sign in as a user", actor_type=p.actor_type
        )
    if not at_least(p.role, role):
        raise InvalidRequestError("a token cannot have more rights than its creator")
    secret = f"{API_TOKEN_PREFIX}{secrets.token_urlsafe(32)}"
    token = ApiToken(
        tenant_id=p.tenant_id,
        name=name,
        role=role.value,
        user_id=p.actor_id,
        token_hash=sha256(secret),
        prefix=secret[:10],
        expires_at=now() + expires_in_s if expires_in_s else None,
    )
    session.add(token)
    await session.flush()
    audit.record(
        session,
        p,
        "api_token.create",
        resource_type="api_token",
        resource_id=token.id,
        after=token_view(token),
    )
    return token, secret


async def revoke_api_token(session: AsyncSession, p: Principal, token_id: str) -> ApiToken:
    p.require(Role.ADMIN, "revoking API tokens")
    token = await session.get(ApiToken, token_id)
    if token is None or token.tenant_id != p.tenant_id:
        raise NotFoundError(f"no API token {token_id}")
    if token.revoked_at is None:
        before = token_view(token)
        token.revoked_at = now()
        audit.record(
            session,
            p,
            "api_token.revoke",
            resource_type="api_token",
            resource_id=token.id,
            before=before,
            after=token_view(token),
        )
    return token


async def revoke_tokens_of(session: AsyncSession, user_id: str) -> None:
    """Revoke every API token ``user_id`` created (the user is being deleted)."""
    await session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now())
    )


async def token_principal(session: AsyncSession, bearer: str, source_ip: str | None) -> Principal:
    """The principal behind an API token: its role capped by its creator's current role."""
    row = await session.scalar(select(ApiToken).where(ApiToken.token_hash == sha256(bearer)))
    t = now()
    if row is None or row.revoked_at is not None or (row.expires_at and row.expires_at < t):
        raise AuthError(_INVALID)
    creator = await session.get(User, row.user_id) if row.user_id else None
    if creator is None or creator.disabled or creator.tenant_id != row.tenant_id:
        raise AuthError(_INVALID)  # a deleted or disabled creator takes its tokens along
    tenant = await session.get(Tenant, row.tenant_id)
    if tenant is None or tenant.status != "active":
        raise AuthError("the organisation is suspended")
    role = lower_role(Role(row.role), Role(creator.role))
    principal = Principal(row.tenant_id, role, "token", row.id, row.name, source_ip)
    if row.last_used_at is None or t - row.last_used_at > 60:  # audit use, once a minute
        row.last_used_at = t
        audit.record(
            session, principal, "auth.token_use", resource_type="api_token", resource_id=row.id
        )
        await session.commit()
    return principal
