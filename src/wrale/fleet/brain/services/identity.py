"""Identity: tenants, users, passwords (argon2), access tokens (JWT), refresh tokens,
API tokens, login throttling, and the first start's admin. Raises domain errors only."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from functools import cache
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import RefreshToken, Tenant, User
from wrale.fleet.brain.models.base import now
from wrale.fleet.brain.models.identity import PASSWORD_MAX, USERNAME_MAX
from wrale.fleet.brain.services import audit, login_throttle
from wrale.fleet.brain.services.api_tokens import (
    API_TOKEN_PREFIX,
    create_api_token,
    revoke_api_token,
    revoke_tokens_of,
    sha256,
    token_principal,
    token_view,
)
from wrale.fleet.brain.services.login_throttle import LoginThrottledError, ThrottleLimits
from wrale.fleet.brain.services.lookup import get_owned
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.shared.errors import (
    AuthError,
    ConflictError,
    InvalidRequestError,
)

__all__ = [  # API tokens live in services.api_tokens; these names stay importable here
    "API_TOKEN_PREFIX",
    "create_api_token",
    "revoke_api_token",
    "sha256",
    "token_view",
]

DEFAULT_TENANT = "default"
_hasher = PasswordHasher()


@dataclass(frozen=True, slots=True)
class AuthConfig:
    secret_key: str
    access_ttl_s: int = 900
    refresh_ttl_s: int = 14 * 86_400
    max_failures: int = 5  # per address+username before the back-off starts
    lockout_s: int = 300  # the first back-off; it doubles with each further failure
    address_max_failures: int = 50  # per address, whatever the usernames
    backoff_max_s: int = 3600

    @property
    def throttle(self) -> ThrottleLimits:
        return ThrottleLimits(
            self.max_failures, self.address_max_failures, self.lockout_s, self.backoff_max_s
        )


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


@cache
def _dummy_hash() -> str:
    """Checked against when there is no user to check, so an unknown name costs as much
    time as a known one (no user enumeration by timing)."""
    return _hasher.hash(secrets.token_urlsafe(16))


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
        "ver": user.token_version,
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
    """Check a password, throttled per address+username and per address (back-off in the
    database, shared by replicas); ``LoginThrottledError`` while an address must wait."""
    if not 0 < len(username) <= USERNAME_MAX or len(password) > PASSWORD_MAX:
        raise InvalidRequestError(
            f"username: 1 to {USERNAME_MAX} characters; password: at most {PASSWORD_MAX}",
            field="username",
        )
    t = now()
    keys = login_throttle.keys_for(source_ip, username)
    wait = await login_throttle.blocked_for(session, keys, t)
    if not wait:
        wait = await login_throttle.count_attempt(session, keys, t, cfg.throttle)
        await session.commit()  # counted before the check, whatever the check says
    if wait:
        raise LoginThrottledError(wait)
    user = await session.scalar(select(User).where(User.username == username))
    tenant = await session.get(Tenant, user.tenant_id) if user else None
    password_ok = verify_password(user.password_hash if user else _dummy_hash(), password)
    if not (password_ok and user and not user.disabled and tenant and tenant.status == "active"):
        await _failed(session, username, user, source_ip, keys, t, cfg)
        raise AuthError("wrong username or password")
    await login_throttle.record_success(session, keys)
    user.last_login_at = t
    principal = Principal(
        user.tenant_id, Role(user.role), "user", user.id, user.username, source_ip
    )
    audit.record(session, principal, "auth.login", resource_type="user", resource_id=user.id)
    return await _issue(session, user, cfg)


async def _failed(
    session: AsyncSession,
    username: str,
    user: User | None,
    source_ip: str | None,
    keys: tuple[str, str],
    t: float,
    cfg: AuthConfig,
) -> None:
    """Audit a failed login, and the back-off it leads to (once per failure, never per
    refused attempt, so hammering a throttled address writes nothing)."""
    common: dict[str, Any] = {
        "actor_name": username,
        "source_ip": source_ip,
        "tenant_id": user.tenant_id if user else None,
    }
    audit.record(session, None, "auth.login", outcome="failed", **common)
    wait = await login_throttle.backed_off(session, keys, t, cfg.throttle)
    if wait:
        audit.record(
            session,
            None,
            "auth.login",
            outcome="denied",
            details={"reason": "throttled", "retry_after_s": wait},
            **common,
        )
    await session.commit()  # the failure counts even though the request fails


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
        return await token_principal(session, bearer, source_ip)
    try:
        claims: dict[str, Any] = jwt.decode(bearer, cfg.secret_key, algorithms=["HS256"])
    except jwt.PyJWTError:
        raise AuthError("invalid or expired access token") from None
    if claims.get("typ") != "access":
        raise AuthError("invalid or expired access token")
    user = await session.get(User, str(claims.get("sub")))
    if user is None or user.disabled or claims.get("ver") != user.token_version:
        # a password, role or disable change since the token was issued ends it
        raise AuthError("invalid or expired access token")
    tenant = await session.get(Tenant, user.tenant_id)
    if tenant is None or tenant.status != "active":
        raise AuthError("the organisation is suspended")
    return Principal(user.tenant_id, Role(user.role), "user", user.id, user.username, source_ip)


# ----------------------------------------------------------------------------- bootstrap


BOOTSTRAP_LOCK = 0x5772616C65  # "Wrale": the advisory lock key of the first start


async def bootstrap(session: AsyncSession, admin_password: str | None) -> str | None:
    """Create the default tenant and its ``admin`` on first start.

    Returns the admin's password when it was generated (to be printed once), else None.
    Replicas starting together on a fresh PostgreSQL take turns (a transaction advisory
    lock): the second sees the first's admin instead of failing on the tenant's name.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(select(func.pg_advisory_xact_lock(BOOTSTRAP_LOCK)))
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
    ends_sessions = (
        (role is not None and role.value != user.role)
        or (disabled is not None and disabled != user.disabled)
        or password is not None
    )
    if role is not None:
        user.role = role.value
    if disabled is not None:
        user.disabled = disabled
    if password is not None:
        user.password_hash = hash_password(password)
    if ends_sessions:
        await end_sessions(session, user)
    audit.record(
        session,
        p,
        "user.update",
        resource_type="user",
        resource_id=user.id,
        before=before,
        after=user_view(user),
        details={"password_changed": password is not None, "sessions_ended": ends_sessions},
    )
    return user


async def end_sessions(session: AsyncSession, user: User) -> None:
    """Every access token of ``user`` stops working at once (its version is bumped) and
    every refresh token is revoked: the dashboard's cookie session ends too."""
    user.token_version = (user.token_version or 0) + 1
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user.id, RefreshToken.revoked.is_(False))
        .values(revoked=True)
    )


async def delete_user(session: AsyncSession, p: Principal, user_id: str) -> None:
    p.require(Role.ADMIN, "deleting users")
    user = await get_user(session, p.tenant_id, user_id)
    if user.id == p.actor_id:
        raise ConflictError("you cannot delete yourself")
    audit.record(
        session, p, "user.delete", resource_type="user", resource_id=user.id, before=user_view(user)
    )
    await revoke_tokens_of(session, user.id)
    await session.delete(user)


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
