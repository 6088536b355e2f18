"""The policy pages' writes: create, edit (a new version) and delete a policy, each
through the brain's policy service with the admin role.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from wrale.fleet.brain.services import policies
from wrale.fleet.brain.services.registry import is_id
from wrale.shared.errors import ConflictError, InvalidRequestError, NotFoundError
from wrale.user.api.deps import StateDep
from wrale.user.ui.pages.policies_common import (
    checked_kind,
    form_str,
    policy_form,
    policy_page_ctx,
    redirect,
    resolve_device,
)
from wrale.user.ui.pages.policies_fields import KIND_TITLES, KINDS, SCOPE_TITLES, parse_document
from wrale.user.ui.web import AdminDep, SessionDep, is_htmx, render

router = APIRouter(include_in_schema=False)


@router.post("/policies")
async def policy_create(
    request: Request, viewer: AdminDep, session: SessionDep, state: StateDep
) -> Response:
    """Create a policy (the REST route's service call, twins refreshed by it)."""
    form = await request.form()
    kind = checked_kind(form_str(form, "kind"))
    scope_type = form_str(form, "scope_type") or "fleet"
    group_id, device = form_str(form, "group_id", 32), form_str(form, "device", 100)
    document, errors, values = parse_document(kind, form)
    scope_id: str | None = None
    if scope_type == "group":
        scope_id = group_id if is_id(group_id) else None
        if not scope_id:
            errors["scope"] = "pick the group the policy is for"
    elif scope_type == "device":
        found, candidates = await resolve_device(session, viewer.tenant_id, device)
        if found is not None:
            scope_id = found["id"]
        elif candidates:
            names = ", ".join(c["name"] for c in candidates[:5])
            errors["scope"] = f"{len(candidates)} devices match {device!r} ({names}…): pick one"
        else:
            errors["scope"] = f"no device named {device!r}" if device else "name the device"
    elif scope_type != "fleet":
        errors["scope"] = "a policy is for the fleet, a group or a device"
    message, existing = "", None
    if not errors:
        try:
            pol = await policies.create_policy(
                session, viewer.principal, scope_type, scope_id, kind, document, state.bus
            )
        except ConflictError as exc:
            message, existing = exc.message, exc.details.get("policy_id")
        except (InvalidRequestError, NotFoundError) as exc:
            errors["scope"] = exc.message.removeprefix("scope_id: ")
        else:
            return redirect(request, f"/policies/{pol.id}")
    await session.rollback()  # nothing of a refused form is kept
    ctx = await policy_form(
        session,
        viewer,
        kind,
        values=values,
        errors=errors,
        message=message or "The policy was not saved: correct the fields marked below.",
        existing_id=existing,
        scope_type=scope_type if scope_type in SCOPE_TITLES else "fleet",
        group_id=group_id,
        device=device,
    )
    if is_htmx(request):
        return render(request, "policies/_form.html", ctx, status_code=422)
    return render(
        request,
        "policies/new.html",
        {**ctx, "kinds": KINDS, "kind_titles": KIND_TITLES, "scope_id": scope_id or ""},
        status_code=422,
    )


@router.post("/policies/{policy_id}")
async def policy_update(
    request: Request, viewer: AdminDep, session: SessionDep, state: StateDep, policy_id: str
) -> Response:
    """Save the edited document as the next version (stale edits are kept and explained)."""
    form = await request.form()
    pol = await policies.get_policy(session, viewer.tenant_id, policy_id)
    kind = pol.kind
    document, errors, values = parse_document(kind, form)
    try:
        expected: int | None = int(form_str(form, "expected_version", 12))
    except ValueError:
        expected = None
    message = ""
    if not errors:
        try:
            await policies.update_policy(
                session, viewer.principal, pol.id, document, expected, state.bus
            )
        except ConflictError as exc:
            message = (
                f"Not saved: someone changed this policy while you edited it ({exc.message}). "
                "Your values are still below; compare them with the current version and save "
                "again to replace it."
            )
        except InvalidRequestError as exc:
            message = exc.message
        else:
            return redirect(request, f"/policies/{pol.id}")
    await session.rollback()  # nothing of a refused form is kept
    pol = await policies.get_policy(session, viewer.tenant_id, policy_id)
    ctx = await policy_form(
        session,
        viewer,
        kind,
        policy=pol,
        values=values,
        errors=errors,
        message=message or "The policy was not saved: correct the fields marked below.",
        expected_version=pol.version,
    )
    if is_htmx(request):
        return render(request, "policies/_form.html", ctx, status_code=422)
    page = await policy_page_ctx(session, viewer, pol, 1)
    return render(request, "policies/detail.html", {**page, **ctx}, status_code=422)


@router.post("/policies/{policy_id}/delete")
async def policy_delete(
    request: Request, viewer: AdminDep, session: SessionDep, state: StateDep, policy_id: str
) -> Response:
    await policies.delete_policy(session, viewer.principal, policy_id, state.bus)
    return redirect(request, "/policies")
