"""Real processes for the replicas test: a fresh PostgreSQL database, `wrale central` on
it (``PgCentral``), HAProxy with the shipped config, and the dashboard's two live streams
(``/api/v1/ws`` WebSocket, ``/ui/events`` SSE) read by threads."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.conftest import PG_ADMIN_DSN, _pg_or_skip, _pg_url, run_sync
from tests.user.fleet_procs import Central, wait_for
from tests.user.metald_proc import free_port

HAPROXY = "/usr/sbin/haproxy"
SHIPPED = Path(__file__).parents[2] / "packaging" / "haproxy" / "wrale-central.cfg"


# ----------------------------------------------------------------------------- PostgreSQL


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """An empty database (the first replica migrates it); dropped afterwards."""
    _pg_or_skip()
    name = f"wrale_replicas_{os.getpid()}_{secrets.token_hex(3)}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    run_sync(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield _pg_url(name)
    finally:
        run_sync(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


class PgCentral(Central):
    """A replica on PostgreSQL: ``query`` (hence ``central_books``) reads that database."""

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        dsn = self.extra_env["WRALE_DATABASE_URL"].replace("+asyncpg", "")
        parts = sql.split("?")  # sqlite's placeholders as PostgreSQL's $1, $2, …
        numbered = parts[0] + "".join(f"${i}{p}" for i, p in enumerate(parts[1:], 1))

        async def fetch() -> list[tuple[Any, ...]]:
            conn = await asyncpg.connect(dsn)
            try:
                return [tuple(r) for r in await conn.fetch(numbered, *params)]
            finally:
                await conn.close()

        result: list[tuple[Any, ...]] = run_sync(fetch())
        return result


# ----------------------------------------------------------------------------- HAProxy


def render(shipped: str, port: int, replicas: list[int]) -> str:
    """The shipped config listening on ``port`` with one server line per replica port,
    sized for a test (a non-root HAProxy cannot raise its descriptor limit to the fleet's)."""
    out = re.sub(r"(?m)^(\s*)bind :8080\b.*$", rf"\1bind 127.0.0.1:{port}", shipped)
    out = re.sub(r"\bmaxconn \d+", "maxconn 1000", out)
    servers = "".join(
        f"    server central{i} 127.0.0.1:{p} check\n" for i, p in enumerate(replicas, 1)
    )
    out = re.sub(r"(?m)^\s*server .*\n", "", out)
    assert "backend central" in out
    return out.rstrip("\n") + "\n" + servers


@contextlib.contextmanager
def haproxy(tmp_path: Path, replicas: list[int]) -> Iterator[str]:
    port = free_port()
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(render(SHIPPED.read_text(), port, replicas))
    log = (tmp_path / "haproxy.log").open("ab")
    proc = subprocess.Popen([HAPROXY, "-f", str(cfg), "-db"], stdout=log, stderr=log)
    log.close()
    url = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            assert proc.poll() is None, (tmp_path / "haproxy.log").read_text()
            try:
                return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for("HAProxy forwarding", up, 20)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


# ----------------------------------------------------------------------------- live stream


class LiveStream:
    """The dashboard's event stream (``/api/v1/ws``), read by a thread into a queue."""

    def __init__(self, base_url: str, token: str, kinds: list[str]) -> None:
        self._stack = contextlib.ExitStack()
        self.ws: ClientConnection = self._stack.enter_context(
            connect(
                base_url.replace("http://", "ws://") + "/api/v1/ws",
                additional_headers={"Authorization": f"Bearer {token}"},
                open_timeout=10,
            )
        )
        assert self.ws.response is not None
        self.replica = self.ws.response.headers.get("X-Wrale-Replica")
        self.frames: queue.Queue[dict[str, Any]] = queue.Queue()
        assert json.loads(self.ws.recv(timeout=10))["type"] == "ready"
        self.ws.send(json.dumps({"type": "subscribe", "id": "s", "kinds": kinds}))
        assert json.loads(self.ws.recv(timeout=10))["type"] == "subscribed"
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            for raw in self.ws:
                self.frames.put(json.loads(raw))

    def expect(self, kind: str, timeout_s: float = 10.0, **data: Any) -> dict[str, Any]:
        return expect_frame(self.frames, kind, timeout_s, data)

    def close(self) -> None:
        self._stack.close()


class SseStream:
    """The browser dashboard's stream (``/ui/events``, Server-Sent Events), signed in with
    an API login's tokens as the session cookies, read by a thread into a queue."""

    def __init__(self, base_url: str, tokens: dict[str, Any]) -> None:
        self.frames: queue.Queue[dict[str, Any]] = queue.Queue()
        self._client = httpx.Client(
            base_url=base_url,
            cookies={
                "wrale_session": tokens["access_token"],
                "wrale_refresh": tokens["refresh_token"],
            },
            timeout=httpx.Timeout(10, read=60),
        )
        self._cm = self._client.stream("GET", "/ui/events")
        self.response = self._cm.__enter__()
        assert self.response.status_code == 200, self.response.read()
        self.replica = self.response.headers.get("X-Wrale-Replica")
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        with contextlib.suppress(httpx.HTTPError, RuntimeError):
            for line in self.response.iter_lines():
                if line.startswith("data: "):
                    self.frames.put(json.loads(line[len("data: ") :]))

    def expect(self, kind: str, timeout_s: float = 10.0, **data: Any) -> dict[str, Any]:
        return expect_frame(self.frames, kind, timeout_s, data)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._cm.__exit__(None, None, None)
        self._client.close()


def expect_frame(
    frames: queue.Queue[dict[str, Any]], kind: str, timeout_s: float, data: dict[str, Any]
) -> dict[str, Any]:
    """The first frame of ``kind`` whose data holds ``data`` within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    seen = []
    while (left := deadline - time.monotonic()) > 0:
        try:
            frame = frames.get(timeout=left)
        except queue.Empty:
            break
        seen.append(frame)
        got = frame.get("data", {})
        if frame.get("kind") == kind and all(got.get(k) == v for k, v in data.items()):
            return frame
    raise AssertionError(f"no {kind} {data} on the live stream in {timeout_s} s: {seen}")
