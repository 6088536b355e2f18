"""Dry-runs on the digital copy of the fleet (``docs/dry-run.md``): an operator asks for
one (the change checked, the jobs and racks it names found, the request queued and
audited); ``DryRunWorker`` runs the queued ones with the wired ``DryRunner`` in a thread,
one at a time per process, from the fleet view at the time it runs; a request never runs
the simulator. Reads for the API and the dashboard: ``get_dry_run``, ``list_dry_runs``,
``dry_run_view``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import replace
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.db import Database
from wrale.fleet.brain.decisions.view import FleetView
from wrale.fleet.brain.models import Device, Rack
from wrale.fleet.brain.models.base import new_id
from wrale.fleet.brain.models.base import now as wall_now
from wrale.fleet.brain.models.dry_runs import DryRun
from wrale.fleet.brain.models.jobs import Job, JobPlacement
from wrale.fleet.brain.services import audit, job_spec
from wrale.fleet.brain.services.dry_run_change import (
    DRY_RUN_JOB_ID,
    AddJob,
    Change,
    ChangeBody,
    DryRunner,
    JobBody,
    RackBudgetBody,
    SetRackBudget,
    StopJob,
    StopJobBody,
    body_of,
    check_minutes,
    parse_change,
)
from wrale.fleet.brain.services.fleet_view_builder import build_fleet_view
from wrale.fleet.brain.services.fleet_view_builder import job_spec as job_view_of
from wrale.fleet.brain.services.groups import get_group
from wrale.fleet.brain.services.job_boards import load_boards
from wrale.fleet.brain.services.job_state import ACTIVE
from wrale.fleet.brain.services.lookup import get_owned
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.fleet.brain.services.selectors import validate_selector
from wrale.shared.errors import InvalidRequestError, WraleError

log = logging.getLogger("wrale.central.dry_runs")
LOST_AFTER_S = 1800.0  # a dry-run "running" this long lost its worker (a restart)
ERROR_CHARS = 500


def dry_run_view(d: DryRun) -> dict[str, Any]:
    return {
        "id": d.id,
        "state": d.state,
        "change": d.change,
        "minutes": d.minutes,
        "result": d.result,
        "error": d.error,
        "created_by": d.created_by,
        "created_at": d.created_at,
        "started_at": d.started_at,
        "finished_at": d.finished_at,
    }


async def _check_names(session: AsyncSession, tenant_id: str, body: ChangeBody) -> None:
    """The job, rack, places and group the change names must be the tenant's (404)."""
    if isinstance(body, StopJobBody):
        job = await get_owned(session, Job, tenant_id, body.job, "job")
        if job.stopped_at is not None:
            raise InvalidRequestError(f"change.job: job {job.id} is already stopped", field="job")
    elif isinstance(body, RackBudgetBody):
        await get_owned(session, Rack, tenant_id, body.rack, "rack")
    else:
        selector = job_spec.selector_of(body.spec)
        await validate_selector(
            session, tenant_id, {k: v for k, v in selector.items() if k != "group_id"}
        )
        if selector.get("group_id"):
            await get_group(session, tenant_id, selector["group_id"])


async def create_dry_run(
    session: AsyncSession, p: Principal, change: Any, minutes: Any, *, now: float | None = None
) -> DryRun:
    """Queue a dry-run of ``change`` for ``minutes`` simulated minutes (operators)."""
    p.require(Role.OPERATOR, "dry-running a change")
    body = parse_change(change)
    mins = check_minutes(minutes)
    await _check_names(session, p.tenant_id, body)
    at = wall_now() if now is None else now
    row = DryRun(
        id=new_id(),
        tenant_id=p.tenant_id,
        change=body_of(body),
        minutes=mins,
        state="queued",
        created_by=p.name[:100],
        created_at=at,
    )
    session.add(row)
    await session.flush()
    audit.record(
        session,
        p,
        "dry_run.create",
        resource_type="dry_run",
        resource_id=row.id,
        after={"change": row.change, "minutes": mins},
    )
    return row


async def get_dry_run(session: AsyncSession, tenant_id: str, dry_run_id: str) -> DryRun:
    return await get_owned(session, DryRun, tenant_id, dry_run_id, "dry-run")


async def list_dry_runs(
    session: AsyncSession,
    tenant_id: str,
    *,
    after_id: str | None = None,
    limit: int = 50,
    state: str | None = None,
) -> list[DryRun]:
    """Newest first; ``after_id`` continues a previous page (older than it)."""
    stmt = select(DryRun).where(DryRun.tenant_id == tenant_id)
    if state:
        stmt = stmt.where(DryRun.state == state)
    if after_id:
        stmt = stmt.where(DryRun.id < after_id)
    return list((await session.scalars(stmt.order_by(DryRun.id.desc()).limit(limit))).all())


# ----------------------------------------------------------------------------- the worker


async def fleet_now(
    session: AsyncSession, tenant_id: str, body: ChangeBody, now: float
) -> tuple[FleetView, Change]:
    """The organisation's fleet view now (each job's ``replicas``: its placements not yet
    ended) and the change resolved against it (a new job's selector to its boards)."""
    await _check_names(session, tenant_id, body)
    devices = await session.scalars(
        select(Device).where(Device.tenant_id == tenant_id).order_by(Device.name)
    )
    boards = await load_boards(session, list(devices), now)
    view = await build_fleet_view(session, tenant_id, now, boards=boards)
    rows = await session.execute(
        select(JobPlacement.job_id).where(
            JobPlacement.tenant_id == tenant_id,
            JobPlacement.state.in_((*ACTIVE, "pending")),
        )
    )
    live = Counter(job_id for (job_id,) in rows)
    jobs = tuple(replace(j, replicas=live.get(j.id, 0)) for j in view.jobs)
    view = FleetView(view.boards, view.racks, jobs, view.now)
    if isinstance(body, StopJobBody):
        return view, StopJob(body.job)
    if isinstance(body, RackBudgetBody):
        rack = await session.get(Rack, body.rack)
        return view, SetRackBudget(body.rack, body.watts, rack.name if rack else None)
    return view, await _new_job(session, tenant_id, body, boards)


async def _new_job(session: AsyncSession, tenant_id: str, body: JobBody, boards: Any) -> AddJob:
    spec = body.spec
    cpu_pct, watts = job_spec.hints(spec)
    job = Job(  # never added to the session: only read by the selector's resolution
        id=DRY_RUN_JOB_ID,
        tenant_id=tenant_id,
        name=spec.name,
        workload=spec.workload.model_dump(mode="json"),
        replicas=spec.replicas,
        priority=spec.priority,
        strategy=spec.strategy,
        restartable=spec.restartable,
        selector=job_spec.selector_of(spec),
        max_per_rack=spec.max_per_rack,
        cpu_pct=cpu_pct,
        watts=watts,
        allow_battery=spec.allow_battery,
    )
    view = await job_view_of(session, job, boards)
    return AddJob(replace(view, replicas=spec.replicas), spec.name)


async def _name_racks(session: AsyncSession, result: dict[str, Any]) -> None:
    """Each rack of the result gets its ``name`` (the copy knows only ids)."""
    racks = [r for r in result.get("racks", []) if isinstance(r, dict)]
    ids = [str(r.get("rack")) for r in racks]
    names: dict[str, str] = {}
    if ids:
        rows = await session.execute(select(Rack.id, Rack.name).where(Rack.id.in_(ids)))
        names = {str(rid): str(name) for rid, name in rows}  # Result has keys(): no dict()
    for r in racks:
        r["name"] = names.get(str(r.get("rack")))


async def _claim(db: Database, holder: str, now: float) -> DryRun | None:
    """The oldest queued dry-run, now ``running`` for ``holder`` (None: none, or another
    worker took it first)."""
    async with db.session() as s:
        first = await s.scalar(
            select(DryRun.id).where(DryRun.state == "queued").order_by(DryRun.id).limit(1)
        )
        if first is None:
            return None
        done = await s.execute(
            update(DryRun)
            .where(DryRun.id == first, DryRun.state == "queued")
            .values(state="running", started_at=now, runner=holder[:120])
        )
        if int(done.rowcount or 0) != 1:  # type: ignore[attr-defined]
            return None
        return await s.get(DryRun, first)


async def _finish(
    db: Database, dry_run_id: str, result: dict[str, Any] | None, error: str | None, now: float
) -> None:
    async with db.session() as s:
        await s.execute(
            update(DryRun)
            .where(DryRun.id == dry_run_id, DryRun.state == "running")
            .values(
                state="failed" if error is not None else "done",
                result=result,
                error=None if error is None else error[:ERROR_CHARS],
                finished_at=now,
            )
        )


async def fail_lost(db: Database, now: float) -> int:
    """Dry-runs left ``running`` by a worker that is gone (``LOST_AFTER_S``) fail."""
    async with db.serial_session() as s:  # every 5 s: a writer turn on SQLite
        done = await s.execute(
            update(DryRun)
            .where(DryRun.state == "running", DryRun.started_at < now - LOST_AFTER_S)
            .values(state="failed", error="its worker was lost (a restart?)", finished_at=now)
        )
        return int(done.rowcount or 0)  # type: ignore[attr-defined]


class DryRunWorker:
    """Runs queued dry-runs with ``runner`` in a thread, one at a time: a run outlives a
    cancelled caller (a thread cannot be stopped) and still stores its result."""

    def __init__(self, runner: DryRunner, holder: str) -> None:
        self.runner = runner
        self.holder = holder
        self._task: asyncio.Task[str] | None = None

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    async def run_once(self, db: Database, now: float, *, wait: bool = True) -> str | None:
        """Claim the oldest queued dry-run and run it; its id (None: busy, or none
        queued). ``wait``: return once it is done (else it goes on in the background)."""
        if self.busy:
            return None
        await fail_lost(db, now)
        row = await _claim(db, self.holder, now)
        if row is None:
            return None
        self._task = asyncio.create_task(self._run(db, row), name=f"wrale-dry-run-{row.id}")
        if wait:
            await asyncio.shield(self._task)
        return row.id

    async def wait_idle(self) -> None:
        """Until the dry-run under way (if any) is done and stored."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def _run(self, db: Database, row: DryRun) -> str:
        result: dict[str, Any] | None = None
        error: str | None = None
        try:
            body = parse_change(row.change)
            async with db.session() as s:
                view, change = await fleet_now(s, row.tenant_id, body, wall_now())
            result = await asyncio.to_thread(self.runner, view, change, row.minutes)
            async with db.session() as s:
                await _name_racks(s, result)
        except (WraleError, ValueError) as exc:
            error = getattr(exc, "message", None) or str(exc)
        except Exception as exc:  # a failed run must not stop the worker
            log.exception("dry-run %s failed", row.id)
            error = f"the digital copy failed: {type(exc).__name__}: {exc}"
        await _finish(db, row.id, result, error, wall_now())
        return row.id
