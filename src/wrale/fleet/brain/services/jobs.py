"""Jobs (``docs/jobs.md``): creating one (checked by ``job_spec``; its replicas placed at
once where boards are eligible, the rest left pending for the placement loop), listing
and reading them with their placements and history, and stopping one (its boards are
told to stop, and each placement ends as ``stopped`` once its board says so). Every
create and stop is audited.

Placement itself is ``job_placement``'s; the lifecycle rules are ``job_state``'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.bus import EventBus, publish_after_commit
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.base import new_id
from wrale.fleet.brain.models.base import now as wall_now
from wrale.fleet.brain.models.jobs import Job, JobPlacement, PlacementTransition
from wrale.fleet.brain.services import audit, job_placement, job_spec, twin
from wrale.fleet.brain.services.groups import get_group
from wrale.fleet.brain.services.job_state import ACTIVE, placement_view, settle_jobs, transition
from wrale.fleet.brain.services.lookup import get_owned
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.fleet.brain.services.selectors import validate_selector


def job_view(job: Job, placements: Sequence[JobPlacement]) -> dict[str, Any]:
    return {
        "id": job.id,
        "name": job.name,
        "state": job.state,
        "workload": job.workload,
        "replicas": job.replicas,
        "priority": job.priority,
        "strategy": job.strategy,
        "duration_s": job.duration_s,
        "restartable": job.restartable,
        "selector": job.selector,
        "max_per_rack": job.max_per_rack,
        "cpu_pct": job.cpu_pct,
        "watts": job.watts,
        "allow_battery": job.allow_battery,
        "created_by": job.created_by,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "stopped_at": job.stopped_at,
        "placements": [placement_view(p) for p in placements],
    }


def transition_view(t: PlacementTransition) -> dict[str, Any]:
    return {
        "id": t.id,
        "placement_id": t.placement_id,
        "device_id": t.device_id,
        "from_state": t.from_state,
        "to_state": t.to_state,
        "reason": t.reason,
        "at": t.at,
        "actor": t.actor,
    }


async def placements_of(
    session: AsyncSession, job_ids: Sequence[str]
) -> dict[str, list[JobPlacement]]:
    """The placements of each job, by replica."""
    out: dict[str, list[JobPlacement]] = {i: [] for i in job_ids}
    if not job_ids:
        return out
    rows = await session.scalars(
        select(JobPlacement)
        .where(JobPlacement.job_id.in_(list(job_ids)))
        .order_by(JobPlacement.job_id, JobPlacement.replica)
        .execution_options(populate_existing=True)
    )
    for p in rows:
        out[p.job_id].append(p)
    return out


async def get_job(session: AsyncSession, tenant_id: str, job_id: str) -> Job:
    return await get_owned(session, Job, tenant_id, job_id, "job")


async def view_of(session: AsyncSession, job: Job) -> dict[str, Any]:
    return job_view(job, (await placements_of(session, [job.id]))[job.id])


async def _check_selector(
    session: AsyncSession, tenant_id: str, selector: dict[str, Any]
) -> dict[str, Any]:
    """The places and the group the selector names must be the tenant's (404 if not)."""
    group_id = selector.get("group_id")
    clean = await validate_selector(
        session, tenant_id, {k: v for k, v in selector.items() if k != "group_id"}
    )
    if group_id:
        await get_group(session, tenant_id, group_id)
        clean["group_id"] = group_id
    return clean


async def create_job(
    session: AsyncSession,
    p: Principal,
    body: Any,
    *,
    now: float | None = None,
    bus: EventBus | None = None,
) -> Job:
    """Create a job from ``body`` (a JSON object or a ``JobSpec``; operators), one pending
    placement per replica, then place what can be placed now."""
    p.require(Role.OPERATOR, "creating jobs")
    spec = job_spec.parse(body)
    selector = await _check_selector(session, p.tenant_id, job_spec.selector_of(spec))
    cpu_pct, watts = job_spec.hints(spec)
    at = wall_now() if now is None else now
    job = Job(
        id=new_id(),
        tenant_id=p.tenant_id,
        name=spec.name,
        workload=spec.workload.model_dump(mode="json"),
        replicas=spec.replicas,
        priority=spec.priority,
        strategy=spec.strategy,
        duration_s=spec.duration_s,
        restartable=spec.restartable,
        selector=selector,
        max_per_rack=spec.max_per_rack,
        cpu_pct=cpu_pct,
        watts=watts,
        allow_battery=spec.allow_battery,
        state="pending",
        created_by=p.name[:100],
        created_at=at,
        updated_at=at,
    )
    session.add(job)
    await session.flush()
    for replica in range(spec.replicas):
        # no state yet: its first transition is "(none) → pending, created"
        placement = JobPlacement(
            id=new_id(),
            tenant_id=job.tenant_id,
            job_id=job.id,
            replica=replica,
            created_at=at,
            updated_at=at,
        )
        session.add(placement)
        transition(session, placement, "pending", "created", at, principal=p, bus=bus)
    audit.record(
        session,
        p,
        "job.create",
        resource_type="job",
        resource_id=job.id,
        after=job_view(job, []),
    )
    await session.flush()
    await job_placement.place_pending(session, p.tenant_id, at, bus, job_id=job.id)
    publish_after_commit(session, bus, job.tenant_id, "job.updated", {"job_id": job.id})
    return job


def _filtered(tenant_id: str, state: str | None) -> Select[Job]:
    stmt = select(Job).where(Job.tenant_id == tenant_id)
    if state:
        stmt = stmt.where(Job.state == state)
    return stmt


async def list_jobs(
    session: AsyncSession,
    tenant_id: str,
    *,
    after_id: str | None = None,
    limit: int = 50,
    state: str | None = None,
) -> list[Job]:
    """Oldest first; ``after_id`` continues a previous page."""
    stmt = _filtered(tenant_id, state)
    if after_id:
        stmt = stmt.where(Job.id > after_id)
    return list((await session.scalars(stmt.order_by(Job.id).limit(limit))).all())


async def transitions(
    session: AsyncSession, tenant_id: str, job_id: str, *, limit: int = 500
) -> list[PlacementTransition]:
    """The job's placement history, oldest first."""
    job = await get_job(session, tenant_id, job_id)
    rows = await session.scalars(
        select(PlacementTransition)
        .where(PlacementTransition.job_id == job.id)
        .order_by(PlacementTransition.at, PlacementTransition.id)
        .limit(limit)
    )
    return list(rows.all())


async def stop_job(
    session: AsyncSession,
    p: Principal,
    job_id: str,
    *,
    now: float | None = None,
    bus: EventBus | None = None,
) -> Job:
    """Stop a job (operators): replicas not yet on a board stop at once; the boards
    running the others are told to stop them (their desired ``jobs`` section loses
    them) and each ends ``stopped`` when its board reports so. Asking again changes
    nothing."""
    p.require(Role.OPERATOR, "stopping jobs")
    job = await get_job(session, p.tenant_id, job_id)
    job = await job_placement.lock_job(session, job.id) or job
    if job.stopped_at is not None:
        return job
    at = wall_now() if now is None else now
    before = {"state": job.state, "stopped_at": None}
    job.stopped_at, job.updated_at = at, at
    boards: set[str] = set()
    for placement in (await placements_of(session, [job.id]))[job.id]:
        if placement.state == "pending":
            transition(session, placement, "stopped", f"stopped by {p.name}", at, principal=p)
        elif placement.state in ACTIVE and placement.device_id:
            placement.reason = f"stop asked by {p.name}; waiting for its board"
            placement.updated_at = at
            boards.add(placement.device_id)
    await settle_jobs(session, [job.id], at, bus)
    boards_in_order = select(Device).where(Device.id.in_(sorted(boards))).order_by(Device.id)
    for device in await session.scalars(boards_in_order):
        await twin.recompose(session, device, bus)
    audit.record(
        session,
        p,
        "job.stop",
        resource_type="job",
        resource_id=job.id,
        before=before,
        after={"state": job.state, "stopped_at": at},
    )
    publish_after_commit(session, bus, job.tenant_id, "job.updated", {"job_id": job.id})
    return job
