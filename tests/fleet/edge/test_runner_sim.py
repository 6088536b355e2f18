"""``sim_load`` jobs on a simulated board (its real metal core, in process): they raise
the board's job load, each bounded by its ``cpu_quota_pct`` and all together by 100 %,
count CPU seconds at the share they get, end at ``duration_s`` and give the load back
when stopped; a board that is not simulated refuses them. A job load an earlier agent
left is taken off; a board without sim_load jobs is never changed.
"""

from __future__ import annotations

import asyncio
from typing import cast

import pytest

from tests.fleet.edge.jobkit import Driven, FakeMetal, fake_metal, py, sim
from tests.fleet.edge.kit import eventually
from tests.metal.core.server_harness import running_metald
from wrale.fleet.edge.jobproc import Launch
from wrale.fleet.edge.runner import JobRunner
from wrale.metal.core.client import InProcessMetalClient
from wrale.metal.core.ports import MetalClient


def runner(metal: MetalClient) -> JobRunner:
    return JobRunner(metal, launch=Launch(), report_every_s=0.05)


async def test_sim_load_raises_the_boards_load_bounded_by_its_quota() -> None:
    async with running_metald() as m, Driven(runner(InProcessMetalClient(m.core))) as d:
        board = m.board
        d.runner.want({"p1": sim(40)})
        run = await d.until("p1", "running")
        assert run["reason"] is None
        assert board.job_load_pct == 40.0
        assert board.total_load_pct == 50.0  # on top of the 10 % background

        d.runner.want({"p1": sim(40, cpu_quota_pct=25)})
        await d.until("p1", "running", cpu_quota_pct=25)
        assert board.job_load_pct == 25.0

        d.runner.want({"p1": sim(40, cpu_quota_pct=25), "p2": sim(90)})
        await d.until("p2", "running")
        assert board.job_load_pct == 100.0  # 25 + 90, at most the whole board
        assert board.total_load_pct == 100.0
        await eventually(lambda: d.reports[-1]["p2"]["cpu_s"] > 0, "cpu seconds counted")

        d.runner.want({"p2": sim(90)})
        stopped = await d.until("p1", "stopped")
        assert stopped["exit_code"] is None
        assert stopped["cpu_s"] > 0
        assert board.job_load_pct == 90.0
        d.runner.want({})
        await d.until("p2", "stopped")
        assert board.job_load_pct == 0.0
        assert board.load_pct == 10.0  # the background load was never touched


async def test_sim_load_cpu_seconds_follow_its_share() -> None:
    async with running_metald() as m, Driven(runner(InProcessMetalClient(m.core))) as d:
        d.runner.want({"p1": sim(50, duration_s=0.5)})
        end = await d.until("p1", "succeeded")
    assert end["reason"] == "duration_s reached"
    # 50 % of a board for 0.5 s of the agent's clock (a step may land a little late)
    assert 0.2 <= end["cpu_s"] <= 0.5
    assert m.board.job_load_pct == 0.0


async def test_the_agent_stopping_takes_its_load_off_the_board() -> None:
    async with running_metald() as m:
        async with Driven(runner(InProcessMetalClient(m.core))) as d:
            d.runner.want({"p1": sim(30)})
            await d.until("p1", "running")
            assert m.board.job_load_pct == 30.0
        assert m.board.job_load_pct == 0.0


async def test_a_board_that_is_not_simulated_refuses_sim_load() -> None:
    metal = fake_metal("linux")
    async with Driven(runner(metal)) as d:
        d.runner.want({"p1": sim(30)})
        end = await d.until("p1", "failed")
    assert end["reason"] == "sim_load runs only on a simulated board (this one is linux)"
    assert isinstance(metal, FakeMetal)
    assert metal.job_loads == []


async def test_a_job_load_left_by_an_earlier_agent_is_taken_off() -> None:
    async with running_metald() as m:
        m.board.set_job_load(35)  # its agent died while metald ran on
        async with Driven(runner(InProcessMetalClient(m.core))) as d:
            d.runner.want({})
            await eventually(lambda: m.board.job_load_pct == 0.0, "the stale job load is gone")


@pytest.mark.parametrize("backend", ["sim", "linux"])
async def test_a_board_without_sim_load_jobs_is_never_changed(backend: str) -> None:
    metal = FakeMetal(backend)
    async with Driven(runner(cast("MetalClient", metal))) as d:
        d.runner.want({"p1": py("print(1)")})
        await d.until("p1", "failed")  # not on the (empty) allow-list
        await eventually(lambda: metal.status_reads >= 1, "the runner looked once")
        d.runner.want({})
        await asyncio.sleep(0.1)
    assert metal.job_loads == []  # no write: no extra reading on a simulated board
    assert metal.status_reads == 1
