"""The rollouts pages: ``/rollouts`` lists the organisation's staged rollouts (newest
first) with their wave progress; ``/rollouts/new`` (operators) is the form that previews
the waves a rollout would have (nothing stored) and creates it. Rollouts are created
through ``services.rollouts`` (same checks, roles and audit as the API), previewed through
``services.rollout_preview``; nothing is kept in the process. One rollout's page is
``rollouts_detail``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import Rack, Site
from wrale.fleet.brain.models.groups import Group
from wrale.fleet.brain.models.rollouts import STATES, RolloutWave
from wrale.fleet.brain.services import policies, rollouts
from wrale.fleet.brain.services.rollout_preview import Preview, preview_rollout
from wrale.fleet.sync.protocol import COMMAND_OPS
from wrale.shared.errors import InvalidRequestError, NotFoundError
from wrale.user.api.deps import StateDep
from wrale.user.ui.pages.rollouts_form import (
    BLANK,
    CHANGE_KINDS,
    FIELDS,
    ON_FAILURE,
    field_of,
    form_values,
    rollout_body,
)
from wrale.user.ui.web import OperatorDep, SessionDep, Viewer, ViewerDep, is_htmx, render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 100


def redirect(request: Request, location: str) -> Response:
    """After a change: htmx follows ``HX-Redirect``, a plain form the 303."""
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": location})
    return Response(status_code=303, headers={"Location": location})


def change_text(change: Mapping[str, Any]) -> str:
    """A change in a few words, e.g. ``command sim_load {"percent": 30}``."""
    kind = change.get("kind")
    if kind == "command":
        args = change.get("args") or {}
        shown = f" {json.dumps(args, sort_keys=True)}" if args else ""
        return f"command {change.get('op')}{shown}"
    if kind == "policy":
        values = json.dumps(change.get("values") or {}, sort_keys=True)
        return f"{change.get('policy_kind')} policy {values}"
    if kind == "template":
        return f"template {change.get('template_id')} v{change.get('version')}"
    return str(kind)


async def wave_progress(
    session: AsyncSession, rollout_ids: Sequence[str]
) -> dict[str, tuple[int, int]]:
    """rollout id → (waves passed, waves planned)."""
    if not rollout_ids:
        return {}
    rows = await session.execute(
        select(RolloutWave.rollout_id, RolloutWave.state, func.count())
        .where(RolloutWave.rollout_id.in_(list(rollout_ids)))
        .group_by(RolloutWave.rollout_id, RolloutWave.state)
    )
    out: dict[str, list[int]] = {}
    for rid, state, n in rows.all():
        got = out.setdefault(str(rid), [0, 0])
        got[1] += int(n)
        if state == "passed":
            got[0] += int(n)
    return {k: (v[0], v[1]) for k, v in out.items()}


@router.get("/rollouts")
async def rollout_list(
    request: Request, viewer: ViewerDep, session: SessionDep, state: str | None = None
) -> Response:
    """Every rollout, newest first (filtered by state)."""
    if state and state not in STATES:
        raise InvalidRequestError(f"state: one of {', '.join(STATES)}", field="state")
    rows = await rollouts.list_rollouts(session, viewer.tenant_id, state=state, limit=PAGE_SIZE)
    progress = await wave_progress(session, [r.id for r in rows])
    items = [
        {"r": r, "change": change_text(r.change), "progress": progress.get(r.id, (0, 0))}
        for r in rows
    ]
    ctx = {"rollout_items": items, "state": state or "", "states": STATES, "page_size": PAGE_SIZE}
    return render(request, "rollouts/index.html", ctx)


async def _choices(session: AsyncSession, tenant_id: str) -> dict[str, list[tuple[str, str]]]:
    """Sites, racks and dynamic groups a rollout may cover: [(id, name)] by name."""
    out: dict[str, list[tuple[str, str]]] = {}
    for key, model in (("sites", Site), ("racks", Rack)):
        rows = await session.execute(
            select(model.id, model.name).where(model.tenant_id == tenant_id).order_by(model.name)
        )
        out[key] = [(str(i), str(n)) for i, n in rows.all()]
    rows = await session.execute(
        select(Group.id, Group.name)
        .where(Group.tenant_id == tenant_id, Group.kind == "dynamic")
        .order_by(Group.name)
    )
    out["groups"] = [(str(i), str(n)) for i, n in rows.all()]
    return out


async def _group_selector(
    session: AsyncSession, tenant_id: str, group_id: str
) -> dict[str, Any] | None:
    if not group_id:
        return None
    g = await session.get(Group, group_id) if len(group_id) <= 64 else None
    if g is None or g.tenant_id != tenant_id:
        raise NotFoundError(f"no group {group_id[:40]}", group_id=group_id[:40])
    if g.kind != "dynamic" or not g.selector:
        raise InvalidRequestError("group_id: a dynamic group (a selector)", field="group_id")
    return dict(g.selector)


async def _form_ctx(
    session: AsyncSession,
    viewer: Viewer,
    values: Mapping[str, str] | None = None,
    *,
    errors: Mapping[str, str] | None = None,
    message: str = "",
    preview: Preview | None = None,
) -> dict[str, Any]:
    return {
        "rform": {
            "values": dict.fromkeys(FIELDS, "")
            | (BLANK if values is None else {})
            | dict(values or {}),
            "errors": dict(errors or {}),
            "message": message,
            "kinds": CHANGE_KINDS if viewer.is_admin else ("command",),
            "ops": sorted(COMMAND_OPS),
            "policy_kinds": sorted(policies.KINDS),
            "on_failure": ON_FAILURE,
            **await _choices(session, viewer.tenant_id),
        },
        "preview": preview,
    }


@router.get("/rollouts/new")
async def rollout_new(request: Request, viewer: OperatorDep, session: SessionDep) -> Response:
    """The form (operators; a policy change needs an admin, as policies do)."""
    return render(request, "rollouts/new.html", await _form_ctx(session, viewer))


async def _checked(
    request: Request, viewer: Viewer, session: SessionDep, state: StateDep, create: bool
) -> Response:
    values = form_values(await request.form())
    errors: dict[str, str] = {}
    preview: Preview | None = None
    try:
        group = await _group_selector(session, viewer.tenant_id, values["group_id"])
        body = rollout_body(values, group)
        if create:
            r = await rollouts.create_rollout(session, viewer.principal, body, bus=state.bus)
        else:
            preview = await preview_rollout(session, viewer.principal, body)
    except (InvalidRequestError, NotFoundError) as exc:
        errors[field_of(exc)] = exc.message
    else:
        if create:
            return redirect(request, f"/rollouts/{r.id}")
    await session.rollback()  # nothing of a refused form or a preview is kept
    if errors:
        message = errors.pop("form", "") or "Nothing was created: correct the field marked."
        ctx = await _form_ctx(session, viewer, values, errors=errors, message=message)
        status = 422
    else:
        ctx = await _form_ctx(session, viewer, values, preview=preview)
        status = 200
    template = "rollouts/_form.html" if is_htmx(request) else "rollouts/new.html"
    return render(request, template, ctx, status_code=status)


@router.post("/rollouts/preview")
async def rollout_preview(
    request: Request, viewer: OperatorDep, session: SessionDep, state: StateDep
) -> Response:
    """The waves the form's rollout would have, by rack; nothing is created."""
    return await _checked(request, viewer, session, state, create=False)


@router.post("/rollouts")
async def rollout_create(
    request: Request, viewer: OperatorDep, session: SessionDep, state: StateDep
) -> Response:
    return await _checked(request, viewer, session, state, create=True)
