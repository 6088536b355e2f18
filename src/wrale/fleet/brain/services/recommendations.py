"""Recommendations (``docs/jobs.md``): the brain's fourth decision loop (lease-guarded
``recommendations``, every minute) runs ``decisions.analysis`` on the fleet view and the
rollups' trends and keeps one open recommendation per (kind, subject): updated while it
applies, expired once it has not applied for ``EXPIRE_AFTER_S``; one an operator decided
(accepted or dismissed) is not raised again for ``QUIET_S`` unless markedly worse.
Operators accept one (its action is performed through the jobs service; one without an
automatic action is acknowledged) or dismiss it; both are audited, an acceptance and every
newly raised recommendation are decisions.

Sites where the loop is paused are left out of the view, and their recommendations are
neither raised, updated nor expired.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Literal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.bus import EventBus, publish_after_commit
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.decisions import analysis
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.base import new_id
from wrale.fleet.brain.models.base import now as wall_now
from wrale.fleet.brain.models.recommendations import Recommendation
from wrale.fleet.brain.services import audit, jobs
from wrale.fleet.brain.services.decision_log import _clean, record_decision
from wrale.fleet.brain.services.decision_loops import load_state, pauses, save_state
from wrale.fleet.brain.services.fleet_view_builder import build_fleet_view
from wrale.fleet.brain.services.job_boards import Board, load_boards
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.fleet.brain.services.recommendation_inputs import gather_trends
from wrale.shared.errors import ConflictError, NotFoundError

log = logging.getLogger("wrale.central.recommendations")

LOOP = "recommendations"
RECOMMENDATIONS_INTERVAL_S = 60.0
FAN_EVERY_S = 3600.0  # the fans' week is read at most this often
EXPIRE_AFTER_S = 300.0  # not raised for this long: no longer applies (no flapping)
QUIET_S = 86400.0  # a decided one is not raised again for this long unless markedly worse
MAX_REASON = 300
OPEN, ACCEPTED, DISMISSED, EXPIRED = "open", "accepted", "dismissed", "expired"
DECIDED = (ACCEPTED, DISMISSED)
ROLE = {
    analysis.RACK_HOT: "rack",
    analysis.FAN_FAILED: "device",
    analysis.FAN_WEAR: "device",
    analysis.BATTERY_RUNTIME: "room",
}
_ID = re.compile(r"^[0-9a-f]{32}$")


def recommendation_view(r: Recommendation) -> dict[str, Any]:
    return {
        "id": r.id,
        "kind": r.kind,
        "subject": r.subject,
        "title": r.title,
        "advice": r.advice,
        "evidence": r.evidence,
        "score": r.score,
        "severity": analysis.severity(r.score),
        "action": r.action,
        "state": r.state,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "decided_by": r.decided_by,
        "decided_at": r.decided_at,
        "result": r.result,
    }


# ----------------------------------------------------------------------------- reading


async def list_recommendations(
    session: AsyncSession,
    tenant_id: str,
    *,
    state: str | None = OPEN,
    kind: str | None = None,
    before_id: str | None = None,
    limit: int = 50,
    order: Literal["newest", "score"] = "newest",
) -> list[Recommendation]:
    """The organisation's recommendations in ``state`` (``None``: any), newest first
    (``before_id`` continues a page) or highest score first (``order="score"``, no
    cursor: for a dashboard's ranked list)."""
    stmt = select(Recommendation).where(Recommendation.tenant_id == tenant_id)
    if state:
        stmt = stmt.where(Recommendation.state == state)
    if kind:
        stmt = stmt.where(Recommendation.kind == kind)
    if order == "score":
        stmt = stmt.order_by(Recommendation.score.desc(), Recommendation.id.desc())
    else:
        if before_id:
            stmt = stmt.where(Recommendation.id < before_id)
        stmt = stmt.order_by(Recommendation.id.desc())
    return list((await session.scalars(stmt.limit(max(1, min(limit, 1000))))).all())


async def get_recommendation(
    session: AsyncSession, tenant_id: str, rec_id: str, *, lock: bool = False
) -> Recommendation:
    """One of the organisation's recommendations (``NotFoundError`` otherwise)."""
    row = (
        await session.get(Recommendation, rec_id, with_for_update=lock)
        if _ID.match(rec_id)
        else None
    )
    if row is None or row.tenant_id != tenant_id:
        raise NotFoundError(f"no recommendation {rec_id[:40]}", recommendation_id=rec_id[:40])
    return row


# ----------------------------------------------------------------------------- deciding


async def _stop_jobs(
    session: AsyncSession, p: Principal, action: Mapping[str, Any], at: float, bus: EventBus | None
) -> str:
    ids = action.get("job_ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ConflictError("this recommendation's action names no jobs; dismiss it instead")
    stopped, already, gone = [], [], []
    for job_id in ids[:100]:
        try:
            job = await jobs.get_job(session, p.tenant_id, job_id)
        except NotFoundError:
            gone.append(job_id)
            continue
        if job.stopped_at is not None:
            already.append(job_id)
            continue
        await jobs.stop_job(session, p, job_id, now=at, bus=bus)
        stopped.append(job_id)
    parts = [f"stopped {len(stopped)} job(s)" + (f": {', '.join(stopped)}" if stopped else "")]
    if already:
        parts.append(f"{len(already)} already stopped")
    if gone:
        parts.append(f"{len(gone)} no longer exist")
    return "; ".join(parts)


async def accept(
    session: AsyncSession,
    p: Principal,
    rec_id: str,
    *,
    now: float | None = None,
    bus: EventBus | None = None,
) -> Recommendation:
    """Accept an open recommendation (operators): perform its action, or acknowledge it
    when it has none. ``ConflictError`` when it is no longer open."""
    p.require(Role.OPERATOR, "accepting recommendations")
    row = await get_recommendation(session, p.tenant_id, rec_id, lock=True)
    if row.state != OPEN:
        raise ConflictError(f"recommendation {row.id} is {row.state}, not open", state=row.state)
    at = wall_now() if now is None else now
    action = row.action
    if action is None:
        result = f"acknowledged (no automatic action): {row.advice}"
    elif action.get("kind") == analysis.STOP_JOBS:
        result = await _stop_jobs(session, p, action, at, bus)
    else:
        raise ConflictError(f"unknown action {str(action.get('kind'))[:40]!r}; dismiss it instead")
    _decide(session, p, row, ACCEPTED, result[:500], at, bus)
    record_decision(
        session,
        p.tenant_id,
        loop=LOOP,
        action="accept",
        subjects={ROLE.get(row.kind, "subject"): row.subject, "recommendation": row.id},
        summary=f"accepted by {p.name}: {row.title}",
        reasons=[result],
        inputs=row.evidence,
        at=at,
        bus=bus,
    )
    return row


def _reason(text: str | None) -> str | None:
    """An operator's reason as stored: printable, one line, bounded."""
    if text is None:
        return None
    clean = "".join(ch if ch.isprintable() else " " for ch in str(text)).strip()
    return clean[:MAX_REASON] or None


async def dismiss(
    session: AsyncSession,
    p: Principal,
    rec_id: str,
    reason: str | None = None,
    *,
    now: float | None = None,
    bus: EventBus | None = None,
) -> Recommendation:
    """Dismiss an open recommendation (operators); it is not raised again for ``QUIET_S``
    unless it gets markedly worse."""
    p.require(Role.OPERATOR, "dismissing recommendations")
    row = await get_recommendation(session, p.tenant_id, rec_id, lock=True)
    if row.state != OPEN:
        raise ConflictError(f"recommendation {row.id} is {row.state}, not open", state=row.state)
    why = _reason(reason)
    at = wall_now() if now is None else now
    _decide(session, p, row, DISMISSED, "dismissed" + (f": {why}" if why else ""), at, bus)
    return row


def _decide(
    session: AsyncSession,
    p: Principal,
    row: Recommendation,
    state: str,
    result: str,
    at: float,
    bus: EventBus | None,
) -> None:
    row.state, row.result = state, result
    row.decided_by, row.decided_at, row.updated_at = p.name[:100], at, at
    audit.record(
        session,
        p,
        f"recommendation.{'accept' if state == ACCEPTED else 'dismiss'}",
        resource_type="recommendation",
        resource_id=row.id,
        before={"state": OPEN},
        after={"state": state, "result": result},
        details={"kind": row.kind, "subject": row.subject, "action": row.action},
    )
    publish_after_commit(
        session, bus, row.tenant_id, "recommendation.updated", {"id": row.id, "state": state}
    )


# ----------------------------------------------------------------------------- the loop


def _covered(boards: Sequence[Board], paused_sites: Collection[str]) -> frozenset[str]:
    """Ids of the boards, racks and rooms in paused sites: left alone."""
    out: set[str] = set()
    for b in boards:
        if b.place is not None and b.place.site_id in paused_sites:
            out |= {i for i in (b.device.id, b.device.rack_id, b.place.room_id) if i}
    return frozenset(out)


async def _upsert(
    session: AsyncSession,
    tenant_id: str,
    found: Sequence[analysis.Recommendation],
    kinds: Collection[str],
    paused: Collection[str],
    now: float,
    bus: EventBus | None,
) -> int:
    """Store one pass's recommendations; returns how many were newly raised."""
    opened = {
        (r.kind, r.subject): r
        for r in await session.scalars(
            select(Recommendation).where(
                Recommendation.tenant_id == tenant_id, Recommendation.state == OPEN
            )
        )
    }
    decided: dict[tuple[str, str], float] = {}
    recent = await session.execute(
        select(Recommendation.kind, Recommendation.subject, Recommendation.score)
        .where(
            Recommendation.tenant_id == tenant_id,
            Recommendation.state.in_(DECIDED),
            Recommendation.decided_at >= now - QUIET_S,
        )
        .order_by(Recommendation.id)
        .limit(5000)
    )
    for kind, subject, score in recent:
        decided[kind, subject] = score  # the newest decision wins
    raised = 0
    for rec in found:
        values = {
            "title": _clean(rec.title)[:300],
            "advice": _clean(rec.advice)[:300],
            "evidence": _clean(dict(rec.evidence)),
            "score": rec.score,
            "action": None if rec.action is None else _clean(dict(rec.action)),
            "updated_at": now,
        }
        row = opened.pop(rec.key, None)
        if row is not None:
            await session.execute(
                update(Recommendation)
                .where(Recommendation.id == row.id, Recommendation.state == OPEN)
                .values(**values)
            )
            continue
        before = decided.get(rec.key)
        if before is not None and not analysis.markedly_worse(before, rec.score):
            continue
        rec_id = new_id()
        session.add(
            Recommendation(
                id=rec_id,
                tenant_id=tenant_id,
                kind=rec.kind,
                subject=rec.subject,
                state=OPEN,
                created_at=now,
                **values,
            )
        )
        raised += 1
        record_decision(
            session,
            tenant_id,
            loop=LOOP,
            action="recommend",
            subjects={ROLE.get(rec.kind, "subject"): rec.subject, "recommendation": rec_id},
            summary=rec.title,
            reasons=[rec.advice],
            inputs=rec.evidence,
            at=now,
            bus=bus,
        )
    stale = [
        r.id
        for key, r in opened.items()
        if key[0] in kinds and key[1] not in paused and r.updated_at <= now - EXPIRE_AFTER_S
    ]
    if stale:
        await session.execute(
            update(Recommendation)
            .where(Recommendation.id.in_(stale), Recommendation.state == OPEN)
            .values(state=EXPIRED, updated_at=now, result="no longer applies")
        )
    if raised or stale:
        publish_after_commit(session, bus, tenant_id, "recommendation.updated", {"raised": raised})
    return raised


async def recommend_tenant(
    session: AsyncSession, tenant_id: str, now: float, bus: EventBus | None = None
) -> int:
    """One pass of the loop for one organisation; returns how many were newly raised."""
    paused = await pauses(session, tenant_id, LOOP)
    if paused.everywhere:
        return 0
    state = await load_state(session, tenant_id, LOOP)
    devices = await session.scalars(
        select(Device).where(Device.tenant_id == tenant_id).order_by(Device.name)
    )
    boards = await load_boards(session, list(devices), now)
    view = await build_fleet_view(
        session, tenant_id, now, skip_sites=paused.sites, boards=boards, with_trends=False
    )
    fans_at = state.get("fans_at")
    last = float(fans_at) if isinstance(fans_at, int | float) else -math.inf
    read_fans = not (0 <= now - last < FAN_EVERY_S)
    trends = await gather_trends(session, view, boards, now, fans=read_fans)
    found = analysis.analyse(view, trends)
    kinds = analysis.decided_kinds(trends)
    raised = await _upsert(
        session, tenant_id, found, kinds, _covered(boards, paused.sites), now, bus
    )
    if read_fans:
        state["fans_at"] = now
    await save_state(session, tenant_id, LOOP, state, now)
    return raised


async def recommend_all(db: Database, now: float, bus: EventBus | None = None) -> int:
    """A pass for every organisation with boards, each in its own transaction; one
    organisation's failure does not stop the others."""
    async with db.session() as s:
        tenants = sorted(set(await s.scalars(select(Device.tenant_id).distinct())))
    raised = 0
    for tenant_id in tenants:
        try:
            async with db.session() as s:
                raised += await recommend_tenant(s, tenant_id, now, bus)
        except Exception:  # one organisation's bad data must not stop the others
            log.exception("recommendations: pass failed for organisation %s", tenant_id)
    if raised:
        log.info("recommendations: %d raised", raised)
    return raised
