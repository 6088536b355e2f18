"""Enrollment: admins issue enrollment tokens, a device exchanges one for its own secret
(stored as a SHA-256 hash, never shared), operators enroll boards in bulk. The secrets
themselves — rotation, revocation, authentication — are ``services/credentials.py``
(re-exported here for the callers that know them as ``enrollment.*``).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import null, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.bus import EventBus
from wrale.fleet.brain.models import Device, EnrollmentToken, Rack, Tenant
from wrale.fleet.brain.models.base import now
from wrale.fleet.brain.services import audit, groups, registry
from wrale.fleet.brain.services.credentials import MAX_GRACE_S as MAX_GRACE_S
from wrale.fleet.brain.services.credentials import SECRET_PREFIX as SECRET_PREFIX
from wrale.fleet.brain.services.credentials import (
    authenticate_broker_device as authenticate_broker_device,
)
from wrale.fleet.brain.services.credentials import authenticate_device as authenticate_device
from wrale.fleet.brain.services.credentials import credential_view as credential_view
from wrale.fleet.brain.services.credentials import issue_secret
from wrale.fleet.brain.services.credentials import list_credentials as list_credentials
from wrale.fleet.brain.services.credentials import revoke_credentials as revoke_credentials
from wrale.fleet.brain.services.credentials import rotate_credential as rotate_credential
from wrale.fleet.brain.services.credentials import sha256 as sha256
from wrale.fleet.brain.services.lookup import get_owned
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.shared.errors import AuthError, ConflictError, InvalidRequestError, NotFoundError

TOKEN_PREFIX = "wet_"  # noqa: S105 - a marker ("wrale enrollment token"), not a secret


def token_state(t: EnrollmentToken, at: float | None = None) -> str:
    """active | revoked | expired | used_up."""
    at = now() if at is None else at
    if t.revoked:
        return "revoked"
    if t.expires_at is not None and t.expires_at <= at:
        return "expired"
    if t.max_uses is not None and t.uses >= t.max_uses:
        return "used_up"
    return "active"


def token_view(t: EnrollmentToken) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "prefix": t.prefix,
        "max_uses": t.max_uses,
        "uses": t.uses,
        "expires_at": t.expires_at,
        "revoked": t.revoked,
        "state": token_state(t),
        "target_group_id": t.target_group_id,
        "target_tags": list(t.target_tags or []),
        "target_rack_id": t.target_rack_id,
        "created_at": t.created_at,
    }


# ----------------------------------------------------------------------------- tokens


async def get_token(session: AsyncSession, tenant_id: str, token_id: str) -> EnrollmentToken:
    return await get_owned(session, EnrollmentToken, tenant_id, token_id, "enrollment token")


async def create_token(
    session: AsyncSession,
    p: Principal,
    name: str,
    *,
    max_uses: int | None = 1,
    expires_in_s: float | None = None,
    target_group_id: str | None = None,
    target_tags: Sequence[str] = (),
    target_rack_id: str | None = None,
) -> tuple[EnrollmentToken, str]:
    """A new enrollment token; its secret is returned once and stored hashed."""
    p.require(Role.ADMIN, "creating enrollment tokens")
    if target_rack_id is not None:
        rack = await session.get(Rack, target_rack_id)
        if rack is None or rack.tenant_id != p.tenant_id:
            raise NotFoundError(f"target_rack_id: no rack {target_rack_id}")
    if target_group_id is not None:
        await _check_group(session, p.tenant_id, target_group_id)
    secret = f"{TOKEN_PREFIX}{secrets.token_urlsafe(32)}"
    token = EnrollmentToken(
        tenant_id=p.tenant_id,
        name=name,
        token_hash=sha256(secret),
        prefix=secret[:12],
        # null(): an explicit NULL, or the ORM would apply the column's default of 1
        max_uses=null() if max_uses is None else max_uses,
        uses=0,
        expires_at=now() + expires_in_s if expires_in_s else None,
        target_group_id=target_group_id,
        target_tags=list(dict.fromkeys(target_tags)),
        target_rack_id=target_rack_id,
    )
    session.add(token)
    await session.flush()
    await session.refresh(token)
    audit.record(
        session,
        p,
        "enrollment_token.create",
        resource_type="enrollment_token",
        resource_id=token.id,
        after=token_view(token),
    )
    return token, secret


async def _check_group(session: AsyncSession, tenant_id: str, group_id: str) -> None:
    try:
        group = await groups.get_group(session, tenant_id, group_id)
    except NotFoundError:
        raise NotFoundError(f"target_group_id: no group {group_id}") from None
    if group.kind != "static":
        raise ConflictError(
            f"target_group_id: group {group.name!r} is dynamic (its selector decides members)"
        )


async def _join_group(
    session: AsyncSession, p: Principal | None, group_id: str | None, device_id: str
) -> str | None:
    """Put the device in the token's static group; None when the group has gone since."""
    if group_id is None:
        return None
    try:
        await groups.add_member(session, p, group_id, device_id)
    except (NotFoundError, ConflictError):  # deleted, or turned dynamic: enroll anyway
        return None
    return group_id


async def revoke_token(session: AsyncSession, p: Principal, token_id: str) -> EnrollmentToken:
    p.require(Role.ADMIN, "revoking enrollment tokens")
    token = await get_token(session, p.tenant_id, token_id)
    if not token.revoked:
        before = token_view(token)
        token.revoked = True
        audit.record(
            session,
            p,
            "enrollment_token.revoke",
            resource_type="enrollment_token",
            resource_id=token.id,
            before=before,
            after=token_view(token),
        )
    return token


async def _spend(session: AsyncSession, token: EnrollmentToken, uses: int) -> bool:
    """Count ``uses`` against the token atomically; False when it cannot take them.

    One UPDATE with the conditions in its WHERE: concurrent spenders of a single-use
    token queue on the row and all but the first see it used up.
    """
    result = await session.execute(
        update(EnrollmentToken)
        .where(
            EnrollmentToken.id == token.id,
            EnrollmentToken.revoked.is_(False),
            or_(EnrollmentToken.expires_at.is_(None), EnrollmentToken.expires_at > now()),
            or_(
                EnrollmentToken.max_uses.is_(None),
                EnrollmentToken.uses + uses <= EnrollmentToken.max_uses,
            ),
        )
        .values(uses=EnrollmentToken.uses + uses)
        .execution_options(synchronize_session=False)
    )
    await session.refresh(token)
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _refusal(token: EnrollmentToken, wanted: int) -> str:
    state = token_state(token)
    if state == "revoked":
        return "the enrollment token was revoked"
    if state == "expired":
        return "the enrollment token has expired"
    left = (token.max_uses or 0) - token.uses
    if state == "used_up":
        return f"the enrollment token is used up ({token.uses} of {token.max_uses} uses)"
    return f"the enrollment token has {left} uses left, {wanted} requested"


# ----------------------------------------------------------------------------- enrolling


@dataclass(frozen=True, slots=True)
class Enrolled:
    device: Device
    secret: str
    target_group_id: str | None = None
    token_id: str | None = None
    credential_id: str = ""


def _token_principal(token: EnrollmentToken, source_ip: str | None) -> Principal:
    return Principal(
        token.tenant_id, Role.OPERATOR, "enrollment_token", token.id, token.name, source_ip
    )


async def _placement(session: AsyncSession, token: EnrollmentToken) -> str | None:
    """The token's target rack if it still exists (placement in a slot is topology's)."""
    if token.target_rack_id is None:
        return None
    rack = await session.get(Rack, token.target_rack_id)
    return rack.id if rack is not None and rack.tenant_id == token.tenant_id else None


def _with_targets(
    token: EnrollmentToken | None, spec: dict[str, Any], *, trusted: bool
) -> dict[str, Any]:
    """The device's fields: the token's target tags, plus the tags in ``spec`` when an
    authenticated user gave them (``trusted``); a board's own go to ``proposed_tags``."""
    out = dict(spec)
    given = list(spec.get("tags") or [])
    targets = list(token.target_tags or []) if token is not None else []
    if trusted:
        out["tags"] = list(dict.fromkeys([*targets, *given]))
    else:
        out["tags"] = targets
        out["proposed_tags"] = list(dict.fromkeys(given))
    return out


async def _refuse(
    session: AsyncSession,
    token: EnrollmentToken | None,
    error: Exception,
    source_ip: str | None,
) -> Exception:
    """Undo the attempt, audit the refusal in its own commit, and return ``error``."""
    principal = _token_principal(token, source_ip) if token else None
    token_id = token.id if token else None
    await session.rollback()  # expires ``token``: read what we need before
    audit.record(
        session,
        principal,
        "device.enroll",
        resource_type="enrollment_token",
        resource_id=token_id,
        outcome="failed",
        details={"reason": str(error)},
        actor_name=None if token else "unknown enrollment token",
        source_ip=source_ip,
    )
    await session.commit()
    return error


async def enroll(
    session: AsyncSession,
    token_secret: str,
    spec: dict[str, Any],
    *,
    source_ip: str | None = None,
    bus: EventBus | None = None,
) -> Enrolled:
    """A device exchanges an enrollment token for its own credential (no user involved).

    401 for an unknown, revoked, expired or used-up token (each refusal audited);
    409 for the quota or a name in use (refusals audited too).
    """
    token = await session.scalar(
        select(EnrollmentToken).where(EnrollmentToken.token_hash == sha256(token_secret))
    )
    if token is None:
        raise await _refuse(session, None, AuthError("unknown enrollment token"), source_ip)
    if not await _spend(session, token, 1):
        raise await _refuse(session, token, AuthError(_refusal(token, 1)), source_ip)
    tenant = await session.get(Tenant, token.tenant_id)
    if tenant is None or tenant.status != "active":
        raise await _refuse(session, token, AuthError("the organisation is suspended"), source_ip)
    fields = _with_targets(token, spec, trusted=False)
    fields["rack_id"] = await _placement(session, token)
    try:
        (device,) = await registry.new_devices(session, token.tenant_id, [fields])
    except (ConflictError, InvalidRequestError) as exc:  # quota, name in use
        raise await _refuse(session, token, exc, source_ip) from None
    cred, secret = await issue_secret(session, device)
    group_id = await _join_group(session, None, token.target_group_id, device.id)
    audit.record(
        session,
        _token_principal(token, source_ip),
        "device.enroll",
        resource_type="device",
        resource_id=device.id,
        after=registry.device_view(device),
        details={"token_id": token.id, "group_id": group_id},
    )
    if bus is not None:
        bus.publish(device.tenant_id, "device.enrolled", registry.device_view(device))
    return Enrolled(device, secret, group_id, token.id, cred.id)


async def _bulk_token(
    session: AsyncSession, p: Principal, token_id: str | None, token_secret: str | None
) -> EnrollmentToken | None:
    if token_id is not None:
        token = await get_token(session, p.tenant_id, token_id)
        if token_secret is not None and not hmac.compare_digest(
            token.token_hash, sha256(token_secret)
        ):
            raise ConflictError("token and token_id name different enrollment tokens")
        return token
    if token_secret is not None:
        found = await session.scalar(
            select(EnrollmentToken).where(EnrollmentToken.token_hash == sha256(token_secret))
        )
        if found is None or found.tenant_id != p.tenant_id:
            raise NotFoundError("no such enrollment token in your organisation")
        return found
    return None


async def enroll_bulk(
    session: AsyncSession,
    p: Principal,
    specs: Sequence[dict[str, Any]],
    *,
    token_id: str | None = None,
    token_secret: str | None = None,
    bus: EventBus | None = None,
) -> list[Enrolled]:
    """An operator enrolls many boards at once, all or none, each with its own secret.

    With a token (by id or secret) every device counts one use and gets its targets; a
    token that cannot take them all is a 409 (the caller is authenticated, not the token).
    """
    p.require(Role.OPERATOR, "enrolling devices")
    token = await _bulk_token(session, p, token_id, token_secret)
    if token is not None and not await _spend(session, token, len(specs)):
        raise ConflictError(_refusal(token, len(specs)), token_id=token.id)
    rack_id = await _placement(session, token) if token is not None else None
    fields = [_with_targets(token, s, trusted=True) | {"rack_id": rack_id} for s in specs]
    devices = await registry.new_devices(session, p.tenant_id, fields)
    out = []
    target_group = token.target_group_id if token else None
    for device in devices:
        cred, secret = await issue_secret(session, device)
        group_id = await _join_group(session, p, target_group, device.id)
        audit.record(
            session,
            p,
            "device.enroll",
            resource_type="device",
            resource_id=device.id,
            after=registry.device_view(device),
            details={"bulk": True, "token_id": token.id if token else None, "group_id": group_id},
        )
        out.append(Enrolled(device, secret, group_id, token.id if token else None, cred.id))
    if bus is not None:
        for device in devices:
            bus.publish(device.tenant_id, "device.enrolled", registry.device_view(device))
    return out


# ----------------------------------------------------------------------------- credentials
