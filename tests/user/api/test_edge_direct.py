"""``routes.edge.Direct``: the device channel's socket reaches its handler without passing
through the app's middlewares and router (their frames would live as long as the socket);
everything else goes the usual way."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import pytest
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from tests.conftest import Central
from wrale.user.api.routes import edge as edge_routes

PATH = "/api/v1/edge/ws"


async def _nothing() -> MutableMapping[str, Any]:
    return {}


async def _drop(_message: MutableMapping[str, Any]) -> None:
    return None


@pytest.mark.parametrize(
    ("kind", "path", "direct"),
    [
        ("websocket", PATH, True),
        ("websocket", "/api/v1/ws", False),  # the dashboard's live stream: the usual way
        ("http", PATH, False),
        ("websocket", PATH + "/", False),
    ],
)
async def test_only_the_device_socket_goes_direct(
    kind: str, path: str, direct: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []

    async def handler(ws: WebSocket) -> None:
        seen.append(f"edge {ws.url.path}")

    async def app(scope: Scope, _receive: Receive, _send: Send) -> None:
        seen.append(f"app {scope['path']}")

    monkeypatch.setattr(edge_routes, "edge", handler)
    scope = {"type": kind, "path": path, "headers": [], "query_string": b""}
    await edge_routes.Direct(app, PATH)(scope, _nothing, _drop)
    assert seen == [f"edge {path}" if direct else f"app {path}"]


async def test_direct_is_the_outermost_of_the_apps_middlewares(central: Central) -> None:
    first = central.app.user_middleware[0]
    assert first.cls is edge_routes.Direct
    assert first.kwargs == {"path": PATH}
