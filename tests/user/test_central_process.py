"""`wrale central` as an operator runs it: a real process on a loopback port with a SQLite
data directory — migrations, health and readiness, first-start admin, restarts keep data."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.user.metald_proc import WRALE, free_port
from wrale.fleet.brain import schema

pytestmark = pytest.mark.slow


def clean_env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("WRALE_")}
    return {**base, **extra}


@dataclass
class CentralProcess:
    data_dir: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> str:
        """Start and wait until healthy; returns what it printed on stdout."""
        self.log = self.data_dir.parent / f"central-{time.monotonic_ns()}.out"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [WRALE, "central", "--port", str(self.port), "--data-dir", str(self.data_dir)],
                env=self.env,
                stdout=out,
                stderr=subprocess.PIPE,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"central exited {self.proc.returncode}: {err}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self.log.read_text()
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError("central did not become healthy in 60 s")

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(30)
        if self.proc.stderr:
            self.proc.stderr.close()
        return code

    def login(self, username: str, password: str) -> dict[str, str]:
        r = httpx.post(
            f"{self.url}/api/v1/auth/login",
            json={"username": username, "password": password},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['access_token']}"}


def tables_of(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {r[0] for r in rows}


def test_migrate_creates_the_schema(tmp_path: Path) -> None:
    data = tmp_path / "data"
    out = subprocess.run(
        [WRALE, "central", "migrate", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(),
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert f"revision {schema.head_revision()}" in out.stdout
    tables = tables_of(data / "central.db")
    assert {"tenants", "users", "audit_log", "devices", "racks", "alembic_version"} <= tables


def test_bad_setting_exits_2_naming_it(tmp_path: Path) -> None:
    out = subprocess.run(
        [WRALE, "central", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(WRALE_DATABASE_URL="mysql://nope"),
        check=False,
    )
    assert out.returncode == 2
    assert "WRALE_DATABASE_URL" in out.stderr


def test_serves_and_restart_keeps_data(tmp_path: Path) -> None:
    central = CentralProcess(
        tmp_path / "data",
        clean_env(WRALE_ADMIN_PASSWORD="admin-password-1", WRALE_SECRET_KEY="k" * 40),
    )
    printed = central.start()
    try:
        assert central.url in printed
        assert "first start" not in printed  # the password was given, never printed
        ready = httpx.get(f"{central.url}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        assert ready.json()["migrations_current"] is True
        admin = central.login("admin", "admin-password-1")
        r = httpx.post(
            f"{central.url}/api/v1/users",
            headers=admin,
            json={"username": "olga", "password": "password-123", "role": "operator"},
            timeout=10,
        )
        assert r.status_code == 201, r.text
        metrics = httpx.get(f"{central.url}/metrics", timeout=10)
        assert metrics.status_code == 200
        assert 'route="/api/v1/users",status="201"' in metrics.text
    finally:
        assert central.stop() == 0

    central.start()
    try:
        assert httpx.get(f"{central.url}/readyz", timeout=10).status_code == 200
        central.login("olga", "password-123")
        central.login("admin", "admin-password-1")
    finally:
        assert central.stop() == 0


def test_first_start_prints_a_random_admin_password_once(tmp_path: Path) -> None:
    central = CentralProcess(tmp_path / "data", clean_env(WRALE_SECRET_KEY="k" * 40))
    printed = central.start()
    try:
        found = re.search(r"created user 'admin' with password (\S+)", printed)
        assert found, printed
        central.login("admin", found.group(1))
    finally:
        central.stop()
    assert "with password" not in central.start()
    central.stop()


def test_event_websocket_over_a_real_server(tmp_path: Path) -> None:
    """Needs the ``websockets`` package, which uvicorn also needs to serve WebSockets."""
    import asyncio
    import json

    websockets = pytest.importorskip("websockets", reason="pip install websockets")
    from websockets.asyncio.client import connect

    central = CentralProcess(
        tmp_path / "data",
        clean_env(WRALE_ADMIN_PASSWORD="admin-password-1", WRALE_SECRET_KEY="k" * 40),
    )
    central.start()
    try:
        token = central.login("admin", "admin-password-1")["Authorization"].split()[1]
        ws_url = central.url.replace("http://", "ws://") + "/api/v1/ws"

        async def talk() -> None:
            async with connect(f"{ws_url}?token={token}") as ws:
                assert json.loads(await ws.recv())["type"] == "ready"
                await ws.send(json.dumps({"type": "ping"}))
                assert json.loads(await ws.recv()) == {"type": "pong"}
            async with connect(ws_url, additional_headers={"Authorization": "Bearer x"}) as ws:
                assert json.loads(await ws.recv())["type"] == "error"
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await ws.recv()
                assert closed.value.rcvd is not None
                assert closed.value.rcvd.code == 4401

        asyncio.run(asyncio.wait_for(talk(), 30))
    finally:
        central.stop()
