"""Sending queued notifications without ever holding the database across network I/O:
due rows are claimed (status "sending", a claim expiry) in a short committed transaction,
sent with an overall deadline each, and their results recorded in short transactions.
Tenants are served concurrently, each with a small bound, so a slow receiver only slows
its own tenant. A claim whose sender died expires and the delivery is tried again."""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import and_, or_, select, update

from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models.alerts import NotificationChannel, NotificationDelivery
from wrale.fleet.brain.services.egress import EgressPolicy
from wrale.fleet.brain.services.notify import (
    CHANNEL_TYPES,
    MAX_ATTEMPTS,
    DeliveryError,
    SendContext,
    backoff_s,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryLimits:
    """Bounds of one delivery pass."""

    per_tenant: int = 4  # sends in flight per tenant (and rows claimed per round)
    total: int = 32  # sends in flight overall
    tenants: int = 200  # tenants served per pass
    rounds: int = 25  # claim rounds per tenant per pass
    claim_s: float = 90.0  # a claim outlives the longest send deadline (30 s) by far
    pass_budget_s: float = 20.0  # no new round starts after this long (wall time)


@dataclass(frozen=True)
class _Claimed:
    id: str
    tenant_id: str
    attempts: int
    payload: dict[str, Any]
    channel_type: str | None
    config: dict[str, Any]


def _due(now: float) -> Any:
    d = NotificationDelivery
    return or_(
        and_(d.status == "pending", d.next_attempt_at <= now),
        and_(d.status == "sending", d.claim_expires_at <= now),
    )


async def _due_tenants(db: Database, now: float, limit: int) -> list[str]:
    d = NotificationDelivery
    async with db.session() as s:
        rows = await s.scalars(select(d.tenant_id).where(_due(now)).distinct().limit(limit))
        return list(rows.all())


async def _claim(
    db: Database, tenant_id: str, token: str, now: float, limits: DeliveryLimits
) -> list[_Claimed]:
    """Claim up to ``per_tenant`` due deliveries of one tenant (committed on return)."""
    d = NotificationDelivery
    async with db.serial_session() as s:
        # a claim that expired on its last attempt is not tried again
        await s.execute(
            update(d)
            .where(
                d.tenant_id == tenant_id,
                d.status == "sending",
                d.claim_expires_at <= now,
                d.attempts >= MAX_ATTEMPTS,
            )
            .values(status="failed", claimed_by=None, claim_expires_at=None)
            .execution_options(synchronize_session=False)
        )
        ids = list(
            (
                await s.scalars(
                    select(d.id)
                    .where(d.tenant_id == tenant_id, _due(now))
                    .order_by(d.next_attempt_at, d.id)
                    .limit(limits.per_tenant)
                    .with_for_update(skip_locked=True)
                )
            ).all()
        )
        if not ids:
            return []
        await s.execute(
            update(d)
            .where(d.id.in_(ids), _due(now))  # re-checked: another sender may have won
            .values(
                status="sending",
                claimed_by=token,
                claim_expires_at=now + limits.claim_s,
                attempts=d.attempts + 1,
            )
            .execution_options(synchronize_session=False)
        )
        rows = (
            await s.execute(
                select(d, NotificationChannel)
                .outerjoin(NotificationChannel, NotificationChannel.id == d.channel_id)
                .where(d.id.in_(ids), d.claimed_by == token)
            )
        ).all()
        return [
            _Claimed(
                r[0].id,
                r[0].tenant_id,
                r[0].attempts,
                dict(r[0].payload),
                r[1].type if r[1] is not None else None,
                dict(r[1].config) if r[1] is not None else {},
            )
            for r in rows
        ]


async def _record(db: Database, c: _Claimed, token: str, now: float, error: str | None) -> str:
    """Store one send's outcome, only while this sender still holds the claim."""
    d = NotificationDelivery
    if error is None:
        outcome, values = "delivered", {"status": "delivered", "delivered_at": now}
        values["last_error"] = None
    elif c.attempts >= MAX_ATTEMPTS:
        outcome, values = "failed", {"status": "failed", "last_error": error[:500]}
    else:
        outcome = "retry"
        values = {
            "status": "pending",
            "next_attempt_at": now + backoff_s(c.attempts),
            "last_error": error[:500],
        }
    async with db.serial_session() as s:
        result = await s.execute(
            update(d)
            .where(d.id == c.id, d.claimed_by == token, d.status == "sending")
            .values(claimed_by=None, claim_expires_at=None, **values)
            .execution_options(synchronize_session=False)
        )
    if int(result.rowcount or 0) != 1:  # type: ignore[attr-defined]
        return "lost"  # the claim expired and another sender took it over
    return outcome


async def _send_one(
    db: Database,
    ctx: SendContext,
    c: _Claimed,
    token: str,
    now: float,
    total: asyncio.Semaphore,
) -> str:
    async with total:
        error: str | None = None
        try:
            kind = CHANNEL_TYPES.get(c.channel_type or "")
            if kind is None:
                raise DeliveryError("the channel is gone or of an unknown type")
            await kind.send(c.config, c.payload, ctx)
        except DeliveryError as exc:
            error = str(exc)
        except Exception as exc:  # a hostile receiver must not stop the pass
            log.warning("delivery %s: unexpected %s", c.id, type(exc).__name__)
            error = f"unexpected {type(exc).__name__}"
        if error is not None:
            log.info("delivery %s to tenant %s failed: %s", c.id, c.tenant_id, error)
    return await _record(db, c, token, now, error)


async def _serve_tenant(
    db: Database,
    ctx: SendContext,
    tenant_id: str,
    now: float,
    limits: DeliveryLimits,
    total: asyncio.Semaphore,
    give_up_at: float,
) -> list[str]:
    loop = asyncio.get_running_loop()
    token = secrets.token_hex(16)
    outcomes: list[str] = []
    for _ in range(limits.rounds):
        if loop.time() >= give_up_at:
            break
        claimed = await _claim(db, tenant_id, token, now, limits)
        if not claimed:
            break
        outcomes += await asyncio.gather(
            *(_send_one(db, ctx, c, token, now, total) for c in claimed)
        )
    return outcomes


async def deliver_pending(
    db: Database,
    now: float,
    *,
    egress: EgressPolicy,
    limits: DeliveryLimits | None = None,
    http: httpx.AsyncClient | None = None,
    public_url: str | None = None,
) -> dict[str, int]:
    """One pass over due deliveries; failures are retried with exponential backoff up to
    ``MAX_ATTEMPTS``. Safe on every replica at once: a row is sent by whoever claimed it.
    ``http`` must come from ``egress.client()`` (one is made when omitted); ``public_url``
    is the dashboard's address for the links in messages."""
    limits = limits or DeliveryLimits()
    counts = {"delivered": 0, "retry": 0, "failed": 0}
    tenants = await _due_tenants(db, now, limits.tenants)
    if not tenants:
        return counts
    total = asyncio.Semaphore(limits.total)
    give_up_at = asyncio.get_running_loop().time() + limits.pass_budget_s
    client = http or egress.client()
    ctx = SendContext(client, egress, public_url)
    try:
        results = await asyncio.gather(
            *(_serve_tenant(db, ctx, t, now, limits, total, give_up_at) for t in tenants),
            return_exceptions=True,
        )
    finally:
        if http is None:
            await client.aclose()
    for tenant_id, result in zip(tenants, results, strict=True):
        if isinstance(result, BaseException):
            if isinstance(result, asyncio.CancelledError):
                raise result
            log.error("deliveries of tenant %s: %s", tenant_id, type(result).__name__)
            continue
        for outcome in result:
            if outcome in counts:
                counts[outcome] += 1
    return counts
