"""CommandRunner on a simulated board: arguments checked again on the device, SAFE mode,
deadlines, and the power actions (in-process restart, a host command, refusal)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from wrale.fleet.edge.commands import (
    SAFE_OPS,
    CommandPower,
    CommandRunner,
    InProcessPower,
    RefusePower,
)
from wrale.fleet.sync.protocol import Command
from wrale.metal.core.client import InProcessMetalClient
from wrale.metal.core.engine import MetalCore
from wrale.metal.core.store import DeviceStore
from wrale.metal.hw.sim import SimBoard
from wrale.shared.clock import FakeClock


@pytest.fixture
async def metal(sim_board: SimBoard) -> InProcessMetalClient:
    core = MetalCore(sim_board, store=DeviceStore(":memory:"), clock=sim_board.clock)
    await core.start()
    return InProcessMetalClient(core)


class Modes:
    def __init__(self) -> None:
        self.calls: list[bool] = []

    async def __call__(self, on: bool) -> str:
        self.calls.append(on)
        return f"safe {on}"


def cmd(op: str, args: dict[str, Any] | None = None, deadline: float = 2e9) -> Command:
    return Command(f"id-{op}", op, args or {}, deadline)


async def test_operations_run_through_metal(metal: InProcessMetalClient) -> None:
    clock = FakeClock()
    runner = CommandRunner(metal, RefusePower(), clock, Modes())
    r = await runner.run(cmd("set_fan", {"percent": 65, "duration_s": 30}), "normal")
    assert (r.status, r.result["fan_percent"]) == ("succeeded", 65.0)
    r = await runner.run(cmd("set_throttle", {"max_freq_pct": 50}), "normal")
    # a simulated Pi 5 cannot run below 1.5 of 2.4 GHz: the cap applied, and reported, is 62.5 %
    assert (r.status, r.result["max_freq_pct"]) == ("succeeded", 62.5)
    r = await runner.run(cmd("set_throttle", {"max_freq_pct": 80}), "normal")
    assert (r.status, r.result["max_freq_pct"]) == ("succeeded", 80.0)
    r = await runner.run(cmd("arm", {"level": "high"}), "normal")
    assert (r.status, r.reason) == ("succeeded", "armed at high")
    r = await runner.run(
        cmd("sim_fault", {"fault": "fan_failure", "params": {"mode": "stalled"}}), "normal"
    )
    assert r.status == "succeeded"
    assert r.result["sim"]["active_faults"][0]["fault"] == "fan_failure"
    r = await runner.run(cmd("sim_ambient", {"celsius": 35}), "normal")
    assert r.status == "succeeded"


@pytest.mark.parametrize(
    ("op", "args", "reason"),
    [
        ("set_fan", {}, "percent is required"),
        ("set_fan", {"percent": True}, "must be a number"),
        ("set_fan", {"percent": 50, "rpm": 3}, "unknown argument"),
        ("set_throttle", {"max_freq_pct": 10}, "between 40 and 100"),
        ("arm", {"level": "extreme"}, "level must be"),
        ("safe_mode", {"on": "yes"}, "true or false"),
        ("run_diag", {"tests": "all"}, "list of test names"),
        ("sim_fault", {"fault": "gremlins"}, "fault"),
        ("teleport", {}, "unknown operation"),
        ("reboot", {}, "not enabled"),
    ],
)
async def test_bad_commands_are_refused_with_a_reason(
    metal: InProcessMetalClient, op: str, args: dict[str, Any], reason: str
) -> None:
    r = await CommandRunner(metal, RefusePower(), FakeClock(), Modes()).run(cmd(op, args), "normal")
    assert r.status == "refused"
    assert reason in r.reason


async def test_an_expired_command_does_not_run(metal: InProcessMetalClient) -> None:
    clock = FakeClock()
    runner = CommandRunner(metal, RefusePower(), clock, Modes())
    r = await runner.run(cmd("set_fan", {"percent": 90}, deadline=clock.now() - 1), "normal")
    assert (r.status, r.reason) == ("failed", "expired")
    assert (await metal.thermal())["override"] is None


async def test_safe_mode_runs_only_safety_operations(metal: InProcessMetalClient) -> None:
    modes = Modes()
    runner = CommandRunner(metal, RefusePower(), FakeClock(), modes)
    for op in ("set_fan", "disarm", "reboot", "sim_load", "sim_fault"):
        r = await runner.run(cmd(op), "safe")
        assert r.status == "refused"
        assert "SAFE" in r.reason
    r = await runner.run(cmd("set_throttle", {"max_freq_pct": None}), "safe")
    assert r.status == "refused"  # lifting a cap is not a safety operation
    r = await runner.run(cmd("set_throttle", {"max_freq_pct": 60}), "safe")
    assert r.status == "succeeded"
    r = await runner.run(cmd("safe_mode", {"on": False}), "safe")
    assert r.status == "succeeded"
    assert modes.calls == [False]
    assert "safe_mode" in SAFE_OPS


async def test_power_actions_answer_first_then_act(tmp_path: Path) -> None:
    done: list[str] = []
    power = InProcessPower(FakeClock(), lambda: done.append("reboot"), lambda: done.append("halt"))
    assert await power.reboot(0) == "simulated reboot in 0 s"
    assert done == []  # the result leaves before the board goes down
    marker = tmp_path / "rebooted"
    host = CommandPower(("touch", str(marker)), ("false",), FakeClock())
    assert "touch" in await host.reboot(5)
    for _ in range(500):
        if marker.exists() and done:
            break
        await asyncio.sleep(0.01)
    assert marker.exists()
    assert done == ["reboot"]
