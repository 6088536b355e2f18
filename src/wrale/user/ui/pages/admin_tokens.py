"""The API tokens page (admins only, the reads): the tokens with their state, paged, and
the form of a new token. The writes are routes of ``admin_token_actions``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from wrale.fleet.brain.models import ApiToken, User
from wrale.fleet.brain.models.base import now as wall_now
from wrale.fleet.brain.services import identity
from wrale.fleet.brain.services.principal import Role
from wrale.user.ui.pages.admin import ROLES, form_text
from wrale.user.ui.web import AdminDep, SessionDep, Viewer, central_url, page_number, render

router = APIRouter(include_in_schema=False)


TOKENS_PAGE_SIZE = 50
TOKEN_EXPIRY: tuple[tuple[str, str], ...] = (
    ("", "Never"),
    ("86400", "1 day"),
    ("604800", "7 days"),
    ("2592000", "30 days"),
    ("7776000", "90 days"),
    ("31536000", "365 days"),
)
DEFAULT_TOKEN_EXPIRY = "7776000"  # noqa: S105 - seconds (90 days), not a secret


# ----------------------------------------------------------------------------- API tokens


TOKEN_FIELDS = ("name", "role", "expires_in_s")
TOKEN_MESSAGES = {
    "name": "Give the token a name of 1 to 100 characters.",
    "role": "Choose viewer, operator or admin.",
    "expires_in_s": "Choose one of the expiry times offered.",
}


@dataclass
class TokenForm:
    name: str = ""
    role: str = Role.VIEWER.value
    expires_in_s: str = DEFAULT_TOKEN_EXPIRY

    @classmethod
    def of_form(cls, form: FormData) -> TokenForm:
        return cls(
            name=form_text(form, "name", 200).strip(),
            role=form_text(form, "role", 20),
            expires_in_s=form_text(form, "expires_in_s", 20),
        )


def api_token_state(t: Mapping[str, Any], at: float) -> str:
    """active | expired | revoked."""
    if t["revoked_at"] is not None:
        return "revoked"
    if t["expires_at"] is not None and t["expires_at"] <= at:
        return "expired"
    return "active"


def token_row(t: ApiToken, creator: str | None, at: float) -> dict[str, Any]:
    view = identity.token_view(t)
    return {**view, "state": api_token_state(view, at), "creator": creator}


async def tokens_context(session: AsyncSession, viewer: Viewer, page: str | None) -> dict[str, Any]:
    tenant = viewer.tenant_id
    total = int(await session.scalar(select(func.count()).where(ApiToken.tenant_id == tenant)) or 0)
    pages = max(1, math.ceil(total / TOKENS_PAGE_SIZE))
    number = min(page_number(page), pages)
    rows = await session.execute(
        select(ApiToken, User.username)
        .outerjoin(User, User.id == ApiToken.user_id)
        .where(ApiToken.tenant_id == tenant)
        .order_by(ApiToken.id.desc())
        .limit(TOKENS_PAGE_SIZE)
        .offset((number - 1) * TOKENS_PAGE_SIZE)
    )
    at = wall_now()
    return {
        "tokens": [token_row(t, name, at) for t, name in rows.all()],
        "total": total,
        "page": number,
        "pages": pages,
    }


def token_form_context(
    request: Request,
    f: TokenForm,
    *,
    errors: dict[str, str] | None = None,
    form_error: str | None = None,
    created: dict[str, Any] | None = None,
) -> dict[str, Any]:
    base = central_url(request)
    return {
        "form": f,
        "errors": errors or {},
        "form_error": form_error,
        "created": created,
        "roles": ROLES,
        "expiry_choices": TOKEN_EXPIRY,
        "api_url": f"{base}/api/v1",
    }


@router.get("/admin/tokens")
async def tokens(
    request: Request, viewer: AdminDep, session: SessionDep, page: str | None = None
) -> Response:
    ctx = {
        "tab": "tokens",
        **token_form_context(request, TokenForm()),
        **await tokens_context(session, viewer, page),
    }
    return render(request, "admin/tokens.html", ctx)


@router.get("/admin/tokens/_table")
async def tokens_table(
    request: Request, viewer: AdminDep, session: SessionDep, page: str | None = None
) -> Response:
    return render(request, "admin/_tokens.html", await tokens_context(session, viewer, page))
