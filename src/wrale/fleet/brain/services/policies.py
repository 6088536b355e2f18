"""Policies: versioned partial documents (thermal, power, security, sampling) attached to
the fleet, a group or a device, stored with their versions; each change recomposes the
twins of the devices in its scope: a device's at once, a group's or the fleet's in the
background (``twin_recompose``: the change records the work in its own transaction and
the request returns; ``recompose_of(session)`` says what was recorded).

The documents' kinds, checks and merge, and a device's effective policy, are
``policy_effective``'s (re-exported here, so ``policies.KINDS`` etc. keep working).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.bus import EventBus
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.base import now as wall_now
from wrale.fleet.brain.models.groups import Group
from wrale.fleet.brain.models.policies import Policy, PolicyVersion
from wrale.fleet.brain.services import audit, twin, twin_recompose
from wrale.fleet.brain.services.lookup import get_owned
from wrale.fleet.brain.services.policy_effective import KINDS as KINDS
from wrale.fleet.brain.services.policy_effective import SamplingPolicy as SamplingPolicy
from wrale.fleet.brain.services.policy_effective import check_document as check_document
from wrale.fleet.brain.services.policy_effective import check_merged as check_merged
from wrale.fleet.brain.services.policy_effective import defaults as defaults
from wrale.fleet.brain.services.policy_effective import effective_policy as effective_policy
from wrale.fleet.brain.services.policy_effective import merge as merge
from wrale.fleet.brain.services.policy_effective import merge_policies as merge_policies
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.shared.errors import ConflictError, InvalidRequestError, NotFoundError

SCOPE_TYPES = ("fleet", "group", "device")


# ----------------------------------------------------------------------------- storage


def policy_view(p: Policy) -> dict[str, Any]:
    return {
        "id": p.id,
        "scope_type": p.scope_type,
        "scope_id": p.scope_id or None,
        "kind": p.kind,
        "document": p.document,
        "version": p.version,
        "created_at": p.created_at,
        "updated_at": p.updated_at,
        "updated_by": p.updated_by,
    }


async def get_policy(session: AsyncSession, tenant_id: str, policy_id: str) -> Policy:
    return await get_owned(session, Policy, tenant_id, policy_id, "policy")


async def _check_scope(
    session: AsyncSession, tenant_id: str, scope_type: str, scope_id: str | None
) -> str:
    if scope_type not in SCOPE_TYPES:
        raise InvalidRequestError(f"scope_type: use one of {', '.join(SCOPE_TYPES)}")
    if scope_type == "fleet":
        if scope_id:
            raise InvalidRequestError("scope_id: the fleet scope takes no scope_id")
        return ""
    if not scope_id:
        raise InvalidRequestError(f"scope_id: a {scope_type} policy needs the {scope_type}'s id")
    model: type[Group] | type[Device] = Group if scope_type == "group" else Device
    owner = await session.scalar(select(model.tenant_id).where(model.id == scope_id))
    if owner != tenant_id:
        raise NotFoundError(f"no {scope_type} {scope_id}")
    return scope_id


def _version(p: Policy, author: str) -> PolicyVersion:
    return PolicyVersion(
        tenant_id=p.tenant_id,
        policy_id=p.id,
        version=p.version,
        document=p.document,
        author=author,
    )


async def create_policy(
    session: AsyncSession,
    pr: Principal,
    scope_type: str,
    scope_id: str | None,
    kind: str,
    document: dict[str, Any],
    bus: EventBus | None = None,
) -> Policy:
    pr.require(Role.ADMIN, "creating policies")
    key = await _check_scope(session, pr.tenant_id, scope_type, scope_id)
    doc = check_document(kind, document)
    clash = await session.scalar(
        select(Policy.id).where(
            Policy.tenant_id == pr.tenant_id,
            Policy.scope_type == scope_type,
            Policy.scope_id == key,
            Policy.kind == kind,
        )
    )
    if clash:
        raise ConflictError(
            f"this {scope_type} already has a {kind} policy ({clash}); update it instead",
            policy_id=clash,
        )
    p = Policy(
        tenant_id=pr.tenant_id,
        scope_type=scope_type,
        scope_id=key,
        kind=kind,
        document=doc,
        version=1,
        updated_at=wall_now(),
        updated_by=pr.name,
    )
    session.add(p)
    await session.flush()
    session.add(_version(p, pr.name))
    audit.record(
        session, pr, "policy.create", resource_type="policy", resource_id=p.id, after=policy_view(p)
    )
    await refresh_twins(
        session, p.tenant_id, p.scope_type, p.scope_id, bus, f"policy.create {kind}", pr.name
    )
    return p


async def update_policy(
    session: AsyncSession,
    pr: Principal,
    policy_id: str,
    document: dict[str, Any],
    expected_version: int | None = None,
    bus: EventBus | None = None,
) -> Policy:
    """Replace the document, creating the next version; a stale ``expected_version`` is 409."""
    pr.require(Role.ADMIN, "changing policies")
    p = await get_policy(session, pr.tenant_id, policy_id)
    if expected_version is not None and expected_version != p.version:
        raise ConflictError(
            f"the policy is at version {p.version}, not {expected_version}", version=p.version
        )
    doc = check_document(p.kind, document)
    before = policy_view(p)
    p.document, p.version = doc, p.version + 1
    p.updated_at, p.updated_by = wall_now(), pr.name
    session.add(_version(p, pr.name))
    audit.record(
        session,
        pr,
        "policy.update",
        resource_type="policy",
        resource_id=p.id,
        before=before,
        after=policy_view(p),
    )
    await refresh_twins(
        session, p.tenant_id, p.scope_type, p.scope_id, bus, f"policy.update {p.kind}", pr.name
    )
    return p


async def delete_policy(
    session: AsyncSession, pr: Principal, policy_id: str, bus: EventBus | None = None
) -> None:
    pr.require(Role.ADMIN, "deleting policies")
    p = await get_policy(session, pr.tenant_id, policy_id)
    audit.record(
        session,
        pr,
        "policy.delete",
        resource_type="policy",
        resource_id=p.id,
        before=policy_view(p),
    )
    scope = (p.tenant_id, p.scope_type, p.scope_id)
    reason = f"policy.delete {p.kind}"
    await session.delete(p)
    await session.flush()  # the recomposition reads the policies without it
    await refresh_twins(session, *scope, bus, reason, pr.name)


RECOMPOSE_KEY = "wrale.policies.recompose"


async def refresh_twins(
    session: AsyncSession,
    tenant_id: str,
    scope_type: str,
    scope_id: str,
    bus: EventBus | None,
    reason: str = "",
    by: str | None = None,
) -> dict[str, Any]:
    """Effective policies flow into desired state: a device's twin is recomposed now
    (one board: a rollout's per-board change stays immediate); a group's or the fleet's
    are queued for the background duty, so the request does no per-board work. Returns
    the recompose's view, also kept for ``recompose_of``."""
    if scope_type == "device":
        changed = await twin.refresh(session, tenant_id, [scope_id], bus)
        out = twin_recompose.inline_view(scope_id, changed)
    else:
        out = await twin_recompose.enqueue(
            session, tenant_id, scope_type, scope_id or None, reason=reason, by=by
        )
    session.info[RECOMPOSE_KEY] = out
    return out


def recompose_of(session: AsyncSession) -> dict[str, Any] | None:
    """The recompose the last policy change in ``session`` recorded (None: none yet)."""
    found = session.info.get(RECOMPOSE_KEY)
    return dict(found) if found else None


async def versions(
    session: AsyncSession, tenant_id: str, policy_id: str, after_id: str | None, limit: int
) -> list[PolicyVersion]:
    """Oldest first (ids grow with versions); ``after_id`` continues a page."""
    await get_policy(session, tenant_id, policy_id)
    stmt = select(PolicyVersion).where(PolicyVersion.policy_id == policy_id)
    if after_id:
        stmt = stmt.where(PolicyVersion.id > after_id)
    rows = await session.scalars(stmt.order_by(PolicyVersion.id).limit(limit))
    return list(rows)
