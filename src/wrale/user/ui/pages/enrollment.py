"""The dashboard's Enrollment page: admins create enrollment tokens (the secret shown once,
with the exact ``wrale enroll`` command to run on a board), list and revoke them; everyone
watches newly enrolled devices appear live. Changes go through ``services.enrollment``."""

from __future__ import annotations

import json
import math
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from wrale.fleet.brain.models import Device, EnrollmentToken, Rack, Room, Site
from wrale.fleet.brain.models.base import now as wall_now
from wrale.fleet.brain.models.groups import Group
from wrale.fleet.brain.services import enrollment
from wrale.fleet.sync.transport.base import is_loopback
from wrale.shared.errors import ConflictError, InvalidRequestError, NotFoundError
from wrale.user.api.schemas.registry import EnrollmentTokenCreate
from wrale.user.ui.pages.admin import (
    form_text,
    schema_errors,
    service_error,
    until_text,
    valid_id,
)
from wrale.user.ui.web import (
    AdminDep,
    SessionDep,
    Viewer,
    ViewerDep,
    central_url,
    is_htmx,
    render,
)

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
RECENT_DEVICES = 15
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


def enroll_command(central_url: str, secret: str) -> str:
    """The shell command a board runs to enroll with this server (the real CLI's flags).

    Plain ``http://`` to another machine needs ``--insecure`` (``wrale enroll`` refuses it
    otherwise: the board's credential would travel in clear text)."""
    args = ["wrale", "enroll", "--central", central_url, "--token", secret]
    parts = urlsplit(central_url)
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        args.append("--insecure")
    return shlex.join(args)


def example_command(central: str) -> str:
    """The command with a placeholder where the token goes (for people without one)."""
    return enroll_command(central, "TOKEN").replace(" TOKEN", " <token>")


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


async def _rack_labels(
    session: AsyncSession, tenant_id: str, ids: Iterable[str | None]
) -> dict[str, str]:
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    rows = await session.execute(_rack_stmt(tenant_id).where(Rack.id.in_(wanted)))
    return {i: f"{site} / {room} / {rack}" for i, site, room, rack in rows.all()}


async def _group_labels(
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


async def _token_rows(
    session: AsyncSession, tenant_id: str, tokens: list[EnrollmentToken]
) -> list[dict[str, Any]]:
    racks = await _rack_labels(session, tenant_id, (t.target_rack_id for t in tokens))
    groups = await _group_labels(session, tenant_id, (t.target_group_id for t in tokens))
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


async def _tokens_context(
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
        "tokens": await _token_rows(session, tenant, tokens),
        "show": show_,
        "total": total,
        "page": number,
        "pages": pages,
    }


# ----------------------------------------------------------------------------- new devices


async def recent_devices(
    session: AsyncSession, tenant_id: str, limit: int = RECENT_DEVICES
) -> list[dict[str, Any]]:
    """The newest devices (time-ordered ids: newest first), with their rack's name."""
    rows = await session.execute(
        select(Device, Rack.name)
        .outerjoin(Rack, Rack.id == Device.rack_id)
        .where(Device.tenant_id == tenant_id)
        .order_by(Device.id.desc())
        .limit(limit)
    )
    return [
        {
            "id": d.id,
            "name": d.name,
            "status": d.status,
            "model": d.model,
            "tags": list(d.tags or []),
            "rack": rack,
            "slot_u": d.slot_u,
            "created_at": d.created_at,
            "last_seen_at": d.last_seen_at,
        }
        for d, rack in rows.all()
    ]


def _since(text: str | None) -> float:
    try:
        value = float(text or 0)
    except ValueError:
        return 0.0
    return value if math.isfinite(value) and value > 0 else 0.0


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


async def _form_context(
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


# ----------------------------------------------------------------------------- routes


@router.get("/enrollment")
async def enrollment_page(
    request: Request,
    viewer: ViewerDep,
    session: SessionDep,
    show: str | None = None,
    page: str | None = None,
) -> Response:
    """Tokens (admins) and the devices that enrolled last (everyone), live."""
    loaded_at = wall_now()
    ctx: dict[str, Any] = {
        "central_url": central_url(request),
        "example_command": example_command(central_url(request)),
        "devices": await recent_devices(session, viewer.tenant_id),
        "since": loaded_at,
    }
    if viewer.is_admin:
        ctx.update(await _form_context(request, session, viewer, TokenForm()))
        ctx.update(await _tokens_context(session, viewer, show, page))
    return render(request, "enrollment/index.html", ctx)


@router.get("/enrollment/_devices")
async def devices_fragment(
    request: Request, viewer: ViewerDep, session: SessionDep, since: str | None = None
) -> Response:
    """The recently enrolled devices; those newer than ``since`` are marked new."""
    ctx = {"devices": await recent_devices(session, viewer.tenant_id), "since": _since(since)}
    return render(request, "enrollment/_devices.html", ctx)


@router.get("/enrollment/_tokens")
async def tokens_fragment(
    request: Request,
    viewer: AdminDep,
    session: SessionDep,
    show: str | None = None,
    page: str | None = None,
) -> Response:
    ctx = await _tokens_context(session, viewer, show, page)
    return render(request, "enrollment/_tokens.html", ctx)


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
            racks = await _rack_labels(session, viewer.tenant_id, [token.target_rack_id])
            groups = await _group_labels(session, viewer.tenant_id, [token.target_group_id])
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
    ctx = await _form_context(
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
    ctx.update(await _tokens_context(session, viewer, None, None))
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
    rows = await _token_rows(session, viewer.tenant_id, [token])
    return render(
        request,
        "enrollment/_token_row.html",
        {"t": rows[0]},
        headers={"HX-Trigger": json.dumps({"wrale-notice": f"Token {token.name} revoked."})},
    )
