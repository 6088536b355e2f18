"""The Enrollment page's token parts: the token list (usable or all, paged) with each
token's rack and group named, the create form checked with the API's own schema, and the
group and rack choices it offers. Reads only; the writes are ``enrollment_token_actions``."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from wrale.fleet.brain.models import EnrollmentToken, Rack, Room, Site
from wrale.fleet.brain.models.base import now as wall_now
from wrale.fleet.brain.models.groups import Group
from wrale.fleet.brain.services import enrollment
from wrale.user.api.schemas.registry import EnrollmentTokenCreate
from wrale.user.ui.pages.admin import form_text, schema_errors, until_text
from wrale.user.ui.web import Viewer, central_url

PAGE_SIZE = 50
OPTIONS_MAX = 500
SHOWS = ("usable", "all")
EXPIRY: tuple[tuple[str, str], ...] = (
    ("3600", "1 hour"),
    ("86400", "24 hours"),
    ("604800", "7 days"),
    ("2592000", "30 days"),
    ("31536000", "365 days"),
    ("", "Never"),
)
DEFAULT_EXPIRY = "86400"
STATE_LABELS = {"active": "active", "expired": "expired", "used_up": "spent", "revoked": "revoked"}
FIELDS = ("name", "max_uses", "expires_in_s", "target_group_id", "target_rack_id", "target_tags")
MESSAGES = {
    "name": "Give the token a name of 1 to 100 characters.",
    "max_uses": "Between 1 and 1,000,000 uses, or empty for unlimited.",
    "expires_in_s": "Choose one of the expiry times offered.",
    "target_group_id": "Choose a group from the list.",
    "target_rack_id": "Choose a rack from the list.",
    "target_tags": "Tags are 1 to 64 letters, digits or _ . : = / @ + - each, at most 50.",
}


# ----------------------------------------------------------------------------- options


async def _group_options(session: AsyncSession, tenant_id: str) -> list[tuple[str, str]]:
    """Static groups only: a dynamic group's selector decides its members."""
    rows = await session.execute(
        select(Group.id, Group.name)
        .where(Group.tenant_id == tenant_id, Group.kind == "static")
        .order_by(Group.name)
        .limit(OPTIONS_MAX)
    )
    return [(i, n) for i, n in rows.all()]


def _rack_stmt(tenant_id: str) -> Any:
    return (
        select(Rack.id, Site.name, Room.name, Rack.name)
        .join(Room, Room.id == Rack.room_id)
        .join(Site, Site.id == Room.site_id)
        .where(Rack.tenant_id == tenant_id)
    )


async def _rack_options(session: AsyncSession, tenant_id: str) -> list[tuple[str, str]]:
    rows = await session.execute(
        _rack_stmt(tenant_id).order_by(Site.name, Room.name, Rack.name).limit(OPTIONS_MAX)
    )
    return [(i, f"{site} / {room} / {rack}") for i, site, room, rack in rows.all()]


async def rack_labels(
    session: AsyncSession, tenant_id: str, ids: Iterable[str | None]
) -> dict[str, str]:
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    rows = await session.execute(_rack_stmt(tenant_id).where(Rack.id.in_(wanted)))
    return {i: f"{site} / {room} / {rack}" for i, site, room, rack in rows.all()}


async def group_labels(
    session: AsyncSession, tenant_id: str, ids: Iterable[str | None]
) -> dict[str, str]:
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    rows = await session.execute(
        select(Group.id, Group.name).where(Group.tenant_id == tenant_id, Group.id.in_(wanted))
    )
    return dict(rows.tuples().all())


# ----------------------------------------------------------------------------- token list


def _usable(at: float) -> ColumnElement[bool]:
    return (
        EnrollmentToken.revoked.is_(False)
        & or_(EnrollmentToken.expires_at.is_(None), EnrollmentToken.expires_at > at)
        & or_(EnrollmentToken.max_uses.is_(None), EnrollmentToken.uses < EnrollmentToken.max_uses)
    )


async def token_rows(
    session: AsyncSession, tenant_id: str, tokens: list[EnrollmentToken]
) -> list[dict[str, Any]]:
    racks = await rack_labels(session, tenant_id, (t.target_rack_id for t in tokens))
    groups = await group_labels(session, tenant_id, (t.target_group_id for t in tokens))
    at = wall_now()
    return [token_row(t, racks, groups, at) for t in tokens]


def token_row(
    t: EnrollmentToken, racks: dict[str, str], groups: dict[str, str], at: float
) -> dict[str, Any]:
    view = enrollment.token_view(t)
    return {
        **view,
        "state_label": STATE_LABELS.get(view["state"], view["state"]),
        "rack_label": racks.get(t.target_rack_id or "", t.target_rack_id),
        "group_label": groups.get(t.target_group_id or "", t.target_group_id),
        "expires_text": until_text(t.expires_at, at),
    }


async def tokens_context(
    session: AsyncSession, viewer: Viewer, show: str | None, page: str | None
) -> dict[str, Any]:
    tenant = viewer.tenant_id
    show_ = show if show in SHOWS else "usable"
    where: list[ColumnElement[bool]] = [EnrollmentToken.tenant_id == tenant]
    if show_ == "usable":
        where.append(_usable(wall_now()))
    total = int(await session.scalar(select(func.count()).where(*where)) or 0)
    pages = max(1, math.ceil(total / PAGE_SIZE))
    try:
        number = min(max(1, int(page or 1)), pages)
    except ValueError:
        number = 1
    tokens = list(
        await session.scalars(
            select(EnrollmentToken)
            .where(*where)
            .order_by(EnrollmentToken.id.desc())
            .limit(PAGE_SIZE)
            .offset((number - 1) * PAGE_SIZE)
        )
    )
    return {
        "tokens": await token_rows(session, tenant, tokens),
        "show": show_,
        "total": total,
        "page": number,
        "pages": pages,
    }


# ----------------------------------------------------------------------------- the form


@dataclass
class TokenForm:
    """The create form as typed (every value kept when it is refused)."""

    name: str = ""
    max_uses: str = "1"
    expires_in_s: str = DEFAULT_EXPIRY
    target_group_id: str = ""
    target_rack_id: str = ""
    target_tags: str = ""

    @classmethod
    def of_form(cls, form: FormData) -> TokenForm:
        return cls(
            name=form_text(form, "name", 200).strip(),
            max_uses=form_text(form, "max_uses", 20).strip(),
            expires_in_s=form_text(form, "expires_in_s", 20),
            target_group_id=form_text(form, "target_group_id", 40),
            target_rack_id=form_text(form, "target_rack_id", 40),
            target_tags=form_text(form, "target_tags", 4000),
        )

    def tags(self) -> list[str]:
        return [t for t in re.split(r"[\s,]+", self.target_tags) if t]


def check_form(f: TokenForm) -> tuple[EnrollmentTokenCreate | None, dict[str, str]]:
    """The request the form makes, checked with the API's own schema; errors per field."""
    errors: dict[str, str] = {}
    max_uses: int | None = None
    if f.max_uses:
        try:
            max_uses = int(f.max_uses)
        except ValueError:
            errors["max_uses"] = MESSAGES["max_uses"]
    if f.expires_in_s not in dict(EXPIRY):
        errors["expires_in_s"] = MESSAGES["expires_in_s"]
    data = {
        "name": f.name,
        "max_uses": max_uses,
        "expires_in_s": float(f.expires_in_s) if f.expires_in_s and not errors else None,
        "target_group_id": f.target_group_id or None,
        "target_tags": f.tags(),
        "target_rack_id": f.target_rack_id or None,
    }
    body, more = schema_errors(EnrollmentTokenCreate, data, MESSAGES)
    errors = more | errors
    return (body if not errors else None), errors


async def form_context(
    request: Request,
    session: AsyncSession,
    viewer: Viewer,
    f: TokenForm,
    *,
    errors: dict[str, str] | None = None,
    form_error: str | None = None,
    created: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "form": f,
        "errors": errors or {},
        "form_error": form_error,
        "created": created,
        "expiry_choices": EXPIRY,
        "groups": await _group_options(session, viewer.tenant_id),
        "racks": await _rack_options(session, viewer.tenant_id),
        "central_url": central_url(request),
    }
