"""``wrale sim`` as a real process against a central server: it enrolls its boards with a
multi-use token, they come online, SIGTERM stops it cleanly, and a re-run on the same state
directory needs no token (the same devices come back). A plain-text URL to another
machine is refused without ``--insecure``."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.user.api.central_server import ThreadedCentral, start_central
from tests.user.metald_proc import WRALE

pytestmark = pytest.mark.slow
WAIT_S = 120.0


@pytest.fixture
def central(tmp_path: Path) -> Iterator[ThreadedCentral]:
    c = start_central(tmp_path / "central", migrate=False)
    yield c
    c.stop()


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("WRALE_")}


def sim(state: Path, central_url: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            WRALE,
            "sim",
            "--devices",
            "3",
            "--central",
            central_url,
            "--state-dir",
            str(state),
            *extra,
        ],
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def online(api: httpx.Client) -> dict[str, Any]:
    items = api.get("/devices", params={"limit": 100}).json()["items"]
    return {d["name"]: d for d in items if d["status"] == "online"}


def wait_online(api: httpx.Client, n: int, proc: subprocess.Popen[str]) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        found = online(api)
        if len(found) == n:
            return found
        assert proc.poll() is None, proc.communicate()[0]
        time.sleep(0.25)
    raise AssertionError(f"{n} devices not online within {WAIT_S:g} s: {online(api)}")


def terminate(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    return proc.returncode, out


def test_wrale_sim_enrolls_runs_and_comes_back(central: ThreadedCentral, tmp_path: Path) -> None:
    api = httpx.Client(
        base_url=f"{central.url}/api/v1",
        headers={"Authorization": f"Bearer {central.login()}"},
        timeout=30,
    )
    r = api.post("/enrollment-tokens", json={"name": "sims", "max_uses": None})
    assert r.status_code == 201, r.text
    state = tmp_path / "sim"
    first = sim(state, central.url, "--enrollment-token", r.json()["token"], "--name-prefix", "p")
    try:
        devices = wait_online(api, 3, first)
    finally:
        code, out = terminate(first)
    assert code == 0, out
    assert "3 of 3 enrolled" in out
    assert "wrale sim: stopped" in out
    assert sorted(devices) == ["p-a1-u04", "p-a1-u05", "p-a1-u06"]

    again = sim(state, central.url)  # no token: every board has its credential
    try:
        back = wait_online(api, 3, again)
    finally:
        code, out = terminate(again)
    assert code == 0, out
    assert "enrolling" not in out
    assert {n: d["id"] for n, d in back.items()} == {n: d["id"] for n, d in devices.items()}


def test_unenrolled_boards_without_a_token_stop_the_process(
    central: ThreadedCentral, tmp_path: Path
) -> None:
    proc = sim(tmp_path / "sim", central.url)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "enrollment token" in out


def test_plain_text_to_another_machine_needs_insecure(tmp_path: Path) -> None:
    proc = sim(tmp_path / "sim", "http://192.0.2.1:8080", "--enrollment-token", "wet_x")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "--insecure" in out
    assert not (tmp_path / "sim").exists()  # refused before anything was made
