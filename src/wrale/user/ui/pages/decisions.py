"""The decision log page (``/decisions``): what the brain's loops decided, newest first,
filtered by loop and subject (a job, placement, device or rack), each with its reasons and
the inputs it used; beside it the open recommendations, ranked, which operators accept or
dismiss (``services.recommendations``), and each loop's per-site pauses, which operators
switch (``services.decision_loops``, as ``PUT /api/v1/decisions/loops/{loop}``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import Device, Rack, Site
from wrale.fleet.brain.models.decisions import Decision
from wrale.fleet.brain.models.jobs import Job
from wrale.fleet.brain.services import decision_log, decision_loops, recommendations
from wrale.shared.errors import InvalidRequestError, NotFoundError
from wrale.user.api.deps import StateDep
from wrale.user.ui.web import OperatorDep, SessionDep, ViewerDep, is_htmx, render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
LOOP_RE = re.compile(r"^[a-z_]{1,32}$")
ID_RE = re.compile(r"^[0-9a-f]{32}$")
RANKED = 20  # open recommendations shown, highest score first
DECIDED_SHOWN = 5
KNOWN_LOOPS = tuple(dict.fromkeys((*decision_loops.LOOPS, "recommendations")))


def _filter(text: str | None, pattern: re.Pattern[str], what: str, hint: str) -> str | None:
    """A filter from the address bar: None when empty, 400 when malformed."""
    text = (text or "").strip()
    if not text:
        return None
    if not pattern.match(text):
        raise InvalidRequestError(f"{what}: {hint}", field=what)
    return text


def inputs_text(inputs: Any) -> str:
    """A decision's inputs as indented JSON (what the collapsible row shows)."""
    return json.dumps(inputs, indent=2, sort_keys=True, default=str)


async def subject_names(
    session: AsyncSession, tenant_id: str, decisions: Sequence[Decision]
) -> dict[str, str]:
    """id → name of the boards, racks and jobs the decisions name."""
    wanted: dict[str, set[str]] = {"device": set(), "rack": set(), "job": set()}
    for d in decisions:
        for role, sid in (d.subjects or {}).items():
            if role in wanted and isinstance(sid, str):
                wanted[role].add(sid)
    names: dict[str, str] = {}
    for role, model in (("device", Device), ("rack", Rack), ("job", Job)):
        ids = sorted(wanted[role])
        if ids:
            rows = await session.execute(
                select(model.id, model.name).where(model.tenant_id == tenant_id, model.id.in_(ids))
            )
            names |= {str(i): str(n) for i, n in rows.all()}
    return names


def decision_rows(decisions: Sequence[Decision], names: Mapping[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "d": d,
            "subjects": [
                {"role": role, "id": str(sid), "name": names.get(str(sid), str(sid)[:8] + "…")}
                for role, sid in sorted((d.subjects or {}).items())
            ],
            "reasons": [str(r) for r in (d.reasons or [])],
            "inputs": inputs_text(d.inputs or {}),
        }
        for d in decisions
    ]


async def _loops(session: AsyncSession, tenant_id: str) -> dict[str, Any]:
    """Each loop with where it is paused, and the sites an operator may pause it in."""
    pauses = await decision_loops.list_pauses(session, tenant_id)
    sites = list(
        (
            await session.execute(
                select(Site.id, Site.name).where(Site.tenant_id == tenant_id).order_by(Site.name)
            )
        ).all()
    )
    loops = []
    for entry in pauses:
        paused = {p["site_id"] for p in entry["paused"]}
        loops.append(
            {
                "loop": entry["loop"],
                "everywhere": None in paused,
                "sites": [
                    {"id": str(i), "name": str(n), "paused": str(i) in paused} for i, n in sites
                ],
                "paused": entry["paused"],
            }
        )
    return {"loops": loops}


async def _log(
    session: AsyncSession,
    tenant_id: str,
    loop: str | None,
    subject: str | None,
    before: str | None,
) -> dict[str, Any]:
    loop = _filter(loop, LOOP_RE, "loop", "lower-case letters and _, e.g. placement")
    subject = _filter(subject, ID_RE, "subject", "an id of 32 hex digits")
    before = _filter(before, ID_RE, "before", "an id of 32 hex digits")
    rows = await decision_log.list_decisions(
        session, tenant_id, before_id=before, limit=PAGE_SIZE + 1, loop=loop, subject=subject
    )
    more, rows = len(rows) > PAGE_SIZE, rows[:PAGE_SIZE]
    query = {k: v for k, v in (("loop", loop), ("subject", subject)) if v}
    older = urlencode(query | {"before": rows[-1].id}) if more and rows else None
    names = await subject_names(session, tenant_id, rows)
    return {
        "rows": decision_rows(rows, names),
        "loop_name": loop or "",  # not "loop": Jinja's for-loops own that name
        "subject": subject or "",
        "subject_name": names.get(subject or "", ""),
        "before": before or "",
        "older": f"/decisions?{older}" if older else None,
        "newest": "/decisions" + (f"?{urlencode(query)}" if query else ""),
        "rows_url": "/decisions/_rows" + (f"?{urlencode(query)}" if query else ""),
        "known_loops": KNOWN_LOOPS,
    }


@router.get("/decisions")
async def decisions_page(
    request: Request,
    viewer: ViewerDep,
    session: SessionDep,
    loop: str | None = None,
    subject: str | None = None,
    before: str | None = None,
) -> Response:
    ctx = await _log(session, viewer.tenant_id, loop, subject, before)
    ctx |= await _loops(session, viewer.tenant_id)
    ctx |= await _recommendations(session, viewer.tenant_id)
    return render(request, "decisions/index.html", ctx)


@router.get("/decisions/_rows")
async def decision_rows_fragment(
    request: Request,
    viewer: ViewerDep,
    session: SessionDep,
    loop: str | None = None,
    subject: str | None = None,
) -> Response:
    """The newest page of the log alone, for the periodic refresh."""
    ctx = await _log(session, viewer.tenant_id, loop, subject, None)
    return render(request, "decisions/_rows.html", ctx)


@router.post("/decisions/loops/{loop}")
async def loop_pause(
    request: Request, viewer: OperatorDep, session: SessionDep, loop: str
) -> Response:
    """Pause or resume a loop in one site (no ``site_id``: everywhere)."""
    form = await request.form()
    paused, site = form.get("paused"), form.get("site_id")
    if paused not in ("true", "false"):
        raise InvalidRequestError("paused: true or false", field="paused")
    site_id = site.strip() if isinstance(site, str) and site.strip() else None
    if site_id is not None and not ID_RE.match(site_id):
        raise InvalidRequestError("site_id: an id of 32 hex digits", field="site_id")
    await decision_loops.set_pause(session, viewer.principal, loop[:40], paused == "true", site_id)
    if is_htmx(request):
        ctx = await _loops(session, viewer.tenant_id)
        return render(request, "decisions/_loops.html", ctx)
    return Response(status_code=303, headers={"Location": "/decisions"})


# ----------------------------------------------------------------------------- recommendations


def action_text(action: Mapping[str, Any] | None, names: Mapping[str, str]) -> str:
    """What accepting a recommendation does, in words."""
    if not action:
        return "Accepting acknowledges it (nothing is changed automatically)."
    if action.get("kind") == "stop_jobs":
        ids = action.get("job_ids")
        ids = [str(i) for i in ids] if isinstance(ids, list) else []
        shown = ", ".join(names.get(i, i[:8]) for i in ids[:5]) + (" …" if len(ids) > 5 else "")
        return f"Accepting stops {len(ids)} job{'' if len(ids) == 1 else 's'}: {shown}."
    return f"Accepting asks for {str(action.get('kind'))[:40]}."


async def _recommendations(session: AsyncSession, tenant_id: str) -> dict[str, Any]:
    ranked = await recommendations.list_recommendations(
        session, tenant_id, limit=RANKED, order="score"
    )
    decided = [
        r
        for r in await recommendations.list_recommendations(
            session, tenant_id, state=None, limit=4 * DECIDED_SHOWN
        )
        if r.state in recommendations.DECIDED
    ][:DECIDED_SHOWN]
    job_ids = sorted(
        {
            str(i)
            for r in ranked
            if isinstance(r.action, dict) and isinstance(r.action.get("job_ids"), list)
            for i in r.action["job_ids"]
        }
    )
    names: dict[str, str] = {}
    if job_ids:
        rows = await session.execute(
            select(Job.id, Job.name).where(Job.tenant_id == tenant_id, Job.id.in_(job_ids))
        )
        names = {str(i): str(n) for i, n in rows.all()}
    return {
        "recs": [
            {
                "r": recommendations.recommendation_view(r),
                "evidence": inputs_text(r.evidence or {}),
                "does": action_text(r.action, names),
            }
            for r in ranked
        ],
        "decided": [recommendations.recommendation_view(r) for r in decided],
    }


@router.get("/decisions/_recommendations")
async def recommendations_fragment(
    request: Request, viewer: ViewerDep, session: SessionDep
) -> Response:
    ctx = await _recommendations(session, viewer.tenant_id)
    return render(request, "decisions/_recommendations.html", ctx)


@router.post("/decisions/recommendations/{rec_id}/{verb}")
async def recommendation_decide(
    request: Request,
    viewer: OperatorDep,
    session: SessionDep,
    state: StateDep,
    rec_id: str,
    verb: str,
) -> Response:
    """Accept (its action is performed) or dismiss (with an optional reason) one."""
    if verb == "accept":
        row = await recommendations.accept(session, viewer.principal, rec_id, bus=state.bus)
    elif verb == "dismiss":
        form = await request.form()
        reason = form.get("reason")
        row = await recommendations.dismiss(
            session,
            viewer.principal,
            rec_id,
            reason[:1000] if isinstance(reason, str) else None,
            bus=state.bus,
        )
    else:
        raise NotFoundError(f"no action {verb[:40]!r}: accept or dismiss")
    if not is_htmx(request):
        return Response(status_code=303, headers={"Location": "/decisions"})
    ctx = await _recommendations(session, viewer.tenant_id)
    notice = json.dumps({"wrale-notice": f"{row.title}: {row.result or row.state}"[:300]})
    return render(request, "decisions/_recommendations.html", ctx, headers={"HX-Trigger": notice})
