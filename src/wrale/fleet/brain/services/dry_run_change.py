"""A dry-run's change (``docs/dry-run.md``), checked strictly, the change as the digital
copy is given it (resolved against the organisation), and ``DryRunner``, the small
interface through which the brain reaches the digital copy. The brain never imports the
simulator: the entry point wires an implementation (``wrale.user.simfleet.digital_copy``).
Pure: any input is a change or an ``InvalidRequestError`` naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from wrale.fleet.brain.decisions.view import FleetView
from wrale.fleet.brain.decisions.view import JobSpec as JobView
from wrale.fleet.brain.services import job_spec
from wrale.shared.errors import InvalidRequestError

MIN_MINUTES, MAX_MINUTES = 1, 60
MAX_RACK_BUDGET_W = 1_000_000.0
KINDS = ("job", "stop_job", "rack_budget")
DRY_RUN_JOB_ID = "dry-run-job"  # the new job's id in the copy (it has none yet)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class StopJobBody(_Strict):
    kind: Literal["stop_job"]
    job: Annotated[str, StringConstraints(pattern=job_spec.ID)] = Field(
        description="the id of a job of the organisation that is not stopped"
    )


class RackBudgetBody(_Strict):
    kind: Literal["rack_budget"]
    rack: Annotated[str, StringConstraints(pattern=job_spec.SELECTOR_ID)]
    watts: Annotated[float, Field(gt=0, le=MAX_RACK_BUDGET_W, allow_inf_nan=False)]


@dataclass(frozen=True, slots=True)
class JobBody:
    """``{"kind": "job", ...}``: the rest is a job as ``POST /api/v1/jobs`` takes it."""

    spec: job_spec.JobSpec


ChangeBody = JobBody | StopJobBody | RackBudgetBody


def parse_change(body: Any) -> ChangeBody:
    """The change ``body`` asks for; ``InvalidRequestError`` names the first wrong field."""
    if not isinstance(body, Mapping):
        raise InvalidRequestError("change: a change is a JSON object", field="change")
    kind = body.get("kind")
    if kind not in KINDS:
        shown = json.dumps(kind)[:40] if isinstance(kind, str | int | float | None) else "?"
        raise InvalidRequestError(
            f"change.kind: must be one of {', '.join(KINDS)} (got {shown})", field="change.kind"
        )
    if kind == "job":
        try:
            spec = job_spec.parse({k: v for k, v in body.items() if k != "kind"})
        except InvalidRequestError as exc:
            inner = str(exc.details.get("field") or "")
            where = f"change.{inner}" if inner else "change"
            raise InvalidRequestError(f"change.{exc.message}", field=where) from None
        return JobBody(spec)
    model = StopJobBody if kind == "stop_job" else RackBudgetBody
    try:
        text = json.dumps(dict(body), allow_nan=False)
        return model.model_validate_json(text)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ValidationError):
            err = exc.errors()[0]
            where = ".".join(str(p)[:64] for p in err.get("loc", ()))[:200]
            msg = str(err.get("msg", "invalid"))
            field = f"change.{where}" if where else "change"
            raise InvalidRequestError(f"{field}: {msg}", field=field) from None
        raise InvalidRequestError(f"change: not a JSON document: {exc}", field="change") from None


def check_minutes(minutes: Any) -> int:
    if isinstance(minutes, bool) or not isinstance(minutes, int):
        raise InvalidRequestError("minutes: must be a whole number", field="minutes")
    if not MIN_MINUTES <= minutes <= MAX_MINUTES:
        raise InvalidRequestError(
            f"minutes: must be from {MIN_MINUTES} to {MAX_MINUTES}", field="minutes"
        )
    return minutes


def body_of(change: ChangeBody) -> dict[str, Any]:
    """The change as stored and shown (a job's defaults filled in)."""
    if isinstance(change, JobBody):
        return {"kind": "job", **change.spec.model_dump(mode="json", exclude_none=True)}
    return change.model_dump(mode="json")


# ------------------------------------------------------------------ what the copy is given


@dataclass(frozen=True, slots=True)
class AddJob:
    """Place a new job (its selector resolved to the boards it may run on)."""

    job: JobView
    name: str


@dataclass(frozen=True, slots=True)
class StopJob:
    job_id: str


@dataclass(frozen=True, slots=True)
class SetRackBudget:
    rack_id: str
    watts: float
    name: str | None = None  # what operators call it (the summary says it)


Change = AddJob | StopJob | SetRackBudget


class DryRunner(Protocol):
    """Runs the digital copy: ``view`` is the fleet now (its jobs' ``replicas`` are their
    active placements), ``change`` what to try, for ``minutes`` simulated minutes, with and
    without the change. Blocking and CPU-bound: the brain calls it in a worker thread, one
    at a time per process. Returns a JSON-able result (``docs/dry-run.md``); raises
    ``ValueError`` with a message for an operator when it cannot run this one (a fleet too
    large for the minutes asked, a change naming nothing in the view)."""

    def __call__(self, view: FleetView, change: Change, minutes: int) -> dict[str, Any]: ...
