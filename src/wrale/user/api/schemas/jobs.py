"""Schemas of jobs (``docs/jobs.md``): the job as created (the brain's own strict
``JobSpec``: the API and the service check one and the same thing), the job with its
placements, a placement's history, the decision log and the loops' pauses."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from wrale.fleet.brain.services.job_spec import JobSpec
from wrale.user.api.schemas.common import Strict

JobState = Literal["pending", "running", "succeeded", "failed", "stopped"]
PlacementState = Literal[
    "pending", "starting", "running", "moving", "succeeded", "failed", "stopped"
]


class JobCreate(JobSpec):
    """A job: ``workload`` is ``{"kind": "process", "argv": [...], "env": {...}}`` or
    ``{"kind": "sim_load", "cpu_pct": N}``. Unknown fields are refused and nothing is
    coerced."""


class PlacementPublic(BaseModel):
    id: str
    job_id: str
    replica: int
    device_id: str | None = Field(description="the board it is on (null while pending)")
    state: PlacementState
    reason: str | None = Field(description="why it is in this state (or still waiting)")
    cpu_quota_pct: float | None = Field(description="CPU share the brain allows (100 = a core)")
    started_at: float | None
    ended_at: float | None
    exit_code: int | None
    cpu_s: float | None
    output_tail: str | None
    created_at: float
    updated_at: float


class JobPublic(BaseModel):
    id: str
    name: str
    state: JobState
    workload: dict[str, Any]
    replicas: int
    priority: int
    strategy: Literal["physical", "spread"]
    duration_s: float | None
    restartable: bool
    selector: dict[str, Any]
    max_per_rack: int | None
    cpu_pct: float
    watts: float
    allow_battery: bool
    created_by: str | None
    created_at: float
    updated_at: float
    stopped_at: float | None = Field(description="when a stop was asked (null: not asked)")
    placements: list[PlacementPublic]


class TransitionPublic(BaseModel):
    id: str
    placement_id: str
    device_id: str | None
    from_state: str | None
    to_state: str
    reason: str | None
    at: float
    actor: str = Field(description="brain, device, or the user who asked")


class DecisionPublic(BaseModel):
    id: str
    at: float
    loop: str = Field(description="placement, capping, balancing …")
    action: str
    subjects: dict[str, str] = Field(description="role → id (job, device, rack …)")
    summary: str
    reasons: list[Any]
    inputs: dict[str, Any]


DecisionLoop = Literal["placement", "capping", "balancing", "recommendations"]


class LoopPauseUpdate(Strict):
    paused: bool
    site_id: str | None = Field(
        default=None, pattern=r"^[0-9A-Za-z]{1,32}$", description="null: every site"
    )


class LoopPausePublic(BaseModel):
    loop: DecisionLoop
    site_id: str | None = Field(description="null: every site")
    paused: bool


class PauseEntry(BaseModel):
    loop: DecisionLoop
    site_id: str | None
    paused_by: str | None
    paused_at: float


class LoopPublic(BaseModel):
    loop: DecisionLoop
    paused: list[PauseEntry] = Field(description="where it is paused (empty: running)")
