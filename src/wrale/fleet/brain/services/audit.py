"""Recording and querying the audit log. Every mutating service call records one entry in
the same transaction as its change; denials and failed logins record their own."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import AuditEntry
from wrale.fleet.brain.models.base import now
from wrale.fleet.brain.services.principal import Principal, Role

# Who may read the audit log, in the API and the dashboard alike: it names every actor,
# their addresses and failed logins (where a password typed as a username can show).
READ_ROLE = Role.ADMIN


def require_read(principal: Principal) -> None:
    """``ForbiddenError`` unless ``principal`` may read the audit log."""
    principal.require(READ_ROLE, "reading the audit log")


def record(
    session: AsyncSession,
    principal: Principal | None,
    action: str,
    *,
    resource_type: str | None = None,
    resource_id: str | None = None,
    outcome: str = "success",
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    details: Mapping[str, Any] | None = None,
    tenant_id: str | None = None,
    actor_name: str | None = None,
    source_ip: str | None = None,
) -> AuditEntry:
    """Add one audit entry to ``session`` (committed with the caller's transaction)."""
    entry = AuditEntry(
        tenant_id=principal.tenant_id if principal else tenant_id,
        actor_type=principal.actor_type if principal else "system",
        actor_id=principal.actor_id if principal else None,
        actor_name=principal.name if principal else actor_name,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        outcome=outcome,
        before=dict(before) if before is not None else None,
        after=dict(after) if after is not None else None,
        details=dict(details) if details is not None else None,
        source_ip=principal.source_ip if principal else source_ip,
    )
    session.add(entry)
    return entry


async def purge(session: AsyncSession, retention_days: float) -> int:
    """Drop entries older than the retention; returns how many went."""
    cutoff = now() - retention_days * 86_400
    result = await session.execute(delete(AuditEntry).where(AuditEntry.created_at < cutoff))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def query(
    session: AsyncSession,
    tenant_id: str,
    *,
    after_id: str | None = None,
    limit: int = 50,
    action: str | None = None,
    actor: str | None = None,
    resource_type: str | None = None,
    resource_id: str | None = None,
    outcome: str | None = None,
    since: float | None = None,
    until: float | None = None,
) -> list[AuditEntry]:
    """Newest first; ``after_id`` continues a previous page."""
    stmt = select(AuditEntry).where(AuditEntry.tenant_id == tenant_id)
    if after_id:
        stmt = stmt.where(AuditEntry.id < after_id)
    if action:
        stmt = stmt.where(AuditEntry.action == action)
    if actor:
        stmt = stmt.where(AuditEntry.actor_name == actor)
    if resource_type:
        stmt = stmt.where(AuditEntry.resource_type == resource_type)
    if resource_id:
        stmt = stmt.where(AuditEntry.resource_id == resource_id)
    if outcome:
        stmt = stmt.where(AuditEntry.outcome == outcome)
    if since is not None:
        stmt = stmt.where(AuditEntry.created_at >= since)
    if until is not None:
        stmt = stmt.where(AuditEntry.created_at < until)
    stmt = stmt.order_by(AuditEntry.id.desc()).limit(limit)
    return list((await session.scalars(stmt)).all())
