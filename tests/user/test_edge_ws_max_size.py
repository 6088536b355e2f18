"""``wrale central`` as a real process caps every WebSocket message at the protocol's frame
size (uvicorn's ``ws_max_size``): a bigger message closes that socket with 1009."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.user.test_central_process import CentralProcess, clean_env
from wrale.fleet.sync.protocol import MAX_FRAME_BYTES, Hello, Welcome, decode, encode

pytestmark = pytest.mark.slow


async def _oversized(url: str, device_id: str, secret: str) -> int | None:
    headers = {"X-Wrale-Device": device_id, "Authorization": f"Bearer {secret}"}
    async with connect(url, additional_headers=headers, max_size=None) as ws:
        await ws.send(encode(Hello(device_id=device_id, agent_version="0.4.0")))
        assert isinstance(decode(await asyncio.wait_for(ws.recv(), 10)), Welcome)
        await ws.send(" " * (MAX_FRAME_BYTES + 1024))
        with pytest.raises(ConnectionClosed):
            await _drain(ws)
        return ws.close_code


async def _drain(ws: ClientConnection) -> None:
    """Read until the server closes (a Desired may come first)."""
    while True:
        await asyncio.wait_for(ws.recv(), 10)


@contextlib.contextmanager
def _central_with_board(tmp_path: Path, name: str) -> Iterator[tuple[str, str, str]]:
    """A real ``wrale central`` and one enrolled board: (edge WebSocket URL, id, secret)."""
    central = CentralProcess(
        tmp_path / "data",
        clean_env(WRALE_ADMIN_PASSWORD="admin-password-1", WRALE_SECRET_KEY="k" * 40),
    )
    central.start()
    try:
        admin = central.login("admin", "admin-password-1")
        r = httpx.post(
            f"{central.url}/api/v1/enroll/bulk",
            headers=admin,
            json={"devices": [{"name": name}]},
            timeout=10,
        )
        assert r.status_code == 201, r.text
        item = r.json()["items"][0]
        url = central.url.replace("http://", "ws://") + "/api/v1/edge/ws"
        yield url, item["device_id"], item["device_secret"]
    finally:
        central.stop()


def test_a_message_over_the_frame_size_closes_the_socket(tmp_path: Path) -> None:
    with _central_with_board(tmp_path, "big") as board:
        code = asyncio.run(_oversized(*board))
    assert code == 1009  # message too big: refused by the server before the app reads it


async def _negotiated(url: str, device_id: str, secret: str) -> str:
    headers = {"X-Wrale-Device": device_id, "Authorization": f"Bearer {secret}"}
    async with connect(url, additional_headers=headers) as ws:  # offers deflate
        await ws.send(encode(Hello(device_id=device_id, agent_version="0.4.0")))
        assert isinstance(decode(await asyncio.wait_for(ws.recv(), 10)), Welcome)
        assert ws.response is not None
        return str(ws.response.headers.get("Sec-WebSocket-Extensions", ""))


def test_boards_compress_with_context_the_server_without(tmp_path: Path) -> None:
    """The lean deflate (``wrale.user.api.ws_protocol``) is what a real central answers."""
    with _central_with_board(tmp_path, "deflate") as board:
        ext = asyncio.run(_negotiated(*board))
    assert "permessage-deflate" in ext
    assert "server_no_context_takeover" in ext
    assert "client_no_context_takeover" not in ext  # the boards' direction keeps context
