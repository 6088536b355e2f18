"""``/ui/events``: the dashboard's live stream as server-sent events, and ``/ui/nav-count``
(the alert counter in the navigation).

The browser's EventSource reconnects by itself after a server restart (``retry:`` below).
A page showing one device asks for that device's live readings (``?device=``); every page
hears alerts, status changes, device events, twins and commands of its tenant. The stream
ends when the session's access token would expire, so reconnecting checks the session again.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, StreamingResponse

from wrale.fleet.brain.bus import BusEvent
from wrale.user.ui.web import SessionDep, ViewerDep, nav_alert_count, set_cookie

router = APIRouter(include_in_schema=False)

RETRY_MS = 2000  # the browser reconnects this long after the stream ends
KEEPALIVE_S = 15.0
# kinds every page hears; device.live and telemetry.summary only for the device asked for
BROADCAST = ("alert.", "device.status", "device.event", "device.enrolled", "twin.", "command.")
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


@router.get("/ui/events")
async def events(
    request: Request,
    viewer: ViewerDep,
    device: Annotated[str | None, Query(max_length=64)] = None,
) -> StreamingResponse:
    state = request.app.state.wrale
    ends_at = time.monotonic() + max(30.0, state.auth.access_ttl_s - 5)

    async def stream() -> AsyncIterator[bytes]:
        async with state.bus.subscribe(viewer.tenant_id) as queue:
            yield f"retry: {RETRY_MS}\n".encode() + frame("hello", {"at": time.time()})
            while time.monotonic() < ends_at:
                if await request.is_disconnected():
                    return
                try:
                    ev = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield b": keepalive\n\n"
                    continue
                if wanted(ev, device):
                    yield frame(ev.kind, ev.data)

    response = StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
    for name, (value, max_age) in viewer.set_cookies.items():
        set_cookie(response, request, name, value, max_age)
    return response
