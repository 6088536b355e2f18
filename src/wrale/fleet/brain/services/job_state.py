"""The lifecycle of placements and jobs: every state change of a placement is stored as a
``PlacementTransition`` and audited, a job's state follows from its placements, and a
board's active placements are released (back to pending) when it may no longer run them.

Below the twin service (which releases a board reporting a lockdown) and below the
placement loop; it never recomposes a twin itself: callers do, once per board.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.bus import EventBus, publish_after_commit
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.jobs import Job, JobPlacement, PlacementTransition
from wrale.fleet.brain.services import audit
from wrale.fleet.brain.services.decision_log import record_decision
from wrale.fleet.brain.services.principal import Principal

PLACEMENT_STATES = ("pending", "starting", "running", "moving", "succeeded", "failed", "stopped")
ACTIVE = ("starting", "running", "moving")  # on a board: in its desired jobs section
FINAL = ("succeeded", "failed", "stopped")
JOB_STATES = ("pending", "running", "succeeded", "failed", "stopped")
BRAIN, DEVICE = "brain", "device"
MAX_REASON = 2000


def job_state(states: Sequence[str], stop_asked: bool) -> str:
    """A job's state from its placements' (pure): final once every placement is —
    ``stopped`` when a stop was asked or any placement was stopped, else ``failed`` when
    any failed, else ``succeeded``; before that ``pending`` while a replica waits for a
    board, else ``running``."""
    if states and all(s in FINAL for s in states):
        if stop_asked or "stopped" in states:
            return "stopped"
        return "failed" if "failed" in states else "succeeded"
    if not states:
        return "stopped" if stop_asked else "pending"
    return "pending" if "pending" in states else "running"


def placement_view(p: JobPlacement) -> dict[str, Any]:
    return {
        "id": p.id,
        "job_id": p.job_id,
        "replica": p.replica,
        "device_id": p.device_id,
        "state": p.state,
        "reason": p.reason,
        "cpu_quota_pct": p.cpu_quota_pct,
        "started_at": p.started_at,
        "ended_at": p.ended_at,
        "exit_code": p.exit_code,
        "cpu_s": p.cpu_s,
        "output_tail": p.output_tail,
        "created_at": p.created_at,
        "updated_at": p.updated_at,
    }


def transition(
    session: AsyncSession,
    p: JobPlacement,
    to: str,
    reason: str | None,
    now: float,
    *,
    actor: str = BRAIN,
    principal: Principal | None = None,
    device_id: str | None = None,
    bus: EventBus | None = None,
) -> None:
    """Move ``p`` to ``to``: store the transition, audit it, publish ``job.placement``.
    ``device_id`` is the board it concerns (default: the placement's)."""
    before = p.state
    board = device_id if device_id is not None else p.device_id
    why = reason[:MAX_REASON] if reason else None
    p.state, p.reason, p.updated_at = to, why, now
    who = principal.name if principal is not None else actor
    session.add(
        PlacementTransition(
            tenant_id=p.tenant_id,
            placement_id=p.id,
            job_id=p.job_id,
            device_id=board,
            from_state=before,
            to_state=to,
            reason=why,
            at=now,
            actor=who[:100],
            created_at=now,
        )
    )
    audit.record(
        session,
        principal,
        "job.placement",
        resource_type="placement",
        resource_id=p.id,
        before={"state": before},
        after={"state": to},
        details={"job_id": p.job_id, "device_id": board, "reason": why, "actor": who},
        tenant_id=p.tenant_id,
        actor_name=actor,
    )
    publish_after_commit(
        session,
        bus,
        p.tenant_id,
        "job.placement",
        {"job_id": p.job_id, "placement_id": p.id, "device_id": board, "state": to},
    )


async def settle_jobs(
    session: AsyncSession, job_ids: Iterable[str], now: float, bus: EventBus | None = None
) -> None:
    """Bring each job's state in line with its placements' (audited when it changes)."""
    for job_id in sorted(set(job_ids)):
        job = await session.get(Job, job_id, populate_existing=True)
        if job is None:
            continue
        states = list(
            await session.scalars(select(JobPlacement.state).where(JobPlacement.job_id == job_id))
        )
        state = job_state(states, job.stopped_at is not None)
        if state == job.state:
            continue
        before, job.state, job.updated_at = job.state, state, now
        audit.record(
            session,
            None,
            "job.state",
            resource_type="job",
            resource_id=job.id,
            before={"state": before},
            after={"state": state},
            tenant_id=job.tenant_id,
            actor_name=BRAIN,
        )
        publish_after_commit(
            session, bus, job.tenant_id, "job.updated", {"job_id": job.id, "state": state}
        )


async def active_on(session: AsyncSession, device_id: str, *, lock: bool) -> list[JobPlacement]:
    """The placements running (or starting, or moving) on a board, oldest first; ``lock``
    takes their row locks (PostgreSQL) so two writers do not release one twice."""
    stmt = (
        select(JobPlacement)
        .where(JobPlacement.device_id == device_id, JobPlacement.state.in_(ACTIVE))
        .order_by(JobPlacement.id)
        .execution_options(populate_existing=True)
    )
    if lock:
        stmt = stmt.with_for_update()
    return list((await session.scalars(stmt)).all())


async def release_placements(
    session: AsyncSession,
    device: Device,
    reason: str,
    now: float,
    bus: EventBus | None = None,
) -> list[JobPlacement]:
    """Release the board's active placements: back to ``pending`` (no board) for the
    placement loop to put elsewhere; ``stopped`` when their job was being stopped;
    ``failed`` when their job is not restartable (the brain may not run it again
    elsewhere). Each release is a transition and a decision. Returns the placements
    released; the caller recomposes the board's twin."""
    released = await active_on(session, device.id, lock=True)
    for p in released:
        job = await session.get(Job, p.job_id)
        if job is None:
            continue
        if job.stopped_at is not None:
            to, why = "stopped", f"{reason}; the job was being stopped"
        elif not job.restartable:
            to, why = "failed", f"{reason}; the job is not restartable, so it is not moved"
        else:
            to, why = "pending", reason
        transition(session, p, to, why, now, device_id=device.id, bus=bus)
        if to == "pending":
            p.device_id = None
        record_decision(
            session,
            p.tenant_id,
            loop="placement",
            action="release",
            subjects={"job": p.job_id, "placement": p.id, "device": device.id},
            summary=f"released replica {p.replica} of {job.name} from {device.name} ({to})",
            reasons=[why],
            inputs={"device_status": device.status, "placement_state": to},
            at=now,
            bus=bus,
        )
    await settle_jobs(session, {p.job_id for p in released}, now, bus)
    return released
