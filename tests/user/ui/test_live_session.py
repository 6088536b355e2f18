"""The live stream (/ui/events) re-checks its session: a user disabled or signed out while
a page is open gets a ``session.ended`` frame and the stream ends, and a stream opened
with the cookies of a session that was signed out ends at once (reconnects are checked).

The app is driven as the browser's EventSource would, through its ASGI interface, so each
frame is seen as it is sent (httpx's test transport waits for the whole body)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from tests.conftest import Central
from tests.user.ui.conftest import Browser, SignIn

GUARD_S = 60.0  # only so that a broken stream fails the test instead of hanging it


@dataclass
class Stream:
    sent: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    buffer: str = ""
    ended: bool = False

    async def frame(self) -> dict[str, Any] | None:
        """The next ``data:`` frame, or None when the response is over."""
        while "\n\n" not in self.buffer:
            if self.ended:
                return None
            msg = await asyncio.wait_for(self.sent.get(), GUARD_S)
            if msg["type"] == "http.response.body":
                self.buffer += msg.get("body", b"").decode()
                self.ended = not msg.get("more_body", False)
        block, _, self.buffer = self.buffer.partition("\n\n")
        data = [line[6:] for line in block.splitlines() if line.startswith("data: ")]
        if not data:  # a keepalive comment
            return await self.frame()
        parsed: dict[str, Any] = json.loads(data[0])
        return parsed


@asynccontextmanager
async def live(central: Central, browser: Browser) -> AsyncIterator[Stream]:
    cookies = "; ".join(f"{k}={v}" for k, v in browser.http.cookies.items())
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/ui/events",
        "raw_path": b"/ui/events",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"central"), (b"cookie", cookies.encode())],
        "client": ("127.0.0.1", 40000),
        "server": ("central", 80),
    }
    gone = asyncio.Event()
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    stream = Stream()
    task = asyncio.create_task(central.app(scope, receive, stream.sent.put))
    try:
        yield stream
    finally:
        gone.set()
        await asyncio.wait_for(task, GUARD_S)


def recheck_every_frame(central: Central) -> Any:
    state = central.app.state.wrale
    state.settings = state.settings.model_copy(update={"ui_session_recheck_s": 0.0})
    return state


async def _tenant_of(central: Central, username: str) -> tuple[str, str]:
    from wrale.fleet.brain.models import User

    async with central.db.session() as s:
        user = await s.scalar(select(User).where(User.username == username))
        assert user is not None
        return user.id, user.tenant_id


async def test_a_disabled_user_s_stream_ends_and_the_page_is_told(
    central: Central, ui_as: SignIn
) -> None:
    state = recheck_every_frame(central)
    viewer = await ui_as("viewer")
    name = (await viewer.page("/")).text.split('<span class="user">')[1].split(" ")[0]
    user_id, tenant_id = await _tenant_of(central, name)
    async with live(central, viewer) as stream:
        first = await stream.frame()
        assert first is not None
        assert first["kind"] == "hello"
        state.bus.publish(tenant_id, "device.status", {"device_id": "a" * 32})
        second = await stream.frame()
        assert second is not None
        assert second["kind"] == "device.status"  # still alive: events flow
        r = await central.http.patch(
            f"/api/v1/users/{user_id}", json={"disabled": True}, headers=central.admin
        )
        assert r.status_code == 200, r.text
        state.bus.publish(tenant_id, "device.status", {"device_id": "b" * 32})
        third = await stream.frame()
        assert third is not None
        assert third["kind"] == "session.ended"  # not the event: the check comes first
        assert await stream.frame() is None  # and the response is over
    assert stream.ended


async def test_a_signed_out_session_s_stream_ends(central: Central, admin_ui: Browser) -> None:
    state = recheck_every_frame(central)
    _, tenant_id = await _tenant_of(central, "admin")
    kept = dict(admin_ui.http.cookies.items())
    async with live(central, admin_ui) as stream:
        first = await stream.frame()
        assert first is not None
        assert first["kind"] == "hello"
        r = await admin_ui.http.post("/logout", data={"csrf": admin_ui.csrf})
        assert r.status_code == 303
        state.bus.publish(tenant_id, "device.status", {"device_id": "a" * 32})
        ended = await stream.frame()
        assert ended is not None
        assert ended["kind"] == "session.ended"
    # reconnecting with the old cookies (the access token has not expired yet): ends at once
    for k, v in kept.items():
        admin_ui.http.cookies.set(k, v)
    async with live(central, admin_ui) as again:
        hello = await again.frame()
        assert hello is not None
        assert hello["kind"] == "hello"
        ended = await again.frame()
        assert ended is not None
        assert ended["kind"] == "session.ended"


async def test_a_live_session_s_stream_stays_open(central: Central, admin_ui: Browser) -> None:
    state = recheck_every_frame(central)
    _, tenant_id = await _tenant_of(central, "admin")
    async with live(central, admin_ui) as stream:
        assert (await stream.frame() or {}).get("kind") == "hello"
        for n in range(3):
            state.bus.publish(tenant_id, "alert.raised", {"n": n})
            got = await stream.frame()
            assert got == {"kind": "alert.raised", "data": {"n": n}}
