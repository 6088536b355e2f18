"""The Enrollment page's writes: create a token (its secret and the board's command shown
in that answer only) and revoke one, through ``services.enrollment``, which checks roles and
writes the audit trail; a refused form comes back with every value kept."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import Response

from wrale.fleet.brain.models.base import now as wall_now
from wrale.fleet.brain.services import enrollment
from wrale.shared.errors import ConflictError, InvalidRequestError, NotFoundError
from wrale.user.ui.pages.admin import service_error, valid_id
from wrale.user.ui.pages.enrollment import enroll_command, example_command, recent_devices
from wrale.user.ui.pages.enrollment_tokens import (
    FIELDS,
    TokenForm,
    check_form,
    form_context,
    group_labels,
    rack_labels,
    token_row,
    token_rows,
    tokens_context,
)
from wrale.user.ui.web import AdminDep, SessionDep, central_url, is_htmx, render

router = APIRouter(include_in_schema=False)


@router.post("/enrollment/tokens")
async def token_create(request: Request, viewer: AdminDep, session: SessionDep) -> Response:
    """Create a token: its secret and the board's command are in this answer only."""
    f = TokenForm.of_form(await request.form())
    body, errors = check_form(f)
    form_error = None
    created = None
    if body is not None:
        try:
            token, secret = await enrollment.create_token(
                session,
                viewer.principal,
                body.name,
                max_uses=body.max_uses,
                expires_in_s=body.expires_in_s,
                target_group_id=body.target_group_id,
                target_tags=body.target_tags,
                target_rack_id=body.target_rack_id,
            )
        except (InvalidRequestError, ConflictError, NotFoundError) as exc:
            name, text = service_error(exc, FIELDS)
            if name:
                errors[name] = text
            else:
                form_error = text
        else:
            racks = await rack_labels(session, viewer.tenant_id, [token.target_rack_id])
            groups = await group_labels(session, viewer.tenant_id, [token.target_group_id])
            created = {
                **token_row(token, racks, groups, wall_now()),
                "secret": secret,
                "command": enroll_command(central_url(request), secret),
            }
    status = 200
    if created is None:
        await session.rollback()  # nothing of a refused form is kept
        form_error = form_error or "The token was not created: correct the fields marked below."
        status = 422
    ctx = await form_context(
        request,
        session,
        viewer,
        TokenForm() if created else f,
        errors=errors,
        form_error=form_error,
        created=created,
    )
    if is_htmx(request):
        headers = {"HX-Trigger": "enrollment-tokens-changed"} if created else None
        return render(request, "enrollment/_create.html", ctx, status_code=status, headers=headers)
    ctx.update(
        central_url=central_url(request),
        example_command=example_command(central_url(request)),
        devices=await recent_devices(session, viewer.tenant_id),
        since=wall_now(),
    )
    ctx.update(await tokens_context(session, viewer, None, None))
    return render(request, "enrollment/index.html", ctx, status_code=status)


@router.post("/enrollment/tokens/{token_id}/revoke")
async def token_revoke(
    token_id: str, request: Request, viewer: AdminDep, session: SessionDep
) -> Response:
    """Revoke a token: boards not yet enrolled with it are refused; enrolled ones stay."""
    token = await enrollment.revoke_token(
        session, viewer.principal, valid_id(token_id, "enrollment token")
    )
    if not is_htmx(request):
        return Response(status_code=303, headers={"Location": "/enrollment?show=all"})
    rows = await token_rows(session, viewer.tenant_id, [token])
    return render(
        request,
        "enrollment/_token_row.html",
        {"t": rows[0]},
        headers={"HX-Trigger": json.dumps({"wrale-notice": f"Token {token.name} revoked."})},
    )
