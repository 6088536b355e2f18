"""``wrale device run`` / ``wrale edge`` wiring: the whole device in one process talking
WebSocket to a small central end on loopback (protocol only, no brain), a simulated reboot
by command, and the entry points' refusals."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed as WsClosed

from tests.fleet.edge.kit import FakeCentral, edge_settings, eventually
from wrale.fleet.edge.agent import EdgeAgent
from wrale.fleet.edge.credentials import Credentials
from wrale.fleet.sync.protocol import Command, Message, decode, encode
from wrale.fleet.sync.transport.base import ConnectionClosed
from wrale.shared.config import MetalSettings, SimSettings
from wrale.user.cli import device as device_cli
from wrale.user.cli import edge as edge_cli
from wrale.user.cli.device import run_device


class ServerEnd:
    """The server's side of one WebSocket as a ``Connection``."""

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws

    async def send(self, msg: Message) -> None:
        try:
            await self.ws.send(encode(msg))
        except WsClosed as exc:
            raise ConnectionClosed(str(exc)) from None

    async def recv(self) -> Message:
        try:
            return decode(await self.ws.recv())
        except WsClosed as exc:
            raise ConnectionClosed(str(exc)) from None

    async def close(self) -> None:
        await self.ws.close()


async def test_the_device_runs_over_websocket_and_reboots_by_command(tmp_path: Path) -> None:
    central = FakeCentral()
    headers: list[str] = []

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        headers.append(ws.request.headers["X-Wrale-Device"])
        with contextlib.suppress(ConnectionClosed):
            await central.serve(ServerEnd(ws))

    async with serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        Credentials(f"http://127.0.0.1:{port}", "dev-1", "wds_secret").save(
            tmp_path / "credentials.json"
        )
        metal = MetalSettings(
            backend="sim",
            data_dir=tmp_path / "metald",
            sample_interval_s=0.05,
            sim=SimSettings(seed=1, noise=False),
        )
        boots: list[EdgeAgent] = []
        stop = asyncio.Event()
        task = asyncio.create_task(
            run_device(
                metal,
                edge_settings(tmp_path),
                api_key=None,
                stop=stop,
                on_ready=lambda agent, _: boots.append(agent),
            )
        )
        try:
            await eventually(lambda: central.batches["telemetry"] >= 2, "telemetry flows")
            await eventually(lambda: central.conn is not None, "connected")
            await central.push(Command("r1", "reboot", {"delay_s": 0}, time.time() + 60))
            await eventually(lambda: len(boots) == 2, "a second boot")
            await eventually(lambda: len(central.hellos) >= 2, "the rebooted device dials")
            result = central.result("r1")
            assert result is not None
            assert result.status == "succeeded"
            assert "reboot" in result.reason
            assert headers[0] == "dev-1"
            assert central.hellos[-1].acked["telemetry"] > 0  # the store survived the reboot
        finally:
            stop.set()
            await task


def test_device_run_refuses_to_start_without_a_credential(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = device_cli.main(["run", "--state-dir", str(tmp_path), "--backend", "sim", "--dev"])
    assert code == 2
    assert "wrale enroll" in capsys.readouterr().err
    assert device_cli.main([]) == 2


def test_edge_refuses_plain_text_to_another_machine_and_a_missing_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Credentials("http://central.example", "d", "s").save(tmp_path / "credentials.json")
    assert edge_cli.main(["--state-dir", str(tmp_path)]) == 2
    assert "metald_api_key" in capsys.readouterr().err
    assert edge_cli.main(["--state-dir", str(tmp_path), "--dev"]) == 2
    assert "not encrypted" in capsys.readouterr().err
