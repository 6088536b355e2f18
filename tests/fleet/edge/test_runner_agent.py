"""Jobs through the whole agent over the in-memory transport: the desired ``jobs``
section reaches the runner, each placement comes back in the reported document (a stopped
one once, then dropped), ``sim_load`` moves the simulated board, a malformed section is
rejected with the reason, SAFE mode runs no jobs, and a restarted agent runs the still
desired placements again.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.fleet.edge.jobkit import ALLOW, py, sim
from tests.fleet.edge.kit import Device, FakeCentral, eventually
from wrale.fleet.edge.agent import Mode
from wrale.fleet.sync.protocol import Command, Desired

LONG = "import os, time; print('pid', os.getpid(), flush=True); time.sleep(120)"


@pytest.fixture
async def central() -> FakeCentral:
    return FakeCentral()


@pytest.fixture
async def device(tmp_path: Path, central: FakeCentral) -> AsyncIterator[Device]:
    d = Device(tmp_path, central, job_allow=[list(p) for p in ALLOW], job_report_s=0.05)
    await d.start_metal()
    yield d
    await d.aclose()


def reported_jobs(central: FakeCentral) -> dict[str, Any]:
    r = central.latest_reported()
    return dict(r.doc.get("jobs", {})) if r is not None else {}


def job_state(central: FakeCentral, placement: str) -> str | None:
    return reported_jobs(central).get(placement, {}).get("state")


async def test_desired_jobs_run_and_come_back_in_the_reported_document(
    device: Device, central: FakeCentral
) -> None:
    await device.start_agent()
    await central.push(
        Desired(
            1,
            {
                "jobs": {
                    "p_ok": py("print('hello from the board')"),
                    "p_sim": sim(30),
                    "p_sh": {"workload": {"kind": "process", "argv": ["/bin/sh", "-c", "id"]}},
                }
            },
        )
    )
    await eventually(lambda: job_state(central, "p_ok") == "succeeded", "p_ok succeeded")
    await eventually(lambda: job_state(central, "p_sim") == "running", "p_sim running")
    jobs = reported_jobs(central)
    assert "hello from the board" in jobs["p_ok"]["output_tail"]
    assert jobs["p_ok"]["exit_code"] == 0
    assert jobs["p_sh"]["state"] == "failed"
    assert jobs["p_sh"]["reason"] == "argv not allowed by this board: /bin/sh -c id"
    assert device.board.job_load_pct == 30.0
    last = central.latest_reported()
    assert last is not None
    assert last.applied_desired_version == 1
    assert last.rejected == {}

    # Removed from desired: p_sim is stopped, reported once as such, then dropped; the
    # finished ones are forgotten.
    await central.push(Desired(2, {"jobs": {}}))
    await eventually(
        lambda: any(
            r.doc["jobs"].get("p_sim", {}).get("state") == "stopped" for r in central.reported
        ),
        "p_sim reported stopped",
    )
    await eventually(lambda: reported_jobs(central) == {}, "the jobs section empties")
    assert device.board.job_load_pct == 0.0


async def test_a_malformed_jobs_section_is_rejected_with_the_reason(
    device: Device, central: FakeCentral
) -> None:
    await device.start_agent()
    await central.push(Desired(1, {"jobs": ["p1"], "config": {"note": "x"}}))

    def rejected() -> bool:
        r = central.latest_reported()
        return r is not None and r.applied_desired_version == 1 and "jobs" in r.rejected

    await eventually(rejected, "jobs rejected")
    r = central.latest_reported()
    assert r is not None
    assert r.rejected == {"jobs": "jobs must be an object"}
    assert r.doc["config"] == {"note": "x"}  # the rest applied


async def test_safe_mode_runs_no_jobs_and_leaving_it_runs_them_again(
    device: Device, central: FakeCentral
) -> None:
    await device.start_agent()
    await central.push(Desired(1, {"jobs": {"p1": py(LONG)}}))
    await eventually(lambda: job_state(central, "p1") == "running", "p1 running")
    await central.push(Command("c1", "safe_mode", {"on": True}, time.time() + 60))
    await eventually(lambda: job_state(central, "p1") is None, "p1 stopped and dropped")
    assert any(r.doc["jobs"].get("p1", {}).get("state") == "stopped" for r in central.reported)
    assert device.agent is not None
    assert device.agent.mode is Mode.SAFE
    await central.push(Command("c2", "safe_mode", {"on": False}, time.time() + 60))
    await eventually(lambda: job_state(central, "p1") == "running", "p1 running again")


async def test_a_restarted_agent_runs_the_desired_placements_again(
    device: Device, central: FakeCentral
) -> None:
    await device.start_agent()
    await central.push(Desired(1, {"jobs": {"p1": py(LONG), "p_done": py("print('once')")}}))

    def pid() -> str | None:
        tail = reported_jobs(central).get("p1", {}).get("output_tail", "")
        return tail.split()[1] if tail.startswith("pid ") else None

    await eventually(lambda: pid() is not None, "p1 printed its pid")
    await eventually(lambda: job_state(central, "p_done") == "succeeded", "p_done succeeded")
    first = pid()
    await device.stop_agent()  # a clean stop ends its jobs
    central.reported.clear()
    await device.start_agent()
    await eventually(lambda: pid() not in (None, first), "p1 runs again in a new process")
    jobs = reported_jobs(central)
    assert jobs["p1"]["state"] == "running"
    assert jobs["p_done"]["state"] == "succeeded"  # restored, not run again
    assert jobs["p_done"]["output_tail"] == "once\n"
