"""What the brain's decision loops keep between periods and what operators set on them:
a loop's state (one JSON row per organisation and loop, read and written in the loop's
transaction, so whichever replica holds the loop's lease continues it), and per-site
pauses (``PUT /api/v1/decisions/loops/{loop}``): a paused loop reads nothing of that
site's boards, acts on none and logs nothing about them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import Site
from wrale.fleet.brain.models.base import now as wall_now
from wrale.fleet.brain.models.decision_loops import DecisionLoopState, DecisionPause
from wrale.fleet.brain.services import audit
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.shared.errors import NotFoundError

LOOPS = ("placement", "capping", "balancing", "recommendations")
ALL_SITES = "*"


async def load_state(session: AsyncSession, tenant_id: str, loop: str) -> dict[str, Any]:
    """The loop's stored state (empty before its first period), row-locked."""
    row = await session.scalar(
        select(DecisionLoopState)
        .where(DecisionLoopState.tenant_id == tenant_id, DecisionLoopState.loop == loop)
        .with_for_update()
    )
    return dict(row.state) if row is not None else {}


async def save_state(
    session: AsyncSession, tenant_id: str, loop: str, state: dict[str, Any], now: float
) -> None:
    row = await session.scalar(
        select(DecisionLoopState).where(
            DecisionLoopState.tenant_id == tenant_id, DecisionLoopState.loop == loop
        )
    )
    if row is None:
        session.add(DecisionLoopState(tenant_id=tenant_id, loop=loop, state=state, updated_at=now))
    else:
        row.state, row.updated_at = state, now


@dataclass(frozen=True, slots=True)
class Pauses:
    everywhere: bool
    sites: frozenset[str]


async def pauses(session: AsyncSession, tenant_id: str, loop: str) -> Pauses:
    """Where ``loop`` is paused in the organisation."""
    sites = set(
        await session.scalars(
            select(DecisionPause.site_id).where(
                DecisionPause.tenant_id == tenant_id, DecisionPause.loop == loop
            )
        )
    )
    return Pauses(ALL_SITES in sites, frozenset(sites - {ALL_SITES}))


def pause_view(p: DecisionPause) -> dict[str, Any]:
    return {
        "loop": p.loop,
        "site_id": None if p.site_id == ALL_SITES else p.site_id,
        "paused_by": p.paused_by,
        "paused_at": p.created_at,
    }


async def list_pauses(session: AsyncSession, tenant_id: str) -> list[dict[str, Any]]:
    """Every loop, with the sites it is paused in (``site_id`` None: everywhere)."""
    rows = list(
        await session.scalars(
            select(DecisionPause)
            .where(DecisionPause.tenant_id == tenant_id)
            .order_by(DecisionPause.loop, DecisionPause.site_id)
        )
    )
    return [
        {"loop": loop, "paused": [pause_view(p) for p in rows if p.loop == loop]} for loop in LOOPS
    ]


async def set_pause(
    session: AsyncSession, p: Principal, loop: str, paused: bool, site_id: str | None = None
) -> dict[str, Any]:
    """Pause or resume ``loop`` in one site (``site_id`` None: everywhere); operators."""
    p.require(Role.OPERATOR, "pausing a decision loop")
    if loop not in LOOPS:
        raise NotFoundError(f"no decision loop {loop[:40]!r}: one of {', '.join(LOOPS)}")
    if site_id is not None:
        site = await session.get(Site, site_id)
        if site is None or site.tenant_id != p.tenant_id:
            raise NotFoundError("site not found", resource="site")
    key = ALL_SITES if site_id is None else site_id
    where = (
        DecisionPause.tenant_id == p.tenant_id,
        DecisionPause.loop == loop,
        DecisionPause.site_id == key,
    )
    existing = await session.scalar(select(DecisionPause).where(*where))
    if paused and existing is None:
        session.add(
            DecisionPause(
                tenant_id=p.tenant_id,
                loop=loop,
                site_id=key,
                paused_by=p.name,
                created_at=wall_now(),
            )
        )
    elif not paused and existing is not None:
        await session.execute(delete(DecisionPause).where(*where))
    if paused != (existing is not None):
        audit.record(
            session,
            p,
            "decision.loop.pause" if paused else "decision.loop.resume",
            resource_type="decision_loop",
            resource_id=loop,
            after={"loop": loop, "site_id": site_id, "paused": paused},
        )
    await session.flush()
    return {"loop": loop, "site_id": site_id, "paused": paused}
