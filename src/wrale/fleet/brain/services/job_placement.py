"""The placement loop's service: read the boards a job may run on, put its pending
replicas on the boards ``decisions.placement_input.choose`` prefers (``physical`` jobs
on the fleet view built once per pass, each choice added to it; none on boards of a site
where the loop is paused), and release the
placements of boards that may no longer run them (offline, SAFE mode, tamper lockdown,
held by an operator, deleted). Each placement and release is a transition, an audit entry
and a decision; each board whose placements changed gets its twin recomposed.

Safe with several replicas of the central server: a job's row is write-locked while its
replicas are placed (the first statement is an UPDATE, so SQLite takes its write lock
too), and a board's placements are row-locked while they are released.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.bus import EventBus
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.decisions.placement_input import (
    PHYSICAL,
    Candidate,
    PlacementJob,
    choose,
    physical_refusals,
)
from wrale.fleet.brain.decisions.view import FleetView
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.base import now as wall_now
from wrale.fleet.brain.models.jobs import Job, JobPlacement
from wrale.fleet.brain.services import job_state, twin
from wrale.fleet.brain.services.decision_log import record_decision
from wrale.fleet.brain.services.decision_loops import Pauses, pauses
from wrale.fleet.brain.services.fleet_view_builder import (
    build_fleet_view,
    placement_view_of,
    with_placement,
)
from wrale.fleet.brain.services.job_boards import (
    Board,
    block,
    load_boards,
    release_reason,
    selected_ids,
)
from wrale.fleet.brain.services.job_state import ACTIVE, transition

log = logging.getLogger("wrale.central.jobs")

MAX_JOBS_PER_PASS = 200


@dataclass(frozen=True, slots=True)
class PlacementPass:
    placed: int  # replicas put on a board
    released: int  # placements taken off boards that may not run them
    waiting: int  # replicas still pending after the pass


async def release_board(
    session: AsyncSession,
    device: Device,
    reason: str,
    now: float | None = None,
    bus: EventBus | None = None,
) -> int:
    """Release the board's active placements (``job_state.release_placements``) and
    recompose its twin; returns how many were released."""
    at = wall_now() if now is None else now
    released = await job_state.release_placements(session, device, reason, at, bus)
    if released:
        await twin.recompose(session, device, bus)
        log.info("device %s: %d placement(s) released: %s", device.id, len(released), reason)
    return len(released)


async def sweep(
    session: AsyncSession, tenant_id: str | None, now: float, bus: EventBus | None = None
) -> int:
    """Release the placements of every board that may no longer run them, and put back to
    pending the active placements whose board was deleted; returns how many."""
    stmt = select(JobPlacement.device_id).where(JobPlacement.state.in_(ACTIVE)).distinct()
    if tenant_id is not None:
        stmt = stmt.where(JobPlacement.tenant_id == tenant_id)
    device_ids = sorted({d for d in await session.scalars(stmt) if d})
    released = await _orphans(session, tenant_id, now, bus)
    if not device_ids:
        return released
    devices = list(await session.scalars(select(Device).where(Device.id.in_(device_ids))))
    boards = await load_boards(session, devices, now)
    for b in boards:
        why = release_reason(b, now)
        if why is not None:
            released += await release_board(session, b.device, why, now, bus)
    return released


async def _orphans(
    session: AsyncSession, tenant_id: str | None, now: float, bus: EventBus | None
) -> int:
    stmt = select(JobPlacement).where(
        JobPlacement.state.in_(ACTIVE), JobPlacement.device_id.is_(None)
    )
    if tenant_id is not None:
        stmt = stmt.where(JobPlacement.tenant_id == tenant_id)
    rows = list(await session.scalars(stmt.with_for_update()))
    for p in rows:
        transition(session, p, "pending", "its board was deleted", now, bus=bus)
    await job_state.settle_jobs(session, {p.job_id for p in rows}, now, bus)
    return len(rows)


async def lock_job(session: AsyncSession, job_id: str) -> Job | None:
    """The job, write-locked: an UPDATE that changes nothing takes PostgreSQL's row lock
    and SQLite's write lock before anything is read."""
    await session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(updated_at=Job.updated_at)
        .execution_options(synchronize_session=False)
    )
    return await session.get(Job, job_id, populate_existing=True)


def _snapshot(job: Job) -> PlacementJob:
    return PlacementJob(
        id=job.id,
        name=job.name,
        priority=job.priority,
        strategy=job.strategy,
        cpu_pct=job.cpu_pct,
        watts=job.watts,
        allow_battery=job.allow_battery,
        max_per_rack=job.max_per_rack,
        restartable=job.restartable,
    )


def _waiting_reason(excluded: Counter[str], total: int) -> str:
    if not total:
        return "no eligible board: the organisation has no boards"
    parts = ", ".join(f"{n} {why}" for why, n in excluded.most_common())
    return f"no eligible board of {total}: {parts}" if parts else "no eligible board"


@dataclass
class _Load:
    """Active placements per board as the pass goes: counts, CPU hints, jobs, racks."""

    count: Counter[str]
    cpu: dict[str, float]
    jobs: set[tuple[str, str]]  # (job, device)
    racks: Counter[tuple[str, str]]  # (job, rack)
    rack_of: dict[str, str | None]  # device -> rack
    view: FleetView | None = None  # the pass's fleet view (physical jobs), with its choices

    def add(self, job: Job, device_id: str, rack_id: str | None, n: int = 1) -> None:
        self.count[device_id] += n
        self.cpu[device_id] = self.cpu.get(device_id, 0.0) + job.cpu_pct * n
        if n > 0:
            self.jobs.add((job.id, device_id))
        else:
            self.jobs.discard((job.id, device_id))
        if rack_id:
            self.racks[job.id, rack_id] += n

    def resync(self, job: Job, boards_now: set[str]) -> None:
        """Make the job's own entries what the database holds now that its row is locked
        (another pass may have placed or released some of its replicas meanwhile)."""
        before = {d for j, d in self.jobs if j == job.id}
        for d in boards_now - before:
            self.add(job, d, self.rack_of.get(d))
        for d in before - boards_now:
            self.add(job, d, self.rack_of.get(d), -1)


async def _load(session: AsyncSession, tenant_id: str, boards: Iterable[Board]) -> _Load:
    racks = {b.device.id: b.device.rack_id for b in boards}
    load = _Load(Counter(), {}, set(), Counter(), racks)
    rows = await session.execute(
        select(JobPlacement.device_id, JobPlacement.job_id, Job.cpu_pct)
        .join(Job, Job.id == JobPlacement.job_id)
        .where(JobPlacement.tenant_id == tenant_id, JobPlacement.state.in_(ACTIVE))
    )
    for device_id, job_id, cpu in rows:
        if device_id is None:
            continue
        load.count[device_id] += 1
        load.cpu[device_id] = load.cpu.get(device_id, 0.0) + cpu
        load.jobs.add((job_id, device_id))
        if rack := racks.get(device_id):
            load.racks[job_id, rack] += 1
    return load


def _candidate(b: Board, load: _Load) -> Candidate:
    d = b.device
    return Candidate(
        device_id=d.id,
        name=d.name,
        rack_id=d.rack_id,
        room_id=b.place.room_id if b.place else None,
        site_id=b.place.site_id if b.place else None,
        placements=load.count[d.id],
        cpu_pct=load.cpu.get(d.id, 0.0),
        on_battery=b.on_battery,
    )


async def _place_job(
    session: AsyncSession,
    job_id: str,
    boards: list[Board],
    load: _Load,
    now: float,
    bus: EventBus | None,
) -> tuple[int, int, set[str]]:
    """Place the job's pending replicas; (placed, still waiting, boards changed)."""
    waits = select(JobPlacement.id).where(
        JobPlacement.job_id == job_id, JobPlacement.state == "pending"
    )
    if await session.scalar(waits.limit(1)) is None:
        return 0, 0, set()  # placed by another pass meanwhile: not locked for nothing
    job = await lock_job(session, job_id)
    if job is None or job.stopped_at is not None:
        return 0, 0, set()
    pending = list(
        await session.scalars(
            select(JobPlacement)
            .where(JobPlacement.job_id == job.id, JobPlacement.state == "pending")
            .order_by(JobPlacement.replica)
            .execution_options(populate_existing=True)
        )
    )
    on_boards = await session.scalars(
        select(JobPlacement.device_id).where(
            JobPlacement.job_id == job.id, JobPlacement.state.in_(ACTIVE)
        )
    )
    load.resync(job, {d for d in on_boards if d})
    selected = await selected_ids(session, job, boards)
    snapshot, placed = _snapshot(job), 0
    touched: set[str] = set()
    for i, p in enumerate(pending):
        excluded: Counter[str] = Counter()
        cands: dict[str, Board] = {}
        for b in boards:
            why = block(b, job, selected, load.jobs, load.cpu, load.racks)
            if why is None:
                cands[b.device.id] = b
            else:
                excluded[why] += 1
        candidates = [_candidate(b, load) for b in cands.values()]
        ranked = choose(snapshot, candidates, job.strategy, load.view)
        if not ranked:
            if job.strategy == PHYSICAL and load.view is not None:
                excluded += physical_refusals(snapshot, candidates, load.view)
            waiting = _waiting_reason(excluded, len(boards))
            for q in pending[i:]:
                if q.reason != waiting:
                    q.reason, q.updated_at = waiting, now
            return placed, len(pending) - i, touched
        pick = ranked[0]
        board = cands[pick.candidate.device_id]
        why = f"placed on {board.device.name}: {pick.why}"
        transition(session, p, "starting", why, now, device_id=board.device.id, bus=bus)
        p.device_id = board.device.id
        p.started_at = p.ended_at = p.exit_code = p.cpu_s = p.output_tail = None
        p.cpu_quota_pct = None  # a quota is its old rack's: the new board's capping sets its own
        record_decision(
            session,
            job.tenant_id,
            loop="placement",
            action="place",
            subjects={
                "job": job.id,
                "placement": p.id,
                "device": board.device.id,
                "rack": board.device.rack_id,
            },
            summary=f"replica {p.replica} of {job.name} on {board.device.name}",
            reasons=[pick.why],
            inputs={
                "strategy": job.strategy,
                "eligible_boards": len(cands),
                "excluded": dict(excluded),
                "placements_on_board": pick.candidate.placements,
                "cpu_pct_on_board": pick.candidate.cpu_pct,
                "on_battery": pick.candidate.on_battery,
                **pick.inputs,
            },
            at=now,
            bus=bus,
        )
        load.add(job, board.device.id, board.device.rack_id)
        if load.view is not None:
            seen = placement_view_of(p, job, starting=True)
            load.view = with_placement(load.view, board.device.id, seen)
        touched.add(board.device.id)
        placed += 1
    await job_state.settle_jobs(session, [job.id], now, bus)
    return placed, 0, touched


async def place_pending(
    session: AsyncSession,
    tenant_id: str | None = None,
    now: float | None = None,
    bus: EventBus | None = None,
    *,
    job_id: str | None = None,
    max_jobs: int = MAX_JOBS_PER_PASS,
) -> PlacementPass:
    """One pass of the placement loop: release what boards may no longer run, then place
    pending replicas, the highest priority (then oldest) job first. Idempotent: a pass
    with nothing to do changes nothing. ``job_id``: only that job's replicas, without
    the release sweep (a job just created)."""
    at = wall_now() if now is None else now
    released = 0 if job_id is not None else await sweep(session, tenant_id, at, bus)
    stmt = (
        select(Job.id, Job.tenant_id)
        .where(
            Job.stopped_at.is_(None),
            Job.id.in_(select(JobPlacement.job_id).where(JobPlacement.state == "pending")),
        )
        .order_by(Job.priority.desc(), Job.id)
        .limit(max_jobs)
    )
    if tenant_id is not None:
        stmt = stmt.where(Job.tenant_id == tenant_id)
    if job_id is not None:
        stmt = stmt.where(Job.id == job_id)
    jobs = list((await session.execute(stmt)).all())
    placed = waiting = 0
    by_tenant: dict[str, tuple[list[Board], _Load]] = {}
    paused_everywhere: dict[str, bool] = {}
    touched: set[str] = set()
    for job_id, tenant in jobs:
        if tenant not in by_tenant:
            devices = await session.scalars(
                select(Device).where(Device.tenant_id == tenant).order_by(Device.name)
            )
            boards = await load_boards(session, list(devices), at)
            paused = await pauses(session, tenant, "placement")
            paused_everywhere[tenant] = paused.everywhere
            boards = [b for b in boards if not _paused_at(b, paused)]
            load = await _load(session, tenant, boards)
            load.view = await build_fleet_view(session, tenant, at, boards=boards)
            by_tenant[tenant] = (boards, load)
        boards, load = by_tenant[tenant]
        if paused_everywhere[tenant]:
            continue
        n, w, changed = await _place_job(session, job_id, boards, load, at, bus)
        placed, waiting, touched = placed + n, waiting + w, touched | changed
    for device in await _devices(session, touched):
        await twin.recompose(session, device, bus)
    if placed or released:
        log.info("placement: %d placed, %d released, %d waiting", placed, released, waiting)
    return PlacementPass(placed, released, waiting)


def _paused_at(board: Board, paused: Pauses) -> bool:
    """Is the placement loop paused where ``board`` is (no new work goes there)?"""
    site = board.place.site_id if board.place else None
    return paused.everywhere or (site is not None and site in paused.sites)


async def _devices(session: AsyncSession, ids: Iterable[str]) -> list[Device]:
    wanted = sorted(set(ids))
    if not wanted:
        return []
    # in id order: twin rows are locked in one order by every writer (no deadlock)
    stmt = select(Device).where(Device.id.in_(wanted)).order_by(Device.id)
    return list(await session.scalars(stmt))


async def place_all(db: Database, now: float, bus: EventBus | None = None) -> PlacementPass:
    """A pass for every tenant with placements to make or to watch, each in its own
    transaction (the lease-guarded background job ``job_placement``)."""
    async with db.session() as s:
        tenants = sorted(
            set(
                await s.scalars(
                    select(JobPlacement.tenant_id)
                    .where(JobPlacement.state.in_(("pending", *ACTIVE)))
                    .distinct()
                )
            )
        )
    placed = released = waiting = 0
    for tenant_id in tenants:
        async with db.session() as s:
            done = await place_pending(s, tenant_id, now, bus)
        placed, released = placed + done.placed, released + done.released
        waiting += done.waiting
    return PlacementPass(placed, released, waiting)
