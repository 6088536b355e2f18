"""The group pages' writes: create, edit and delete a group, add and remove a
static group's members, each through the brain's group service with the operator role.
Each change is announced (``group.changed``, once committed) so open group pages refresh.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.bus import publish_after_commit
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.services import groups as group_svc
from wrale.shared.errors import ConflictError, InvalidRequestError, NotFoundError
from wrale.user.ui.pages.policies_common import (
    form_str,
    names_of,
    page_number,
    redirect,
    resolve_device,
)
from wrale.user.ui.pages.policies_group_sections import (
    group_ctx,
    group_errors,
    group_form,
    group_input,
    group_list_page,
    members_answer,
    members_ctx,
)
from wrale.user.ui.web import OperatorDep, SessionDep, Viewer, is_htmx, render

router = APIRouter(include_in_schema=False)


def announce(request: Request, session: AsyncSession, viewer: Viewer, group_id: str) -> None:
    """Tell the tenant's open pages that a group changed, once this request commits."""
    bus = getattr(getattr(request.app.state, "wrale", None), "bus", None)
    data = {"group_id": group_id}
    publish_after_commit(session, bus, viewer.tenant_id, "group.changed", data)


@router.post("/groups")
async def group_create(request: Request, viewer: OperatorDep, session: SessionDep) -> Response:
    form = await request.form()
    fields, values, errors = group_input(form)
    if not errors:
        try:
            g = await group_svc.create_group(
                session,
                viewer.principal,
                fields["name"],
                kind=fields["kind"],
                selector=fields["selector"] if fields["kind"] == "dynamic" else None,
                parent_id=fields["parent_id"],
                description=fields["description"],
            )
        except (InvalidRequestError, NotFoundError, ConflictError) as exc:
            errors = group_errors(exc)
        else:
            announce(request, session, viewer, g.id)
            return redirect(request, f"/groups/{g.id}")
    await session.rollback()  # nothing of a refused form is kept
    message = errors.pop("form", "") or "The group was not created: correct the fields marked."
    if is_htmx(request):
        ctx = await group_form(session, viewer, values=values, errors=errors, message=message)
        return render(request, "groups/_form.html", ctx, status_code=422)
    return await group_list_page(
        request, session, viewer, values=values, errors=errors, message=message, status_code=422
    )


@router.post("/groups/{group_id}")
async def group_update(
    request: Request, viewer: OperatorDep, session: SessionDep, group_id: str
) -> Response:
    group = await group_svc.get_group(session, viewer.tenant_id, group_id)
    form = await request.form()
    fields, values, errors = group_input(form)
    values["kind"] = group.kind
    errors.pop("kind", None)
    if not errors:
        changes: dict[str, Any] = {
            "name": fields["name"],
            "description": fields["description"],
            "parent_id": fields["parent_id"],
        }
        if group.kind == "dynamic":
            changes["selector"] = fields["selector"]
        try:
            await group_svc.update_group(session, viewer.principal, group.id, changes)
        except (InvalidRequestError, NotFoundError, ConflictError) as exc:
            errors = group_errors(exc)
        else:
            announce(request, session, viewer, group.id)
            return redirect(request, f"/groups/{group.id}")
    await session.rollback()  # a half-applied change (a new name, then a bad parent) is undone
    group = await group_svc.get_group(session, viewer.tenant_id, group_id)
    message = errors.pop("form", "") or "The group was not saved: correct the fields marked."
    ctx = await group_form(
        session, viewer, group=group, values=values, errors=errors, message=message
    )
    if is_htmx(request):
        return render(request, "groups/_form.html", ctx, status_code=422)
    page = await group_ctx(session, viewer, group, 1)
    return render(request, "groups/detail.html", {**page, **ctx}, status_code=422)


@router.post("/groups/{group_id}/delete")
async def group_delete(
    request: Request, viewer: OperatorDep, session: SessionDep, group_id: str
) -> Response:
    await group_svc.delete_group(session, viewer.principal, group_id)
    announce(request, session, viewer, group_id)
    return redirect(request, "/groups")


@router.post("/groups/{group_id}/members")
async def member_add(
    request: Request, viewer: OperatorDep, session: SessionDep, group_id: str
) -> Response:
    """Add a device, named (or searched) in the form, to a static group."""
    group = await group_svc.get_group(session, viewer.tenant_id, group_id)
    form = await request.form()
    text = form_str(form, "device", 100)
    found, candidates = await resolve_device(session, viewer.tenant_id, text)
    error = notice = ""
    if found is None:
        if candidates:
            names = ", ".join(c["name"] for c in candidates[:5])
            error = f"{len(candidates)} devices match {text!r} ({names}…): pick one"
        else:
            error = f"no device named {text!r}" if text else "name the device to add"
    else:
        try:
            added = await group_svc.add_member(session, viewer.principal, group.id, found["id"])
        except (ConflictError, NotFoundError) as exc:
            error = exc.message
        else:
            announce(request, session, viewer, group.id)
            verb = "added to" if added else "was already in"
            notice = f"{found['name']} {verb} {group.name}."
    if error:
        await session.rollback()
        group = await group_svc.get_group(session, viewer.tenant_id, group_id)
    members = await members_ctx(session, viewer, group, 1)
    members.update(device=text if error else "", error=error, notice=notice)
    return await members_answer(request, members, 422 if error else 200)


@router.post("/groups/{group_id}/members/{device_id}/remove")
async def member_remove(
    request: Request,
    viewer: OperatorDep,
    session: SessionDep,
    group_id: str,
    device_id: str,
    page: str = "1",
) -> Response:
    group = await group_svc.get_group(session, viewer.tenant_id, group_id)
    names = await names_of(session, Device, viewer.tenant_id, [device_id])
    await group_svc.remove_member(session, viewer.principal, group.id, device_id)
    announce(request, session, viewer, group.id)
    await session.flush()
    members = await members_ctx(session, viewer, group, page_number(page))
    members["notice"] = f"{names.get(device_id, device_id)} removed from {group.name}."
    return await members_answer(request, members)
