"""The decision log: every loop of the brain writes what it decided, about what, why and
from which inputs (``record_decision``, in the caller's transaction), and operators read
it newest first, filtered by loop, subject or time (``GET /api/v1/decisions``).

No decisions are taken here; the loops are ``fleet/brain/decisions`` and the services
that apply their actions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.bus import EventBus, publish_after_commit
from wrale.fleet.brain.models.base import new_id
from wrale.fleet.brain.models.base import now as wall_now
from wrale.fleet.brain.models.decisions import Decision, DecisionSubject

MAX_SUMMARY = 500
MAX_DEPTH = 8


def _clean(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON both databases store: non-finite numbers become None, text
    loses NUL characters, anything else becomes its text; nesting is bounded."""
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    if depth >= MAX_DEPTH:
        return str(value)[:200]
    if isinstance(value, Mapping):
        return {str(_clean(k, depth)): _clean(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(v, depth + 1) for v in value]
    return _clean(str(value), depth)


def record_decision(
    session: AsyncSession,
    tenant_id: str,
    *,
    loop: str,
    action: str,
    subjects: Mapping[str, str | None],
    summary: str,
    reasons: Sequence[Any] = (),
    inputs: Mapping[str, Any] | None = None,
    at: float | None = None,
    bus: EventBus | None = None,
) -> Decision:
    """Add one decision to ``session`` (committed with the caller's change).

    ``loop`` names the loop (``placement``, ``capping``, ``balancing`` …), ``action``
    what it did (``place``, ``release``, ``cap``, ``move`` …); ``subjects`` maps a role
    to an id (``{"job": …, "device": …, "rack": …}``; None values are left out) and each
    id becomes filterable; ``reasons`` explain it, ``inputs`` are the figures it used.
    Publishes ``decision.recorded`` after the commit when a bus is given."""
    named = {str(k): str(v) for k, v in subjects.items() if v}
    d = Decision(
        id=new_id(),
        tenant_id=tenant_id,
        at=wall_now() if at is None else at,
        loop=loop[:32],
        action=action[:32],
        subjects=named,
        summary=_clean(summary)[:MAX_SUMMARY],
        reasons=_clean(list(reasons)),
        inputs=_clean(dict(inputs or {})),
    )
    session.add(d)
    for subject_id in sorted({v[:32] for v in named.values()}):
        session.add(DecisionSubject(decision_id=d.id, subject_id=subject_id))
    publish_after_commit(session, bus, tenant_id, "decision.recorded", decision_view(d))
    return d


def decision_view(d: Decision) -> dict[str, Any]:
    return {
        "id": d.id,
        "at": d.at,
        "loop": d.loop,
        "action": d.action,
        "subjects": d.subjects,
        "summary": d.summary,
        "reasons": d.reasons,
        "inputs": d.inputs,
    }


async def list_decisions(
    session: AsyncSession,
    tenant_id: str,
    *,
    before_id: str | None = None,
    limit: int = 50,
    loop: str | None = None,
    subject: str | None = None,
    since: float | None = None,
) -> list[Decision]:
    """Newest first; ``before_id`` continues a previous page (ids grow with time)."""
    stmt = select(Decision).where(Decision.tenant_id == tenant_id)
    if before_id:
        stmt = stmt.where(Decision.id < before_id)
    if loop:
        stmt = stmt.where(Decision.loop == loop)
    if subject:
        named = select(DecisionSubject.decision_id).where(DecisionSubject.subject_id == subject)
        stmt = stmt.where(Decision.id.in_(named))
    if since is not None:
        stmt = stmt.where(Decision.at >= since)
    stmt = stmt.order_by(Decision.id.desc()).limit(limit)
    return list((await session.scalars(stmt)).all())
