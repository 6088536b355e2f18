"""The dashboard's Enrollment page: admins create enrollment tokens (the secret shown once,
with the exact ``wrale enroll`` command to run on a board), list and revoke them; everyone
watches newly enrolled devices appear live. Token list and form: ``enrollment_tokens``;
creating and revoking: ``enrollment_token_actions``."""

from __future__ import annotations

import math
import shlex
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wrale.fleet.brain.models import Device, Rack
from wrale.fleet.brain.models.base import now as wall_now
from wrale.fleet.sync.transport.base import is_loopback
from wrale.user.ui.pages.enrollment_tokens import TokenForm, form_context, tokens_context
from wrale.user.ui.web import AdminDep, SessionDep, ViewerDep, central_url, render

router = APIRouter(include_in_schema=False)

RECENT_DEVICES = 15


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
        ctx.update(await form_context(request, session, viewer, TokenForm()))
        ctx.update(await tokens_context(session, viewer, show, page))
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
    ctx = await tokens_context(session, viewer, show, page)
    return render(request, "enrollment/_tokens.html", ctx)
