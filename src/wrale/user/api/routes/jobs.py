"""``/jobs`` (``docs/jobs.md``): create a job (operators; its replicas are placed at once
where boards are eligible, the rest wait for the placement loop), list and read jobs with
their placements and history (everyone), stop one (operators); ``/decisions``, the
brain's decision log (everyone); and ``/decisions/loops``, each loop's per-site pauses
(everyone reads, operators pause and resume)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from wrale.fleet.brain.models.decisions import Decision
from wrale.fleet.brain.models.jobs import Job
from wrale.fleet.brain.services import decision_log, decision_loops, jobs
from wrale.user.api.deps import OperatorDep, PageDep, SessionDep, StateDep, ViewerDep
from wrale.user.api.schemas.common import Page, page_of
from wrale.user.api.schemas.jobs import (
    DecisionPublic,
    JobCreate,
    JobPublic,
    JobState,
    LoopPausePublic,
    LoopPauseUpdate,
    LoopPublic,
    TransitionPublic,
)
from wrale.user.api.schemas.registry import ID

router = APIRouter(tags=["jobs"])
Loop = Annotated[str | None, Query(pattern=r"^[a-z_]{1,32}$", description="e.g. placement")]


async def _public(session: SessionDep, job: Job) -> JobPublic:
    return JobPublic.model_validate(await jobs.view_of(session, job))


@router.post("/jobs", status_code=201)
async def create_job(
    body: JobCreate, p: OperatorDep, session: SessionDep, state: StateDep
) -> JobPublic:
    """Create a job: one placement per replica, placed at once on eligible boards by its
    strategy (``physical``, the default, or ``spread``: round-robin); replicas no board
    can take now stay ``pending`` with the reason."""
    job = await jobs.create_job(session, p, body, bus=state.bus)
    return await _public(session, job)


@router.get("/jobs")
async def list_jobs(
    p: ViewerDep, session: SessionDep, page: PageDep, state: JobState | None = None
) -> Page[JobPublic]:
    """The organisation's jobs with their placements, oldest first."""
    rows = await jobs.list_jobs(
        session, p.tenant_id, after_id=page.after, limit=page.limit + 1, state=state
    )
    placed = await jobs.placements_of(session, [j.id for j in rows[: page.limit]])
    return page_of(
        rows, page, lambda j: JobPublic.model_validate(jobs.job_view(j, placed.get(j.id, [])))
    )


@router.get("/jobs/{job_id}")
async def get_job(job_id: str, p: ViewerDep, session: SessionDep) -> JobPublic:
    return await _public(session, await jobs.get_job(session, p.tenant_id, job_id))


@router.get("/jobs/{job_id}/transitions")
async def job_transitions(job_id: str, p: ViewerDep, session: SessionDep) -> list[TransitionPublic]:
    """Every state change of the job's placements, oldest first (at most 500)."""
    rows = await jobs.transitions(session, p.tenant_id, job_id)
    return [TransitionPublic.model_validate(jobs.transition_view(t)) for t in rows]


@router.delete("/jobs/{job_id}")
async def stop_job(job_id: str, p: OperatorDep, session: SessionDep, state: StateDep) -> JobPublic:
    """Stop the job: replicas not on a board stop at once; boards are told to stop the
    others, which end ``stopped`` once their board says so (``stopped_at`` says when the
    stop was asked). Asking again changes nothing."""
    job = await jobs.stop_job(session, p, job_id, bus=state.bus)
    return await _public(session, job)


def _decision(d: Decision) -> DecisionPublic:
    return DecisionPublic.model_validate(decision_log.decision_view(d))


@router.get("/decisions", tags=["decisions"])
async def list_decisions(
    p: ViewerDep,
    session: SessionDep,
    page: PageDep,
    loop: Loop = None,
    subject: Annotated[
        str | None, Query(pattern=ID, description="a job, placement, device or rack id")
    ] = None,
    since: Annotated[float | None, Query(ge=0, le=1e11, description="unix seconds")] = None,
) -> Page[DecisionPublic]:
    """The brain's decision log, newest first: what each loop decided, about what, why,
    and from which inputs."""
    rows = await decision_log.list_decisions(
        session,
        p.tenant_id,
        before_id=page.after,
        limit=page.limit + 1,
        loop=loop,
        subject=subject,
        since=since,
    )
    return page_of(rows, page, _decision)


@router.get("/decisions/loops", tags=["decisions"])
async def list_loops(p: ViewerDep, session: SessionDep) -> list[LoopPublic]:
    """Each decision loop and the sites it is paused in."""
    rows = await decision_loops.list_pauses(session, p.tenant_id)
    return [LoopPublic.model_validate(r) for r in rows]


@router.put("/decisions/loops/{loop}", tags=["decisions"])
async def pause_loop(
    loop: str, body: LoopPauseUpdate, p: OperatorDep, session: SessionDep
) -> LoopPausePublic:
    """Pause or resume a loop in one site (``site_id`` null: everywhere). A paused loop
    reads nothing of that site's boards, acts on none and logs nothing about them (the
    placement loop still releases boards that go offline, into SAFE mode or lockdown).
    ``loop``: placement, capping, balancing or recommendations (another: 404)."""
    done = await decision_loops.set_pause(session, p, loop, body.paused, body.site_id)
    return LoopPausePublic.model_validate(done)
