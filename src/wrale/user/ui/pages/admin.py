"""The dashboard's Administration pages (admins only): users and their roles (this module, with
the form helpers the admin and enrollment pages share; the users' writes are routes of
``admin_user_actions``), API tokens with the secret shown once (``admin_tokens``, writes in
``admin_token_actions``), and the audit log with filters (``admin_audit``). Every change goes
through ``services.identity``, which checks the role and writes the audit entry; reads are
paged."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from wrale.fleet.brain.models import User
from wrale.fleet.brain.services import identity
from wrale.fleet.brain.services.principal import Role
from wrale.shared.errors import NotFoundError
from wrale.user.ui.web import AdminDep, SessionDep, Viewer, is_htmx, page_number, render

router = APIRouter(include_in_schema=False)


USERS_PAGE_SIZE = 100
ROLES = tuple(r.value for r in Role)
ID_RE = re.compile(r"^[0-9a-f]{1,32}$")
_FIELD_PREFIX = re.compile(r"^(\w+): (.*)$", re.DOTALL)


# ----------------------------------------------------------------------------- form helpers


def form_text(form: FormData, name: str, max_len: int = 1000) -> str:
    """A posted text field, cut at ``max_len`` (a missing or file field is '')."""
    value = form.get(name)
    return value[:max_len] if isinstance(value, str) else ""


def redirect(request: Request, location: str) -> Response:
    """After a change: htmx follows ``HX-Redirect``, a plain form the 303."""
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": location})
    return Response(status_code=303, headers={"Location": location})


def schema_errors(
    model: type[BaseModel], data: Mapping[str, Any], messages: Mapping[str, str]
) -> tuple[Any, dict[str, str]]:
    """Check ``data`` with the API's own request schema: (the model or None, field errors).

    Each field's message is ``messages[field]`` when given (plain words), else pydantic's."""
    try:
        return model.model_validate(data), {}
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for err in exc.errors():
            name = str(err["loc"][0]) if err["loc"] else "form"
            errors.setdefault(name, messages.get(name, str(err["msg"])))
        return None, errors


def service_error(exc: Exception, fields: Sequence[str]) -> tuple[str | None, str]:
    """(form field or None, message) of a service error whose text may start "field: "."""
    message = str(getattr(exc, "message", exc))
    m = _FIELD_PREFIX.match(message)
    name = str(getattr(exc, "details", {}).get("field") or (m.group(1) if m else ""))
    text = m.group(2) if m and m.group(1) == name else message
    text = text[:1].upper() + text[1:]
    return (name if name in fields else None), text


def valid_id(value: str, what: str) -> str:
    """An id from a URL, or a 404 when it cannot be one (the database never sees junk)."""
    if not ID_RE.match(value):
        raise NotFoundError(f"no {what} {value[:40]}")
    return value


def until_text(at: float | None, now: float) -> str:
    """'in 5 h', 'in 3 d', 'never'; an instant in the past is '… ago'."""
    if at is None:
        return "never"
    s = at - now
    if s <= 0:
        s = -s
        suffix, prefix = " ago", ""
    else:
        suffix, prefix = "", "in "
    if s < 3600:
        text = f"{max(1, int(s // 60))} min"
    elif s < 86_400:
        text = f"{int(s // 3600)} h"
    else:
        text = f"{int(s // 86_400)} d"
    return f"{prefix}{text}{suffix}"


# ----------------------------------------------------------------------------- users


USER_FIELDS = ("username", "password", "role")
USER_MESSAGES = {
    "username": "Use 2 to 64 letters, digits or _ . @ - (no spaces).",
    "password": "Use 10 to 256 characters.",
    "role": "Choose viewer, operator or admin.",
}


@dataclass
class UserForm:
    username: str = ""
    password: str = ""
    role: str = Role.VIEWER.value

    @classmethod
    def of_form(cls, form: FormData) -> UserForm:
        return cls(
            username=form_text(form, "username", 200).strip(),
            password=form_text(form, "password", 300),
            role=form_text(form, "role", 20),
        )


async def _users_context(session: AsyncSession, viewer: Viewer, page: str | None) -> dict[str, Any]:
    tenant = viewer.tenant_id
    total = int(await session.scalar(select(func.count()).where(User.tenant_id == tenant)) or 0)
    pages = max(1, math.ceil(total / USERS_PAGE_SIZE))
    number = min(page_number(page), pages)
    users = await session.scalars(
        select(User)
        .where(User.tenant_id == tenant)
        .order_by(User.username)
        .limit(USERS_PAGE_SIZE)
        .offset((number - 1) * USERS_PAGE_SIZE)
    )
    return {
        "users": [identity.user_view(u) for u in users],
        "total": total,
        "page": number,
        "pages": pages,
        "roles": ROLES,
        "me": viewer.principal.actor_id,
    }


async def users_page(
    request: Request,
    session: AsyncSession,
    viewer: Viewer,
    *,
    form: UserForm | None = None,
    errors: dict[str, str] | None = None,
    form_error: str | None = None,
    notice: str | None = None,
    page: str | None = None,
    status_code: int = 200,
) -> Response:
    ctx = {
        "tab": "users",
        "form": form or UserForm(),
        "errors": errors or {},
        "form_error": form_error,
        "notice": notice,
        **await _users_context(session, viewer, page),
    }
    if is_htmx(request) and status_code == 422:
        return render(request, "admin/_user_form.html", ctx, status_code=status_code)
    return render(request, "admin/users.html", ctx, status_code=status_code)


def _user_notice(request: Request) -> str | None:
    q = request.query_params
    for key, text in (
        ("created", "User “{}” created."),
        ("deleted", "User “{}” deleted."),
    ):
        if q.get(key):
            return text.format(q[key][:64])
    return None


@router.get("/admin")
async def users(
    request: Request, viewer: AdminDep, session: SessionDep, page: str | None = None
) -> Response:
    return await users_page(request, session, viewer, notice=_user_notice(request), page=page)


@router.get("/admin/users")
async def users_alias(viewer: AdminDep) -> Response:
    return Response(status_code=307, headers={"Location": "/admin"})
