"""A small simulated fleet against a real central server: the boards enroll with one
multi-use token, connect, report telemetry and take commands; a second start on the same
state directory is the same fleet, already enrolled."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.user.api.central_server import ThreadedCentral, start_central
from wrale.user.simfleet.fleet import SimFleet
from wrale.user.simfleet.plan import Layout

pytestmark = pytest.mark.slow
WAIT_S = 90.0


@pytest.fixture
def central(tmp_path: Path) -> Iterator[ThreadedCentral]:
    c = start_central(tmp_path / "central", migrate=False)
    yield c
    c.stop()


class Api:
    def __init__(self, central: ThreadedCentral) -> None:
        self.client = httpx.AsyncClient(
            base_url=f"{central.url}/api/v1",
            headers={"Authorization": f"Bearer {central.login()}"},
            timeout=30,
        )

    async def get(self, path: str, **params: Any) -> Any:
        r = await self.client.get(path, params=params)
        assert r.status_code == 200, r.text
        return r.json()

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        r = await self.client.post(path, json=body)
        assert r.status_code == 201, r.text
        return r.json()

    async def devices(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = (await self.get("/devices", limit=100))["items"]
        return items


async def eventually(check: Any, what: str, timeout_s: float = WAIT_S) -> Any:
    """Poll ``check()`` (async) until it returns something truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = await check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout_s:g} s: {what}")
        await asyncio.sleep(0.2)


async def test_a_small_fleet_enrolls_connects_reports_and_obeys(
    central: ThreadedCentral, tmp_path: Path
) -> None:
    api = Api(central)
    token = (await api.post("/enrollment-tokens", {"name": "sim", "max_uses": 3}))["token"]
    state = tmp_path / "fleet"
    fleet = SimFleet.planned(
        3, state, prefix="t", seed=1, layout=Layout(boards_per_rack=2), reboot_s=1.0
    )
    await fleet.start()
    assert await fleet.enroll(central.url, token) == 3
    creds = {d.name: fleet.credentials(d) for d in fleet.devices.values()}
    assert all(c is not None for c in creds.values())
    assert (state / "boards" / "t-a1-u04" / "credentials.json").stat().st_mode & 0o777 == 0o600
    assert await fleet.attach_agents(fleet.edge_agents(central.url, heartbeat_s=1.0)) == 3

    stop = asyncio.Event()
    running = asyncio.create_task(fleet.run(stop))
    try:

        async def all_online() -> bool:
            devs = await api.devices()
            return len(devs) == 3 and all(d["status"] == "online" for d in devs)

        await eventually(all_online, "3 devices online")
        devs = {d["name"]: d for d in await api.devices()}
        board = devs["t-a1-u05"]
        assert board["hardware_profile"] == fleet.devices["t-a1-u05"].spec.hardware.key
        # tags a board proposes are kept apart; only the token's target tags count
        assert board["tags"] == []
        assert {"sim", "rack-a1"} <= set(board["proposed_tags"])
        assert fleet.stats()["connected"] == 3

        async def has_telemetry() -> Any:
            series = await api.get(f"/devices/{board['id']}/telemetry", metric="cpu_temp_c")
            return series.get("points")

        await eventually(has_telemetry, "cpu_temp_c of a simulated board stored")

        cmd = await api.post(
            f"/devices/{board['id']}/commands", {"op": "sim_load", "args": {"percent": 77}}
        )

        async def done() -> Any:
            c = await api.get(f"/commands/{cmd['id']}")
            return c if c["status"] in ("succeeded", "failed", "refused", "expired") else None

        finished = await eventually(done, "the sim_load command finished")
        assert finished["status"] == "succeeded", finished
        assert fleet.devices["t-a1-u05"].sim.status()["load_pct"] == 77.0

        # A simulated reboot: the board goes away and comes back with a fresh metal core.
        old_core = fleet.devices["t-a1-u05"].core
        cmd = await api.post(f"/devices/{board['id']}/commands", {"op": "reboot", "args": {}})
        finished = await eventually(done, "the reboot command finished")
        assert finished["status"] == "succeeded", finished

        async def rebooted() -> bool:
            dev = fleet.devices["t-a1-u05"]
            return dev.core is not old_core and dev.powered and fleet.stats()["connected"] == 3

        await eventually(rebooted, "the rebooted board back and connected")
        await eventually(all_online, "3 devices online after the reboot")

        # A simulated shutdown: the board stays off, the others keep running.
        cmd = await api.post(f"/devices/{board['id']}/commands", {"op": "shutdown", "args": {}})
        finished = await eventually(done, "the shutdown command finished")
        assert finished["status"] == "succeeded", finished

        async def off() -> bool:
            d = {x["name"]: x["status"] for x in await api.devices()}
            return d["t-a1-u05"] != "online" and fleet.stats()["connected"] == 2

        await eventually(off, "the shut-down board offline")
        assert not fleet.devices["t-a1-u05"].powered
    finally:
        stop.set()
        await running
        await fleet.close()

    # The same state directory: the same boards, already enrolled, no token needed.
    again = SimFleet.planned(3, state, layout=Layout(boards_per_rack=2))
    await again.start()
    assert [s.name for s in again.specs] == list(creds)
    assert await again.enroll(central.url, None) == 0
    assert {d.name: again.credentials(d) for d in again.devices.values()} == creds
    await again.close()
    saved = json.loads((state / "fleet.json").read_text())
    assert saved == {"prefix": "t", "seed": 1}


async def test_a_refused_token_leaves_the_boards_unenrolled(
    central: ThreadedCentral, tmp_path: Path
) -> None:
    fleet = SimFleet.planned(2, tmp_path / "fleet", prefix="x")
    await fleet.start()
    failures: list[str] = []
    enrolled = await fleet.enroll(
        central.url, "wet_not-a-token", on_error=lambda dev, exc: failures.append(dev.name)
    )
    assert enrolled == 0
    assert sorted(failures) == sorted(fleet.devices)
    assert len(fleet.unenrolled()) == 2
    assert await fleet.attach_agents(fleet.edge_agents(central.url)) == 0
    await fleet.close()
