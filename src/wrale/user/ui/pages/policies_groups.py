"""The dashboard's group pages (the reads, ``GET``): every group as a tree, a
dynamic selector's preview, a group's page and its members. The writes are routes of
``policies_group_actions``; the contexts are built in ``policies_group_sections``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from wrale.fleet.brain.services import groups as group_svc
from wrale.fleet.brain.services.device_list import selector_clause
from wrale.shared.errors import InvalidRequestError, NotFoundError
from wrale.user.ui.pages.policies_common import page_number
from wrale.user.ui.pages.policies_group_sections import (
    group_ctx,
    group_form,
    group_list_page,
    members_ctx,
)
from wrale.user.ui.pages.policies_scope import (
    count_devices,
    device_page,
    selector_error,
    selector_input,
)
from wrale.user.ui.web import SessionDep, ViewerDep, render

router = APIRouter(include_in_schema=False)


@router.get("/groups")
async def group_list(request: Request, viewer: ViewerDep, session: SessionDep) -> Response:
    """Every group as a tree with its members and policies; operators create groups here."""
    return await group_list_page(request, session, viewer)


@router.get("/groups/_preview")
async def selector_preview(request: Request, viewer: ViewerDep, session: SessionDep) -> Response:
    """How many devices a selector being typed matches (and a few of their names)."""
    q = request.query_params
    selector, _, errors = selector_input(q, q.getlist("status"))
    ctx: dict[str, Any] = {"count": None, "sample": [], "error": ""}
    if errors:
        ctx["error"] = next(iter(errors.values()))
    else:
        try:
            clean = await group_svc.validate_selector(session, viewer.tenant_id, selector)
        except (InvalidRequestError, NotFoundError) as exc:
            ctx["error"] = selector_error(exc)[1]
        else:
            clause = selector_clause(session, dict(clean))
            ctx["count"] = await count_devices(session, viewer.tenant_id, clause)
            ctx["sample"] = (await device_page(session, viewer.tenant_id, clause, 1))[:5]
    return render(request, "groups/_preview.html", ctx)


@router.get("/groups/{group_id}")
async def group_page(
    request: Request, viewer: ViewerDep, session: SessionDep, group_id: str, page: str = "1"
) -> Response:
    group = await group_svc.get_group(session, viewer.tenant_id, group_id)
    ctx = await group_ctx(session, viewer, group, page_number(page))
    if viewer.can_operate:
        ctx.update(await group_form(session, viewer, group=group))
    return render(request, "groups/detail.html", ctx)


@router.get("/groups/{group_id}/_members")
async def group_members(
    request: Request, viewer: ViewerDep, session: SessionDep, group_id: str, page: str = "1"
) -> Response:
    group = await group_svc.get_group(session, viewer.tenant_id, group_id)
    members = await members_ctx(session, viewer, group, page_number(page))
    return render(request, "groups/_members.html", {"members": members})
