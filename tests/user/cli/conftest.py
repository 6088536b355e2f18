"""A real central server for the ``wrale`` CLI tests: the app around the ``database``
fixture, served by uvicorn on a loopback port in a thread, and a runner of the CLI."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner, Result

from wrale.fleet.brain.db import Database
from wrale.shared.central_settings import CentralSettings
from wrale.user.api.app import create_app
from wrale.user.cli import output
from wrale.user.cli.app import app
from wrale.user.simfleet.digital_copy import DigitalCopy

ADMIN_PASSWORD = "admin-password-1"
SECRET_KEY = "test-secret-key-0123456789abcdef"


@dataclass
class CliCentral:
    url: str
    config_dir: Path
    runner: CliRunner

    def run(self, *args: str, input: str | None = None) -> Result:
        return self.runner.invoke(app, list(args), input=input)

    def ok(self, *args: str, input: str | None = None) -> str:
        r = self.run(*args, input=input)
        assert r.exit_code == 0, f"wrale {' '.join(args)} → {r.exit_code}\n{r.output}"
        return r.output

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json"))

    def login(self, username: str = "admin", password: str = ADMIN_PASSWORD) -> str:
        return self.ok(
            "login", "--central", self.url, "--username", username, "--password", password
        )

    @property
    def session_file(self) -> Path:
        return self.config_dir / "wrale" / "session.json"


def _serve(server: uvicorn.Server, sock: socket.socket, db: Database) -> None:
    async def main() -> None:
        try:
            await server.serve(sockets=[sock])
        finally:
            await db.dispose()

    asyncio.run(main())


@pytest.fixture
def central_url(database: Database, tmp_path: Path) -> Iterator[str]:
    """The central API (real app, real database) served on 127.0.0.1:<free port>.

    The socket listens before the server thread starts, so requests made right away wait
    in the backlog until the app has started: no polling, no sleeping.
    """
    settings = CentralSettings(
        data_dir=tmp_path / "central",
        secret_key=SECRET_KEY,
        admin_password=ADMIN_PASSWORD,
        dev=True,
    )
    db = Database(database.url)  # the fixture's database, with an engine of the server's loop
    server_app = create_app(settings, database=db, migrate=False, dry_runner=DigitalCopy())
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(server_app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=_serve, args=(server, sock, db), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(15)
    sock.close()


@pytest.fixture
def cli(central_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliCentral:
    """Runs ``wrale …`` in process with its own config directory and no WRALE_* overrides."""
    config = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    monkeypatch.setenv("COLUMNS", "200")
    # a console made while COLUMNS and LINES were set (pytest-xdist's workers set 80x24)
    # keeps that size: tables must not be cut to fit
    for console in (output.console, output.err_console):
        monkeypatch.setattr(console, "width", 200)
    for var in ("WRALE_CENTRAL_URL", "WRALE_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    return CliCentral(central_url, config, CliRunner())
