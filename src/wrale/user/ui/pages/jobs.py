"""The jobs pages: ``/jobs`` lists the organisation's jobs (newest first) with a form that
creates one (operators), ``/jobs/{id}`` shows a job's placements and each one's history,
refreshed by the live stream's ``job.placement`` events, with a link to its boards drawn on
the physical view. Jobs are created and stopped through ``services.jobs`` (same checks,
roles and audit as the API); nothing is kept in the process.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from wrale.fleet.brain.models import Device, Rack
from wrale.fleet.brain.models.jobs import Job, JobPlacement, PlacementTransition
from wrale.fleet.brain.services import jobs
from wrale.fleet.brain.services.job_state import ACTIVE, JOB_STATES
from wrale.shared.errors import InvalidRequestError, NotFoundError
from wrale.user.api.deps import StateDep
from wrale.user.ui.web import OperatorDep, SessionDep, Viewer, ViewerDep, is_htmx, render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 100
KINDS = ("sim_load", "process")
STRATEGIES = ("physical", "spread")
FIELDS = ("name", "kind", "cpu_pct", "argv", "replicas", "priority", "strategy")
MAX_FIELD = 4000
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _redirect(request: Request, location: str) -> Response:
    """After a change: htmx follows ``HX-Redirect``, a plain form the 303."""
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": location})
    return Response(status_code=303, headers={"Location": location})


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip()[:MAX_FIELD] if isinstance(value, str) else ""


def _int(text: str, low: int, high: int, what: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise InvalidRequestError(f"{what}: a whole number", field=what) from None
    if not low <= n <= high:
        raise InvalidRequestError(f"{what}: from {low} to {high}", field=what)
    return n


def form_values(form: FormData) -> dict[str, str]:
    """The create form's fields as typed (shown again when it is refused)."""
    return {k: _text(form, k) for k in FIELDS}


def job_body(v: Mapping[str, str]) -> dict[str, Any]:
    """The JSON body of ``POST /api/v1/jobs`` from the form's fields (pure);
    ``InvalidRequestError`` names the field that is wrong."""
    if v.get("kind") not in KINDS:
        raise InvalidRequestError("kind: sim_load or process", field="kind")
    if v.get("strategy") not in STRATEGIES:
        raise InvalidRequestError("strategy: physical or spread", field="strategy")
    workload: dict[str, Any]
    if v["kind"] == "sim_load":
        try:
            cpu = float(v.get("cpu_pct") or "")
        except ValueError:
            cpu = math.nan
        if not 0 <= cpu <= 100:  # NaN too
            raise InvalidRequestError("cpu_pct: a number from 0 to 100", field="cpu_pct")
        workload = {"kind": "sim_load", "cpu_pct": cpu}
    else:
        text = v.get("argv") or ""
        if CONTROL.search(text.replace("\n", " ").replace("\r", " ")):
            raise InvalidRequestError("argv: no control characters", field="argv")
        try:
            argv = shlex.split(text)
        except ValueError as exc:
            raise InvalidRequestError(f"argv: {exc}", field="argv") from None
        if not argv:
            raise InvalidRequestError("argv: the program and its arguments", field="argv")
        workload = {"kind": "process", "argv": argv}
    return {
        "name": v.get("name") or "",
        "workload": workload,
        "replicas": _int(v.get("replicas") or "", 1, 1000, "replicas"),
        "priority": _int(v.get("priority") or "", 0, 100, "priority"),
        "strategy": v["strategy"],
    }


def field_of(exc: InvalidRequestError | NotFoundError) -> str:
    """The form field an error of the job's checks is about ("form" when none)."""
    where = str(exc.details.get("field") or "")
    head = where.split(".", 1)[0]
    if head == "workload":
        return "argv" if "argv" in where else "cpu_pct" if "cpu_pct" in where else "kind"
    return head if head in FIELDS else "form"


def placed_count(placements: Sequence[JobPlacement]) -> int:
    return sum(1 for p in placements if p.state in ACTIVE)


def workload_text(workload: Mapping[str, Any]) -> str:
    if workload.get("kind") == "sim_load":
        return f"sim_load {workload.get('cpu_pct')} % CPU"
    argv = workload.get("argv")
    return shlex.join(str(a) for a in argv) if isinstance(argv, list) else "?"


def _form(viewer: Viewer, values: Mapping[str, str] | None = None, **more: Any) -> dict[str, Any]:
    blank = {"kind": "sim_load", "cpu_pct": "40", "replicas": "1", "priority": "50"}
    blank["strategy"] = "physical"
    return {
        "jform": {
            "values": dict.fromkeys(FIELDS, "") | blank | dict(values or {}),
            "errors": more.get("errors", {}),
            "message": more.get("message", ""),
            "kinds": KINDS,
            "strategies": STRATEGIES,
        },
        "can_create": viewer.can_operate,
    }


async def _list_page(
    request: Request,
    session: AsyncSession,
    viewer: Viewer,
    state: str | None,
    *,
    status_code: int = 200,
    **form: Any,
) -> Response:
    if state and state not in JOB_STATES:
        raise InvalidRequestError(f"state: one of {', '.join(JOB_STATES)}", field="state")
    stmt = select(Job).where(Job.tenant_id == viewer.tenant_id)
    if state:
        stmt = stmt.where(Job.state == state)
    rows = list((await session.scalars(stmt.order_by(Job.id.desc()).limit(PAGE_SIZE))).all())
    placed = await jobs.placements_of(session, [j.id for j in rows])
    items = [
        {"job": j, "placed": placed_count(placed[j.id]), "workload": workload_text(j.workload)}
        for j in rows
    ]
    ctx = {"job_items": items, "state": state or "", "states": JOB_STATES, "page_size": PAGE_SIZE}
    ctx |= _form(viewer, form.pop("values", None), **form)
    return render(request, "jobs/index.html", ctx, status_code=status_code)


@router.get("/jobs")
async def job_list(
    request: Request, viewer: ViewerDep, session: SessionDep, state: str | None = None
) -> Response:
    """Every job, newest first (filtered by state); operators create jobs here."""
    return await _list_page(request, session, viewer, state)


@router.post("/jobs")
async def job_create(
    request: Request, viewer: OperatorDep, session: SessionDep, state: StateDep
) -> Response:
    values = form_values(await request.form())
    errors: dict[str, str] = {}
    try:
        body = job_body(values)
        job = await jobs.create_job(session, viewer.principal, body, bus=state.bus)
    except (InvalidRequestError, NotFoundError) as exc:
        errors[field_of(exc)] = exc.message
    else:
        return _redirect(request, f"/jobs/{job.id}")
    await session.rollback()  # nothing of a refused form is kept
    message = errors.pop("form", "") or "The job was not created: correct the field marked."
    if is_htmx(request):
        ctx = _form(viewer, values, errors=errors, message=message)
        return render(request, "jobs/_form.html", ctx, status_code=422)
    return await _list_page(
        request,
        session,
        viewer,
        None,
        values=values,
        errors=errors,
        message=message,
        status_code=422,
    )


async def _names(
    session: AsyncSession, tenant_id: str, device_ids: set[str]
) -> dict[str, tuple[str, str | None, str | None]]:
    """device id → (board name, rack id, rack name)."""
    if not device_ids:
        return {}
    rows = await session.execute(
        select(Device.id, Device.name, Device.rack_id, Rack.name)
        .outerjoin(Rack, Rack.id == Device.rack_id)
        .where(Device.tenant_id == tenant_id, Device.id.in_(sorted(device_ids)))
    )
    return {str(i): (str(n), r, rn) for i, n, r, rn in rows.all()}


def placement_rows(
    placements: Sequence[JobPlacement],
    history: Sequence[PlacementTransition],
    names: Mapping[str, tuple[str, str | None, str | None]],
) -> list[dict[str, Any]]:
    """One row per replica: its board (or the last board it was on), state, reason and
    since when, with its transitions newest first."""
    by_placement: dict[str, list[PlacementTransition]] = {}
    for t in history:
        by_placement.setdefault(t.placement_id, []).append(t)
    rows = []
    for p in placements:
        steps = by_placement.get(p.id, [])
        board = p.device_id or next((t.device_id for t in reversed(steps) if t.device_id), None)
        name, rack_id, rack_name = names.get(board or "", (board or "", None, None))
        rows.append(
            {
                "p": p,
                "board_id": board,
                "board": name,
                "on_board": p.device_id is not None,
                "rack_id": rack_id,
                "rack": rack_name,
                "steps": [
                    {"t": t, "board": names.get(t.device_id or "", (t.device_id or "—",))[0]}
                    for t in reversed(steps)
                ],
            }
        )
    return rows


async def _detail(session: AsyncSession, tenant_id: str, job_id: str) -> dict[str, Any]:
    job = await jobs.get_job(session, tenant_id, job_id)
    placements = (await jobs.placements_of(session, [job.id]))[job.id]
    history = await jobs.transitions(session, tenant_id, job.id)
    boards = {p.device_id for p in placements if p.device_id}
    boards |= {t.device_id for t in history if t.device_id}
    names = await _names(session, tenant_id, boards)
    return {
        "job": job,
        "workload": workload_text(job.workload),
        "placed": placed_count(placements),
        "rows": placement_rows(placements, history, names),
        "stoppable": job.stopped_at is None and job.state not in ("succeeded", "failed"),
    }


@router.get("/jobs/{job_id}")
async def job_page(
    request: Request, viewer: ViewerDep, session: SessionDep, job_id: str
) -> Response:
    ctx = await _detail(session, viewer.tenant_id, job_id)
    return render(request, "jobs/detail.html", ctx)


@router.get("/jobs/{job_id}/_placements")
async def job_placements(
    request: Request, viewer: ViewerDep, session: SessionDep, job_id: str
) -> Response:
    """The job's state and placements alone, for the live refresh."""
    ctx = await _detail(session, viewer.tenant_id, job_id)
    return render(request, "jobs/_placements.html", ctx)


@router.post("/jobs/{job_id}/stop")
async def job_stop(
    request: Request, viewer: OperatorDep, session: SessionDep, state: StateDep, job_id: str
) -> Response:
    await jobs.stop_job(session, viewer.principal, job_id, bus=state.bus)
    return _redirect(request, f"/jobs/{job_id}")
