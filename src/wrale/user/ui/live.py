"""``/ui/events``: the dashboard's live stream as server-sent events, and ``/ui/nav-count``
(the alert counter in the navigation).

The browser's EventSource reconnects by itself after a server restart (``retry:`` below).
A page showing one device asks for that device's live readings (``?device=``); every page
hears alerts, status changes, device events, twins, commands, jobs and group changes of its
tenant. The stream checks its session again every ``ui_session_recheck_s`` and when it
opens (user disabled or deleted, signed out, password or role changed): a dead session gets
a ``session.ended`` frame, and the page goes to the sign-in page. It also ends when its
access token expires, so reconnecting checks the session again.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated

import jwt
from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, StreamingResponse
from sqlalchemy import select

from wrale.fleet.brain.bus import BusEvent
from wrale.fleet.brain.models.identity import RefreshToken
from wrale.fleet.brain.services import identity
from wrale.shared.errors import AuthError
from wrale.user.api.deps import AppState
from wrale.user.ui.web import (
    ACCESS_COOKIE,
    REFRESH_COOKIE,
    SessionDep,
    ViewerDep,
    nav_alert_count,
    set_cookie,
)

router = APIRouter(include_in_schema=False)

RETRY_MS = 2000  # the browser reconnects this long after the stream ends
KEEPALIVE_S = 15.0
# kinds every page hears; device.live and telemetry.summary only for the device asked for
BROADCAST = (
    "alert.",
    "device.status",
    "device.event",
    "device.enrolled",
    "device.location",  # a board placed or moved: the physical view redraws
    "twin.",
    "command.",
    "job.",  # job.updated, job.placement: the jobs pages and the physical view's job marks
    "group.",  # group.changed: the group pages
)
PER_DEVICE = ("device.live", "telemetry.summary")


@router.get("/ui/nav-count")
async def nav_count(viewer: ViewerDep, session: SessionDep) -> PlainTextResponse:
    n = await nav_alert_count(session, viewer.tenant_id)
    return PlainTextResponse(str(n), headers={"Cache-Control": "no-store"})


def wanted(ev: BusEvent, device_id: str | None) -> bool:
    if ev.kind.startswith(BROADCAST):
        return True
    return device_id is not None and ev.kind in PER_DEVICE and ev.data.get("device_id") == device_id


def frame(kind: str, data: object) -> bytes:
    return f"data: {json.dumps({'kind': kind, 'data': data}, default=str)}\n\n".encode()


async def session_alive(state: AppState, access: str, refresh: str | None) -> bool:
    """Whether the browser session behind a stream still stands: its access token still
    authenticates (user enabled, same role and password, tenant active) and its refresh
    token was not revoked by a sign-out. A stream ends before its access token expires,
    so the refresh token cannot have been spent by a renewal meanwhile."""
    async with state.db.session() as session:
        try:
            await identity.authenticate(session, access, state.auth)
        except AuthError:
            return False
        if refresh is None:
            return True
        row = await session.scalar(
            select(RefreshToken).where(RefreshToken.token_hash == identity.sha256(refresh))
        )
        return row is not None and not row.revoked and row.expires_at > time.time()


def expires_in(access: str, state: AppState) -> float:
    """Seconds left on an access token (its own ``exp``), at least 1."""
    try:
        exp = jwt.decode(access, options={"verify_signature": False}).get("exp")
    except jwt.PyJWTError:
        exp = None
    left = float(exp) - time.time() if isinstance(exp, int | float) else state.auth.access_ttl_s
    return max(1.0, left - 5)


@router.get("/ui/events")
async def events(
    request: Request,
    viewer: ViewerDep,
    device: Annotated[str | None, Query(max_length=64)] = None,
) -> StreamingResponse:
    state: AppState = request.app.state.wrale
    renewed = viewer.set_cookies
    access = renewed[ACCESS_COOKIE][0] if ACCESS_COOKIE in renewed else ""
    access = access or request.cookies.get(ACCESS_COOKIE, "")
    refresh = renewed[REFRESH_COOKIE][0] if REFRESH_COOKIE in renewed else None
    refresh = refresh or request.cookies.get(REFRESH_COOKIE)
    recheck_s = state.settings.ui_session_recheck_s
    ends_at = time.monotonic() + expires_in(access, state)

    async def stream() -> AsyncIterator[bytes]:
        async with state.bus.subscribe(viewer.tenant_id) as queue:
            yield f"retry: {RETRY_MS}\n".encode() + frame("hello", {"at": time.time()})
            check_at = time.monotonic()  # at once: a reconnect is checked too
            sent_at = time.monotonic()
            ev: BusEvent | None = None
            while time.monotonic() < ends_at:
                if await request.is_disconnected():
                    return
                if time.monotonic() >= check_at:  # before the next frame goes out
                    if not await session_alive(state, access, refresh):
                        yield frame("session.ended", {"reason": "sign in again"})
                        return
                    check_at = time.monotonic() + recheck_s
                if ev is not None and wanted(ev, device):
                    sent_at = time.monotonic()
                    yield frame(ev.kind, ev.data)
                ev = None
                wait = min(KEEPALIVE_S, ends_at - time.monotonic())
                if recheck_s > 0:
                    wait = min(wait, check_at - time.monotonic())
                try:
                    ev = await asyncio.wait_for(queue.get(), max(wait, 0.05))
                except TimeoutError:
                    if time.monotonic() - sent_at >= KEEPALIVE_S:
                        sent_at = time.monotonic()
                        yield b": keepalive\n\n"

    response = StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
    for name, (value, max_age) in viewer.set_cookies.items():
        set_cookie(response, request, name, value, max_age)
    return response
