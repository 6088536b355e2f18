"""A real central server (uvicorn in a thread, its own event loop) on a loopback port."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Base
from wrale.shared.central_settings import CentralSettings
from wrale.user.api.app import create_app
from wrale.user.api.edge_wire import use_edge_wire
from wrale.user.api.routes.edge import WS_MAX_SIZE

ADMIN_PASSWORD = "admin-password-1"


@dataclass
class ThreadedCentral:
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)

    def login(self, username: str = "admin", password: str = ADMIN_PASSWORD) -> str:
        r = httpx.post(
            f"{self.url}/api/v1/auth/login",
            json={"username": username, "password": password},
            timeout=10,
        )
        r.raise_for_status()
        return str(r.json()["access_token"])


def start_central(
    data_dir: Path, database_url: str | None = None, *, migrate: bool = True, **overrides: Any
) -> ThreadedCentral:
    """Start a central server; ``migrate`` runs the real migrations as ``wrale central`` does;
    ``overrides``: settings other than the test defaults."""
    url_db = database_url or f"sqlite+aiosqlite:///{data_dir / 'central.db'}"
    settings = CentralSettings(
        database_url=url_db,
        data_dir=data_dir,
        dev=True,
        secret_key="test-secret-key-0123456789abcdef",
        admin_password=ADMIN_PASSWORD,
        login_max_failures=1000,
        **overrides,
    )

    async def schema() -> None:
        db = Database(url_db)
        async with db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        await db.dispose()

    if not migrate:
        asyncio.run(schema())
    app = create_app(settings, migrate=migrate)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=3,
        ws_max_size=WS_MAX_SIZE,
    )
    server = uvicorn.Server(use_edge_wire(config, app.state.hub))  # as `wrale central` serves
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("central server did not start")
        time.sleep(0.05)
    return ThreadedCentral(f"http://127.0.0.1:{port}", server, thread)


@contextmanager
def central_on(
    backend: str, data: Path, pg_name: str, *, migrate: bool = True
) -> Iterator[ThreadedCentral]:
    """A real server on SQLite (a file in ``data``) or on a fresh PostgreSQL database
    ``pg_name``, dropped at the end."""
    from tests.conftest import _pg_or_skip, _pg_url, run_sync

    if backend == "sqlite":
        central = start_central(data, migrate=migrate)
        try:
            yield central
        finally:
            central.stop()
        return
    _pg_or_skip()
    drop = f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'
    run_sync(_pg_admin(drop, f'CREATE DATABASE "{pg_name}"'))
    central = start_central(data, _pg_url(pg_name), migrate=migrate)
    try:
        yield central
    finally:
        central.stop()
        run_sync(_pg_admin(drop))


async def _pg_admin(*statements: str) -> None:
    import asyncpg

    from tests.conftest import PG_ADMIN_DSN

    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()
