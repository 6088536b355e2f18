"""The API tokens page's writes (admins only): create a token (its secret shown
once) and revoke one, through ``services.identity``."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select

from wrale.fleet.brain.models import User
from wrale.fleet.brain.models.base import now as wall_now
from wrale.fleet.brain.services import identity
from wrale.shared.errors import ConflictError, InvalidRequestError
from wrale.user.api.schemas.identity import ApiTokenCreate
from wrale.user.ui.pages.admin import schema_errors, service_error, valid_id
from wrale.user.ui.pages.admin_tokens import (
    TOKEN_EXPIRY,
    TOKEN_FIELDS,
    TOKEN_MESSAGES,
    TokenForm,
    token_form_context,
    token_row,
    tokens_context,
)
from wrale.user.ui.web import AdminDep, SessionDep, is_htmx, render

router = APIRouter(include_in_schema=False)


@router.post("/admin/tokens")
async def token_create(request: Request, viewer: AdminDep, session: SessionDep) -> Response:
    """Create an API token: its secret is in this answer only (stored hashed)."""
    f = TokenForm.of_form(await request.form())
    errors: dict[str, str] = {}
    if f.expires_in_s not in dict(TOKEN_EXPIRY):
        errors["expires_in_s"] = TOKEN_MESSAGES["expires_in_s"]
    data = {
        "name": f.name,
        "role": f.role,
        "expires_in_s": float(f.expires_in_s) if f.expires_in_s and not errors else None,
    }
    body, more = schema_errors(ApiTokenCreate, data, TOKEN_MESSAGES)
    errors = more | errors
    form_error = None
    created = None
    if not errors and isinstance(body, ApiTokenCreate):
        try:
            token, secret = await identity.create_api_token(
                session, viewer.principal, body.name, body.role, body.expires_in_s
            )
        except (InvalidRequestError, ConflictError) as exc:
            name, text = service_error(exc, TOKEN_FIELDS)
            if name is None and "rights" in text:
                name = "role"
            if name:
                errors[name] = text
            else:
                form_error = text
        else:
            created = {**token_row(token, viewer.principal.name, wall_now()), "secret": secret}
    status = 200
    if created is None:
        await session.rollback()
        form_error = form_error or "The token was not created: correct the fields marked below."
        status = 422
    ctx = {
        "tab": "tokens",
        **token_form_context(
            request,
            TokenForm() if created else f,
            errors=errors,
            form_error=form_error,
            created=created,
        ),
    }
    if is_htmx(request):
        headers = {"HX-Trigger": "admin-tokens-changed"} if created else None
        return render(request, "admin/_token_form.html", ctx, status_code=status, headers=headers)
    ctx.update(await tokens_context(session, viewer, None))
    return render(request, "admin/tokens.html", ctx, status_code=status)


@router.post("/admin/tokens/{token_id}/revoke")
async def token_revoke(
    token_id: str, request: Request, viewer: AdminDep, session: SessionDep
) -> Response:
    token = await identity.revoke_api_token(
        session, viewer.principal, valid_id(token_id, "API token")
    )
    if not is_htmx(request):
        return Response(status_code=303, headers={"Location": "/admin/tokens"})
    creator = await session.scalar(select(User.username).where(User.id == token.user_id))
    return render(
        request,
        "admin/_token_row.html",
        {"t": token_row(token, creator, wall_now())},
        headers={"HX-Trigger": json.dumps({"wrale-notice": f"Token {token.name} revoked."})},
    )
