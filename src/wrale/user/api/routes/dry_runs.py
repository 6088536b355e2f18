"""``/dry-runs`` (``docs/dry-run.md``): ask for a dry-run of a change on the digital copy of
the fleet (operators; queued, run by a worker, never in the request: ``202``), read one
with its result, and list them (everyone)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from wrale.fleet.brain.models.dry_runs import DryRun
from wrale.fleet.brain.services import dry_runs
from wrale.fleet.brain.services.dry_run_change import MAX_MINUTES, MIN_MINUTES
from wrale.user.api.deps import OperatorDep, PageDep, SessionDep, ViewerDep
from wrale.user.api.schemas.common import Page, page_of

router = APIRouter(tags=["dry-runs"])
DryRunState = Literal["queued", "running", "done", "failed"]


class DryRunCreate(BaseModel):
    """``change`` is ``{"kind": "job", ...a job as POST /jobs takes it...}``,
    ``{"kind": "stop_job", "job": id}`` or ``{"kind": "rack_budget", "rack": id,
    "watts": W}``; unknown fields are refused and nothing is coerced."""

    model_config = ConfigDict(extra="forbid", strict=True)

    change: dict[str, Any]
    minutes: Annotated[int, Field(ge=MIN_MINUTES, le=MAX_MINUTES)] = 10


class DryRunQueued(BaseModel):
    id: str
    state: DryRunState


class DryRunPublic(BaseModel):
    id: str
    state: DryRunState
    change: dict[str, Any]
    minutes: int
    result: dict[str, Any] | None = Field(
        description="without and with the change: fleet, per rack, per board, a summary"
    )
    error: str | None = Field(description="why it failed")
    created_by: str
    created_at: float
    started_at: float | None
    finished_at: float | None


def _public(d: DryRun) -> DryRunPublic:
    return DryRunPublic.model_validate(dry_runs.dry_run_view(d))


@router.post("/dry-runs", status_code=202)
async def create_dry_run(body: DryRunCreate, p: OperatorDep, session: SessionDep) -> DryRunQueued:
    """Queue a dry-run: the simulator seeded from the current readings runs the next
    ``minutes`` (1-60) with and without the change; poll ``GET /dry-runs/{id}``."""
    row = await dry_runs.create_dry_run(session, p, body.change, body.minutes)
    return DryRunQueued(id=row.id, state="queued")


@router.get("/dry-runs")
async def list_dry_runs(
    p: ViewerDep, session: SessionDep, page: PageDep, state: DryRunState | None = None
) -> Page[DryRunPublic]:
    """The organisation's dry-runs, newest first."""
    rows = await dry_runs.list_dry_runs(
        session, p.tenant_id, after_id=page.after, limit=page.limit + 1, state=state
    )
    return page_of(rows, page, _public)


@router.get("/dry-runs/{dry_run_id}")
async def get_dry_run(dry_run_id: str, p: ViewerDep, session: SessionDep) -> DryRunPublic:
    return _public(await dry_runs.get_dry_run(session, p.tenant_id, dry_run_id))
