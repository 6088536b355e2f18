"""``wrale demo`` as a new user runs it: a real process on a free port with a fresh data
directory — it prints the URL and a login that works, the fleet comes online in its rack
slots, Ctrl-C stops it cleanly, and a second run on the same directory finds everything
again (no new enrollment, the same login). ``WRALE_ADMIN_PASSWORD`` chooses the password."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.user.metald_proc import WRALE
from wrale.fleet.brain import schema
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Base

pytestmark = pytest.mark.slow
WAIT_S = 120.0
URL_RE = re.compile(r"(?:dashboard|central):\s+(http://\S+?)/?$", re.M)
LOGIN_RE = re.compile(r"login:\s+admin / (\S+)")


def prepare(data_dir: Path) -> None:
    """The schema as ``wrale central`` makes it (migrations), plus tables newer than the
    newest migration (a no-op once it exists)."""

    async def go() -> None:
        db = Database(f"sqlite+aiosqlite:///{data_dir / 'central.db'}")
        try:
            await schema.upgrade(db)
            async with db.engine.begin() as conn:
                await conn.run_sync(Base.metadata.create_all)
        finally:
            await db.dispose()

    data_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(go())


@dataclass
class Demo:
    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[str] | None = None
    out: list[str] = field(default_factory=list)

    def start(self, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WRALE_")}
        self.proc = subprocess.Popen(
            [WRALE, "demo", "--port", "0", "--data-dir", str(self.data_dir), *args],
            env={**env, **self.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.out.append(line)

    @property
    def text(self) -> str:
        return "".join(self.out)

    def wait_banner(self) -> tuple[str, str]:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            url, login = URL_RE.search(self.text), LOGIN_RE.search(self.text)
            if url and login and "Ctrl-C stops it" in self.text:
                return url.group(1), login.group(1)
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"wrale demo exited {self.proc.returncode}:\n{self.text}")
            time.sleep(0.1)
        raise AssertionError(f"no banner within {WAIT_S:g} s:\n{self.text}")

    def interrupt(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(60)


@pytest.fixture
def demos() -> Iterator[list[Demo]]:
    made: list[Demo] = []
    yield made
    for d in made:
        if d.proc is not None and d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait(10)


def login(url: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=f"{url}/api/v1", timeout=30)
    r = client.post("/auth/login", json={"username": "admin", "password": password})
    assert r.status_code == 200, r.text
    client.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
    return client


def eventually(check: Any, what: str, timeout_s: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:g} s: {what}")
        time.sleep(0.25)


def devices(api: httpx.Client) -> list[dict[str, Any]]:
    r = api.get("/devices", params={"limit": 100})
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def test_the_demo_runs_a_placed_fleet_and_comes_back_the_same(
    tmp_path: Path, demos: list[Demo]
) -> None:
    data = tmp_path / "wrale-data"
    prepare(data)
    first = Demo(data)
    demos.append(first)
    first.start("--devices", "10")
    url, password = first.wait_banner()
    assert "10 simulated boards in 2 racks across 1 room" in first.text
    assert "heat wave in Rack A2" in first.text  # the incidents ahead are listed
    api = login(url, password)

    def all_online() -> bool:
        devs = devices(api)
        return len(devs) == 10 and all(d["status"] == "online" for d in devs)

    eventually(all_online, "10 demo boards online")
    tree = api.get("/topology").json()
    (site,) = [s for s in tree["sites"] if s["name"] == "Demo site"]
    racks = {r["name"]: r for room in site["rooms"] for r in room["racks"]}
    assert sorted(racks) == ["Rack A1", "Rack A2"]
    assert racks["Rack A1"]["power_budget_w"] > 0
    slots = sorted((r, d["slot_u"]) for r, rack in racks.items() for d in rack["devices"])
    assert len(slots) == 10
    assert ("Rack A1", 4) in slots
    assert ("Rack A2", 5) in slots
    rules = api.get("/alert-rules", params={"limit": 100}).json()["items"]
    assert {"Demo: CPU hot", "Demo: rack over its power budget"} <= {r["name"] for r in rules}
    ids = {d["name"]: d["id"] for d in devices(api)}

    assert first.interrupt() == 0
    assert "stopped." in first.text
    assert (data / "demo-admin-password").stat().st_mode & 0o777 == 0o600

    second = Demo(data)
    demos.append(second)
    second.start("--devices", "10", "--no-incidents")
    url2, password2 = second.wait_banner()
    assert password2 == password
    assert "0 enrolled just now" in second.text
    api = login(url2, password2)
    eventually(all_online, "the same 10 boards online again")
    assert {d["name"]: d["id"] for d in devices(api)} == ids
    assert second.interrupt() == 0


def test_wrale_admin_password_chooses_the_login(tmp_path: Path, demos: list[Demo]) -> None:
    data = tmp_path / "wrale-data"
    prepare(data)
    demo = Demo(data, env={"WRALE_ADMIN_PASSWORD": "chosen-password-42"})
    demos.append(demo)
    demo.start("--devices", "2", "--no-incidents")
    url, _shown = demo.wait_banner()
    assert "chosen-password-42" not in demo.text  # not echoed
    assert "WRALE_ADMIN_PASSWORD" in demo.text
    login(url, "chosen-password-42")
    assert not (data / "demo-admin-password").exists()
    assert demo.interrupt() == 0
