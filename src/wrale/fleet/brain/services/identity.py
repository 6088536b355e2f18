"""Identity: tenants, users, passwords (argon2), access tokens (JWT), refresh tokens,
API tokens, login throttling, and the first start's admin. Raises domain errors only."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import ApiToken, LoginThrottle, RefreshToken, Tenant, User
from wrale.fleet.brain.models.base import now
from wrale.fleet.brain.services import audit
from wrale.fleet.brain.services.lookup import get_owned
from wrale.fleet.brain.services.principal import Principal, Role, at_least
from wrale.shared.errors import (
    AuthError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
)

DEFAULT_TENANT = "default"
API_TOKEN_PREFIX = "wrl_"  # noqa: S105 - a marker, not a secret
_hasher = PasswordHasher()


@dataclass(frozen=True, slots=True)
class AuthConfig:
    secret_key: str
    access_ttl_s: int = 900
    refresh_ttl_s: int = 14 * 86_400
    max_failures: int = 5
    lockout_s: int = 300


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def hash_password(password: str) -> str:
    check_password_strength(password)
    return _hasher.hash(password)


def check_password_strength(password: str) -> None:
    if len(password) < 10:
        raise InvalidRequestError("password: use at least 10 characters", field="password")


def verify_password(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


# ----------------------------------------------------------------------------- login


@dataclass(frozen=True, slots=True)
class Tokens:
    access_token: str
    refresh_token: str
    expires_in: int
    user: User


def _access_token(user: User, cfg: AuthConfig) -> str:
    t = now()
    claims = {
        "sub": user.id,
        "tid": user.tenant_id,
        "role": user.role,
        "typ": "access",
        "iat": int(t),
        "exp": int(t + cfg.access_ttl_s),
        "jti": secrets.token_hex(8),
    }
    return jwt.encode(claims, cfg.secret_key, algorithm="HS256")


async def _issue(session: AsyncSession, user: User, cfg: AuthConfig) -> Tokens:
    refresh = secrets.token_urlsafe(32)
    session.add(
        RefreshToken(
            user_id=user.id, token_hash=sha256(refresh), expires_at=now() + cfg.refresh_ttl_s
        )
    )
    return Tokens(_access_token(user, cfg), refresh, cfg.access_ttl_s, user)


async def login(
    session: AsyncSession,
    username: str,
    password: str,
    cfg: AuthConfig,
    source_ip: str | None = None,
) -> Tokens:
    """Check a password; throttle repeated failures per username (in the database)."""
    t = now()
    throttle = await session.get(LoginThrottle, username)
    if throttle and throttle.locked_until > t:
        audit.record(
            session,
            None,
            "auth.login",
            outcome="denied",
            actor_name=username,
            source_ip=source_ip,
            details={"reason": "locked"},
        )
        raise AuthError(
            f"too many failed logins; try again in {int(throttle.locked_until - t) + 1} s",
            retry_after_s=int(throttle.locked_until - t) + 1,
        )
    user = await session.scalar(select(User).where(User.username == username))
    tenant = await session.get(Tenant, user.tenant_id) if user else None
    ok = (
        user is not None
        and not user.disabled
        and tenant is not None
        and tenant.status == "active"
        and verify_password(user.password_hash, password)
    )
    if not ok or user is None:
        if throttle is None:
            throttle = LoginThrottle(username=username, failures=0, first_failure_at=t)
            session.add(throttle)
        if t - throttle.first_failure_at > cfg.lockout_s:
            throttle.failures, throttle.first_failure_at = 0, t
        throttle.failures += 1
        if throttle.failures >= cfg.max_failures:
            throttle.locked_until = t + cfg.lockout_s
        audit.record(
            session,
            None,
            "auth.login",
            outcome="failed",
            actor_name=username,
            source_ip=source_ip,
            tenant_id=user.tenant_id if user else None,
        )
        await session.commit()  # the failure counts even though the request fails
        raise AuthError("wrong username or password")
    if throttle:
        await session.delete(throttle)
    user.last_login_at = t
    principal = Principal(
        user.tenant_id, Role(user.role), "user", user.id, user.username, source_ip
    )
    audit.record(session, principal, "auth.login", resource_type="user", resource_id=user.id)
    return await _issue(session, user, cfg)


async def refresh(session: AsyncSession, token: str, cfg: AuthConfig) -> Tokens:
    """Exchange a refresh token for new tokens; the old one is spent (rotation)."""
    row = await session.scalar(select(RefreshToken).where(RefreshToken.token_hash == sha256(token)))
    if row is None or row.revoked or row.expires_at < now():
        raise AuthError("refresh token is invalid or expired")
    row.revoked = True
    user = await session.get(User, row.user_id)
    if user is None or user.disabled:
        raise AuthError("refresh token is invalid or expired")
    return await _issue(session, user, cfg)


async def logout(session: AsyncSession, token: str) -> None:
    row = await session.scalar(select(RefreshToken).where(RefreshToken.token_hash == sha256(token)))
    if row is not None:
        row.revoked = True


async def authenticate(
    session: AsyncSession, bearer: str, cfg: AuthConfig, source_ip: str | None = None
) -> Principal:
    """The principal behind an access token or an API token; ``AuthError`` otherwise."""
    if bearer.startswith(API_TOKEN_PREFIX):
        return await _api_token_principal(session, bearer, source_ip)
    try:
        claims: dict[str, Any] = jwt.decode(bearer, cfg.secret_key, algorithms=["HS256"])
    except jwt.PyJWTError:
        raise AuthError("invalid or expired access token") from None
    if claims.get("typ") != "access":
        raise AuthError("invalid or expired access token")
    user = await session.get(User, str(claims.get("sub")))
    if user is None or user.disabled:
        raise AuthError("invalid or expired access token")
    tenant = await session.get(Tenant, user.tenant_id)
    if tenant is None or tenant.status != "active":
        raise AuthError("the organisation is suspended")
    return Principal(user.tenant_id, Role(user.role), "user", user.id, user.username, source_ip)


async def _api_token_principal(
    session: AsyncSession, bearer: str, source_ip: str | None
) -> Principal:
    row = await session.scalar(select(ApiToken).where(ApiToken.token_hash == sha256(bearer)))
    t = now()
    if row is None or row.revoked_at is not None or (row.expires_at and row.expires_at < t):
        raise AuthError("invalid, revoked or expired API token")
    tenant = await session.get(Tenant, row.tenant_id)
    if tenant is None or tenant.status != "active":
        raise AuthError("the organisation is suspended")
    principal = Principal(row.tenant_id, Role(row.role), "token", row.id, row.name, source_ip)
    if row.last_used_at is None or t - row.last_used_at > 60:  # audit use, once a minute
        row.last_used_at = t
        audit.record(
            session, principal, "auth.token_use", resource_type="api_token", resource_id=row.id
        )
        await session.commit()
    return principal


# ----------------------------------------------------------------------------- bootstrap


async def bootstrap(session: AsyncSession, admin_password: str | None) -> str | None:
    """Create the default tenant and its ``admin`` on first start.

    Returns the admin's password when it was generated (to be printed once), else None.
    """
    if await session.scalar(select(func.count()).select_from(User)):
        return None
    tenant = await session.scalar(select(Tenant).where(Tenant.name == DEFAULT_TENANT))
    if tenant is None:
        tenant = Tenant(name=DEFAULT_TENANT)
        session.add(tenant)
        await session.flush()
    generated = None
    if not admin_password:
        generated = admin_password = secrets.token_urlsafe(15)
    session.add(
        User(
            tenant_id=tenant.id,
            username="admin",
            role=Role.ADMIN.value,
            password_hash=hash_password(admin_password),
        )
    )
    audit.record(
        session,
        None,
        "system.bootstrap",
        tenant_id=tenant.id,
        actor_name="system",
        details={"admin": "admin", "generated_password": generated is not None},
    )
    return generated


# ----------------------------------------------------------------------------- users


async def get_user(session: AsyncSession, tenant_id: str, user_id: str) -> User:
    return await get_owned(session, User, tenant_id, user_id, "user")


def user_view(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "role": user.role,
        "disabled": user.disabled,
        "created_at": user.created_at,
        "last_login_at": user.last_login_at,
    }


async def create_user(
    session: AsyncSession, p: Principal, username: str, password: str, role: Role
) -> User:
    p.require(Role.ADMIN, "creating users")
    tenant = await session.get(Tenant, p.tenant_id)
    count = await session.scalar(
        select(func.count()).select_from(User).where(User.tenant_id == p.tenant_id)
    )
    if tenant is not None and (count or 0) >= tenant.max_users:
        raise ConflictError(f"the organisation's quota of {tenant.max_users} users is reached")
    if await session.scalar(select(User.id).where(User.username == username)):
        raise ConflictError(f"username {username!r} is taken")
    user = User(
        tenant_id=p.tenant_id,
        username=username,
        role=role.value,
        password_hash=hash_password(password),
    )
    session.add(user)
    await session.flush()
    audit.record(
        session, p, "user.create", resource_type="user", resource_id=user.id, after=user_view(user)
    )
    return user


async def update_user(
    session: AsyncSession,
    p: Principal,
    user_id: str,
    *,
    role: Role | None = None,
    disabled: bool | None = None,
    password: str | None = None,
) -> User:
    p.require(Role.ADMIN, "changing users")
    user = await get_user(session, p.tenant_id, user_id)
    before = user_view(user)
    if user.id == p.actor_id and (disabled or (role and role is not Role.ADMIN)):
        raise ConflictError("you cannot demote or disable yourself")
    if role is not None:
        user.role = role.value
    if disabled is not None:
        user.disabled = disabled
    if password is not None:
        user.password_hash = hash_password(password)
    audit.record(
        session,
        p,
        "user.update",
        resource_type="user",
        resource_id=user.id,
        before=before,
        after=user_view(user),
        details={"password_changed": password is not None},
    )
    return user


async def delete_user(session: AsyncSession, p: Principal, user_id: str) -> None:
    p.require(Role.ADMIN, "deleting users")
    user = await get_user(session, p.tenant_id, user_id)
    if user.id == p.actor_id:
        raise ConflictError("you cannot delete yourself")
    audit.record(
        session, p, "user.delete", resource_type="user", resource_id=user.id, before=user_view(user)
    )
    await session.delete(user)


# ----------------------------------------------------------------------------- API tokens


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
    if not at_least(p.role, role):
        raise InvalidRequestError("a token cannot have more rights than its creator")
    secret = f"{API_TOKEN_PREFIX}{secrets.token_urlsafe(32)}"
    token = ApiToken(
        tenant_id=p.tenant_id,
        name=name,
        role=role.value,
        user_id=p.actor_id if p.actor_type == "user" else None,
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


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
