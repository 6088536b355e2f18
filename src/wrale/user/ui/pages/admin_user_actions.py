"""The users page's writes (admins only): create a user, change a role, disable,
enable and delete, each through ``services.identity``; htmx gets the changed row back."""

from __future__ import annotations

import json
from dataclasses import replace
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from wrale.fleet.brain.models import User
from wrale.fleet.brain.services import identity
from wrale.fleet.brain.services.principal import Role
from wrale.shared.errors import ConflictError, InvalidRequestError
from wrale.user.api.schemas.identity import UserCreate
from wrale.user.ui.pages.admin import (
    ROLES,
    USER_FIELDS,
    USER_MESSAGES,
    UserForm,
    form_text,
    redirect,
    schema_errors,
    service_error,
    users_page,
    valid_id,
)
from wrale.user.ui.web import AdminDep, SessionDep, Viewer, is_htmx, render

router = APIRouter(include_in_schema=False)


@router.post("/admin/users")
async def user_create(request: Request, viewer: AdminDep, session: SessionDep) -> Response:
    """Create a user; a refused form comes back (422) with each error at its field."""
    f = UserForm.of_form(await request.form())
    body, errors = schema_errors(
        UserCreate,
        {"username": f.username, "password": f.password, "role": f.role},
        USER_MESSAGES,
    )
    if "password" not in errors:
        try:
            identity.check_password_strength(f.password)
        except InvalidRequestError as exc:
            errors["password"] = service_error(exc, USER_FIELDS)[1]
    form_error = None
    if not errors and isinstance(body, UserCreate):
        try:
            user = await identity.create_user(
                session, viewer.principal, body.username, body.password, body.role
            )
        except (InvalidRequestError, ConflictError) as exc:
            name, text = service_error(exc, USER_FIELDS)
            if name is None and "username" in text.lower():
                name = "username"
            if name:
                errors[name] = text
            else:
                form_error = text
        else:
            return redirect(request, f"/admin?created={quote(user.username)}")
    await session.rollback()
    if "password" in errors:
        f = replace(f, password="")  # a refused password is typed again, never echoed
    return await users_page(
        request,
        session,
        viewer,
        form=f,
        errors=errors,
        form_error=form_error or "The user was not created: correct the fields marked below.",
        status_code=422,
    )


async def _user_row(request: Request, viewer: Viewer, user: User) -> Response:
    ctx = {"u": identity.user_view(user), "roles": ROLES, "me": viewer.principal.actor_id}
    return render(request, "admin/_user_row.html", ctx)


async def _user_changed(request: Request, viewer: Viewer, user: User, notice: str) -> Response:
    if is_htmx(request):
        response = await _user_row(request, viewer, user)
        response.headers["HX-Trigger"] = json.dumps({"wrale-notice": notice})
        return response
    return Response(status_code=303, headers={"Location": "/admin"})


@router.post("/admin/users/{user_id}/role")
async def user_role(
    user_id: str, request: Request, viewer: AdminDep, session: SessionDep
) -> Response:
    form = await request.form()
    role = form_text(form, "role", 20)
    if role not in ROLES:
        raise InvalidRequestError("role: choose viewer, operator or admin")
    user = await identity.update_user(
        session, viewer.principal, valid_id(user_id, "user"), role=Role(role)
    )
    return await _user_changed(request, viewer, user, f"{user.username} is now {role}.")


@router.post("/admin/users/{user_id}/disable")
async def user_disable(
    user_id: str, request: Request, viewer: AdminDep, session: SessionDep
) -> Response:
    user = await identity.update_user(
        session, viewer.principal, valid_id(user_id, "user"), disabled=True
    )
    return await _user_changed(request, viewer, user, f"{user.username} is disabled.")


@router.post("/admin/users/{user_id}/enable")
async def user_enable(
    user_id: str, request: Request, viewer: AdminDep, session: SessionDep
) -> Response:
    user = await identity.update_user(
        session, viewer.principal, valid_id(user_id, "user"), disabled=False
    )
    return await _user_changed(request, viewer, user, f"{user.username} is enabled again.")


@router.post("/admin/users/{user_id}/delete")
async def user_delete(
    user_id: str, request: Request, viewer: AdminDep, session: SessionDep
) -> Response:
    user = await identity.get_user(session, viewer.tenant_id, valid_id(user_id, "user"))
    name = user.username
    await identity.delete_user(session, viewer.principal, user.id)
    if is_htmx(request):  # the row goes away
        return Response(
            status_code=200,
            headers={"HX-Trigger": json.dumps({"wrale-notice": f"User {name} deleted."})},
        )
    return Response(status_code=303, headers={"Location": f"/admin?deleted={quote(name)}"})
