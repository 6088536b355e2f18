"""Jobs through the real device channel on both databases: a placement reaches its board
in the desired document pushed live, the board's reported ``jobs`` section moves the
placement on, and a board saying it entered SAFE mode gives its work to another board."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from tests.fleet.brain.channel_kit import Kit, make_kit
from wrale.fleet.brain.channel.hub import ChannelHub
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models.jobs import JobPlacement
from wrale.fleet.brain.services import job_placement, jobs
from wrale.fleet.sync.protocol import Desired, Reported, Status

ARGV = ["/usr/bin/stress-ng", "--cpu", "1"]


@pytest.fixture
async def kit(database: Database, tmp_path: Path) -> Kit:
    return await make_kit(database, tmp_path)


async def _placement(kit: Kit, job_id: str) -> JobPlacement:
    async with kit.db.session() as s:
        p = await s.scalar(select(JobPlacement).where(JobPlacement.job_id == job_id))
        assert p is not None
        return p


async def test_a_placement_reaches_its_board_and_comes_back(kit: Kit) -> None:
    (a, secret_a), (b, secret_b) = await kit.devices("edge-a", "edge-b")
    hub = ChannelHub(kit.ctx())
    await hub.start()
    session_a, wire_a, _ = await kit.open(a, secret_a)
    session_b, _, _ = await kit.open(b, secret_b)
    hub.register(session_a)
    hub.register(session_b)
    try:
        await session_a.deliver()
        wire_a.take()
        body = {
            "name": "render-42",
            "workload": {"kind": "process", "argv": ARGV, "env": {"K": "V"}},
            "replicas": 1,
            "strategy": "spread",
        }
        async with kit.db.session() as s:
            job = (await jobs.create_job(s, kit.admin, body, bus=kit.bus)).id
        p = await _placement(kit, job)
        assert p.device_id == a  # edge-a comes first by name
        pushed = await wire_a.wait_for(lambda m: isinstance(m, Desired) and bool(m.doc.get("jobs")))
        assert isinstance(pushed, Desired)
        assert pushed.doc["jobs"] == {
            p.id: {
                "job": job,
                "name": "render-42",
                "workload": {"kind": "process", "argv": ARGV, "env": {"K": "V"}},
                "duration_s": None,
                "cpu_quota_pct": None,
            }
        }

        running = {"state": "running", "cpu_s": 3.0, "output_tail": "stress-ng: info"}
        await session_a.handle(
            [
                Reported(
                    version=1, doc={"jobs": {p.id: running}}, applied_desired_version=pushed.version
                )
            ]
        )
        p = await _placement(kit, job)
        assert (p.state, p.cpu_s, p.output_tail) == ("running", 3.0, "stress-ng: info")

        # the board enters SAFE mode: its placement is released at once, and goes to edge-b
        await session_a.handle([Status(ts=kit.clock.now(), mode="safe")])
        p = await _placement(kit, job)
        assert (p.state, p.device_id, p.reason) == ("pending", None, "edge-a entered SAFE mode")
        emptied = await wire_a.wait_for(
            lambda m: isinstance(m, Desired) and m.doc.get("jobs") == {}
        )
        assert isinstance(emptied, Desired)
        async with kit.db.session() as s:
            done = await job_placement.place_pending(s, kit.admin.tenant_id, None, kit.bus)
        assert (done.placed, done.released) == (1, 0)
        assert (await _placement(kit, job)).device_id == b
    finally:
        await hub.stop()
