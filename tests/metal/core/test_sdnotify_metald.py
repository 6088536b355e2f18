"""metald under systemd: READY=1 only once the first sample is taken and the API listens,
WATCHDOG=1 only from the sampler's progress (a stalled sampler stops the pings), STOPPING=1
on shutdown, and ``/healthz`` turning 503 once the last sample is older than three
sampling intervals. All through a real AF_UNIX datagram socket, as systemd listens."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.metal.core.server_harness import running_metald
from wrale.metal.daemon import serve
from wrale.metal.service import follow_sampler
from wrale.shared.config import BackendName, MetalSettings
from wrale.shared.sdnotify import Notifier


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SystemdSocket:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)

    def drain(self) -> list[dict[str, str]]:
        out = []
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return out
            out.append(dict(line.split("=", 1) for line in data.decode().split("\n")))

    async def wait_for(self, key: str, timeout_s: float = 10.0) -> list[dict[str, str]]:
        """Messages received until one carrying ``key`` (inclusive)."""
        seen: list[dict[str, str]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            for msg in self.drain():
                seen.append(msg)
                if key in msg:
                    return seen
            await asyncio.sleep(0.01)
        raise AssertionError(f"no {key} within {timeout_s} s; saw {seen}")


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[SystemdSocket]:
    s = SystemdSocket(tmp_path / "notify")
    yield s
    s.sock.close()


async def test_healthz_is_503_when_the_last_sample_is_three_intervals_old() -> None:
    async with running_metald() as m:
        client = m.client(key=None)
        m.board.advance(2.9)  # the clock moves, the sampler has not run: still fresh
        ok = await client.get("/healthz")
        assert ok.status_code == 200
        assert ok.json()["status"] == "ok"
        assert ok.json()["sample_age_s"] == pytest.approx(2.9)
        m.board.advance(0.2)  # 3.1 s > 3 x 1 s
        stale = await client.get("/healthz")
        assert stale.status_code == 503
        body = stale.json()
        assert body["status"] == "stale"
        assert body["error"]["code"] == "stale_sample"
        assert body["sample_age_s"] == pytest.approx(3.1)
        await m.core.tick()  # the sampler is back
        assert (await client.get("/healthz")).status_code == 200


async def test_watchdog_pings_follow_the_samples_only(systemd: SystemdSocket) -> None:
    async with running_metald() as m:
        notifier = Notifier(str(systemd.path), watchdog_usec=1)  # ping on every sample
        follower = asyncio.create_task(follow_sampler(m.core, notifier))
        try:
            await asyncio.sleep(0.05)
            assert systemd.drain() == []  # no sample, no ping: there is no timer
            for _ in range(3):
                m.board.advance(1.0)
                await m.core.tick()
                assert await systemd.wait_for("WATCHDOG") == [{"WATCHDOG": "1"}]
            await asyncio.sleep(0.1)  # the sampler stalls: silence, systemd will restart us
            assert systemd.drain() == []
        finally:
            follower.cancel()
            notifier.close()


async def test_status_line_follows_the_readings(systemd: SystemdSocket) -> None:
    async with running_metald() as m:
        notifier = Notifier(str(systemd.path))
        follower = asyncio.create_task(follow_sampler(m.core, notifier, status_every_s=0.0))
        try:
            await asyncio.sleep(0)
            m.board.advance(1.0)
            await m.core.tick()
            (msg,) = await systemd.wait_for("STATUS")
            assert msg["STATUS"].startswith("cpu ")
            assert "fan " in msg["STATUS"]
            assert "WATCHDOG" not in msg  # no WatchdogSec= in the unit: no pings
        finally:
            follower.cancel()
            notifier.close()


async def test_serve_is_ready_once_sampling_and_listening_then_stopping(
    systemd: SystemdSocket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(systemd.path))
    monkeypatch.setenv("WATCHDOG_USEC", "400000")  # 0.4 s: a ping at most every 0.1 s
    settings = MetalSettings(
        backend=BackendName.SIM,
        listen=f"127.0.0.1:{free_port()}",
        data_dir=tmp_path,
        sample_interval_s=0.05,
    )
    stop = asyncio.Event()
    ready_at: list[tuple[str, int]] = []
    task = asyncio.create_task(
        serve(settings, "k" * 32, stop=stop, on_ready=lambda h, p: ready_at.append((h, p)))
    )
    try:
        msgs = await systemd.wait_for("READY")
        assert msgs[-1]["READY"] == "1"
        assert "sampling every 0.05 s" in msgs[-1]["STATUS"]
        assert not any("WATCHDOG" in m for m in msgs)  # nothing before READY
        host, port = ready_at[0] if ready_at else (None, None)
        assert port is not None
        assert f"API on {host}:{port}" in msgs[-1]["STATUS"]
        async with httpx.AsyncClient() as c:
            health = await c.get(f"http://{host}:{port}/healthz")
        assert health.status_code == 200, health.text
        for _ in range(2):
            assert await systemd.wait_for("WATCHDOG", timeout_s=5.0)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10.0)
    msgs = await systemd.wait_for("STOPPING")
    assert msgs[-1]["STOPPING"] == "1"
