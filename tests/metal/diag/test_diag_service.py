"""Diagnostics on a simulated board: healthy runs, injected faults, history and events.

The simulator owns a ``FakeClock``; diagnostics advance it while they sample, so nothing
here sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from wrale.metal.core.engine import MetalCore
from wrale.metal.core.store import DeviceStore
from wrale.metal.diag import DiagLimits, DiagnosticsService
from wrale.metal.hw.base import FanReading, Fault, FaultKind
from wrale.metal.hw.sim import SimBoard
from wrale.shared.clock import FakeClock
from wrale.shared.config import GpioLineSettings, SimSettings
from wrale.shared.errors import InvalidRequestError, NotFoundError, UnavailableError
from wrale.shared.policy import SecurityLevel, SecurityPolicy

Result = dict[str, Any]
Boot = Callable[..., Awaitable[MetalCore]]


def pick(results: list[Result], name: str, component: str | None = None) -> Result:
    found = [r for r in results if r["name"] == name and component in (None, r["component"])]
    assert len(found) == 1, found
    return found[0]


def sim(board: SimBoard) -> Any:
    assert board.sim is not None
    return board.sim


async def test_a_healthy_board_passes_every_test(diag: DiagnosticsService) -> None:
    results = await diag.run()
    assert {r["name"] for r in results} == set(diag.names())
    not_passed = {
        (r["name"], r["component"], r["status"]) for r in results if r["status"] != "PASS"
    }
    assert not_passed == {  # a Pi 5 has no GPU sensor: nothing to judge, nothing failed
        ("sensor_range", "gpu_temp", "SKIPPED"),
        ("sensor_stuck", "gpu_temp", "SKIPPED"),
        ("sensor_agreement", "cpu_vs_gpu", "SKIPPED"),
    }
    for r in results:
        assert r["type"] in {"GPIO", "POWER", "THERMAL", "SECURITY"}
        assert r["message"]
        assert r["timestamp"] >= 1_700_000_000.0
    assert len({r["run_id"] for r in results}) == 1


async def test_a_stalled_fan_fails_spin_up_and_the_curve_takes_over_again(
    board: SimBoard, core: MetalCore, diag: DiagnosticsService
) -> None:
    sim(board).inject_fault(Fault(FaultKind.FAN_FAILURE, {"mode": "stalled"}))
    result = pick(await diag.run(["fan_spin_up"]), "fan_spin_up")
    assert result["status"] == "FAIL"
    assert "failed, stalled or is unplugged" in result["message"]
    assert result["reading"] < 300
    assert not core.current().decision.override_active


async def test_a_degraded_fan_warns_against_the_speed_learned_when_healthy(
    board: SimBoard, diag: DiagnosticsService
) -> None:
    assert pick(await diag.run(["fan_spin_up"]), "fan_spin_up")["status"] == "PASS"
    sim(board).inject_fault(Fault(FaultKind.FAN_FAILURE, {"mode": "degraded", "rpm_factor": 0.3}))
    result = pick(await diag.run(["fan_spin_up"]), "fan_spin_up")
    assert result["status"] == "WARNING"
    assert "expected about" in result["message"]


async def test_spin_up_gives_an_operator_override_back(
    core: MetalCore, diag: DiagnosticsService
) -> None:
    await core.set_fan_override(60.0, 600.0)
    await diag.run(["fan_spin_up"])
    snap = core.current()
    assert snap.decision.override_active
    assert snap.decision.fan_pct == 60.0


class _NoTach:
    """A fan whose tachometer is not wired (``rpm`` None)."""

    def __init__(self, fan: Any) -> None:
        self._fan = fan

    def read_fan(self) -> FanReading:
        return FanReading(self._fan.read_fan().duty_pct, None)

    def set_fan_duty(self, percent: float) -> None:
        self._fan.set_fan_duty(percent)


async def test_a_fan_without_tachometer_is_skipped(board: SimBoard, core: MetalCore) -> None:
    board.fan = _NoTach(board.fan)
    await core.tick()
    result = pick(await DiagnosticsService(core).run(["fan_spin_up"]), "fan_spin_up")
    assert result["status"] == "SKIPPED"
    assert "tachometer" in result["message"]


# ----------------------------------------------------------------------------- gpio


async def test_gpio_loopback_passes_when_wired(core: MetalCore, diag: DiagnosticsService) -> None:
    result = pick(await diag.run(["gpio_loopback"]), "gpio_loopback")
    assert (result["status"], result["component"], result["reading"]) == ("PASS", "out->in", "1,0")
    assert (await core.gpio_read("out")).value == 0  # restored


async def test_gpio_loopback_fails_without_the_wire(
    boot: Boot, gpio_lines: dict[str, GpioLineSettings]
) -> None:
    unwired = {n: msgspec.structs.replace(cfg, loopback_to=None) for n, cfg in gpio_lines.items()}
    core = await boot(gpio_lines=unwired)
    diag = DiagnosticsService(core, loopback_pairs={"out": "in"})
    result = pick(await diag.run(["gpio_loopback"]), "gpio_loopback")
    assert result["status"] == "FAIL"
    assert "check the loopback jumper" in result["message"]
    assert DiagnosticsService(core).loopback_pairs == {}
    skipped = pick(await DiagnosticsService(core).run(["gpio_loopback"]), "gpio_loopback")
    assert skipped["status"] == "SKIPPED"
    bad = DiagnosticsService(core, loopback_pairs={"out": "nowhere"})
    result = pick(await bad.run(["gpio_loopback"]), "gpio_loopback")
    assert result["status"] == "FAIL"
    assert "nowhere" in result["message"]


# ----------------------------------------------------------------------------- sensors


@pytest.mark.parametrize(
    ("mode", "test", "status"),
    [
        ("missing", "sensor_range", "FAIL"),
        ("range", "sensor_range", "FAIL"),
        ("stuck", "sensor_stuck", "WARNING"),
    ],
)
@pytest.mark.parametrize("sensor", ["cpu", "ambient"])
async def test_sensor_failure_modes(
    board: SimBoard,
    core: MetalCore,
    diag: DiagnosticsService,
    sensor: str,
    mode: str,
    test: str,
    status: str,
) -> None:
    sim(board).inject_fault(Fault(FaultKind.SENSOR_FAILURE, {"sensor": sensor, "mode": mode}))
    board.advance(1.0)
    await core.tick()  # the fault has lasted one sample when the run starts
    results = await diag.run()  # the fan spin-up moves the fan, so a stuck sensor shows
    assert pick(results, test, f"{sensor}_temp")["status"] == status
    others = [
        r
        for r in results
        if r["name"] == test and r["component"] != f"{sensor}_temp" and "gpu" not in r["component"]
    ]
    assert {r["status"] for r in others} == {"PASS"}


async def test_an_ambient_sensor_missing_since_boot_is_skipped_not_failed(boot: Boot) -> None:
    board = SimBoard(SimSettings(seed=1, ambient_sensor=True), clock=FakeClock())
    sim(board).inject_fault(
        Fault(FaultKind.SENSOR_FAILURE, {"sensor": "ambient", "mode": "missing"})
    )
    core = await boot(board=board)
    results = await DiagnosticsService(core).run(["sensor_range"])
    assert pick(results, "sensor_range", "ambient_temp")["status"] == "SKIPPED"


async def test_sensors_the_board_had_are_remembered_across_restarts(
    boot: Boot, tmp_path: Path
) -> None:
    path = tmp_path / "metald.db"
    healthy = await boot(path=path, started=False)
    diag = DiagnosticsService(healthy)  # built before the first sample, as metald does
    await healthy.start()
    await diag.run(["battery"])
    board = SimBoard(SimSettings(seed=2, ambient_sensor=True), clock=FakeClock())
    sim(board).inject_fault(
        Fault(FaultKind.SENSOR_FAILURE, {"sensor": "ambient", "mode": "missing"})
    )
    restarted = await boot(board=board, path=path)
    results = await DiagnosticsService(restarted).run(["sensor_range"])
    assert pick(results, "sensor_range", "ambient_temp")["status"] == "FAIL"


# ----------------------------------------------------------------------------- power and security


async def test_a_voltage_sag_fails_the_power_rail(
    board: SimBoard, diag: DiagnosticsService
) -> None:
    sim(board).inject_fault(Fault(FaultKind.VOLTAGE_SAG, {"voltage_v": 4.6}))
    results = await diag.run(["power_rail", "throttle_flags", "tamper_sensors"])
    rail = pick(results, "power_rail", "supply_voltage")
    assert rail["status"] == "FAIL"
    assert rail["reading"] < 4.8
    assert pick(results, "throttle_flags")["status"] == "WARNING"
    assert pick(results, "tamper_sensors", "voltage_monitor")["status"] == "FAIL"


async def test_main_power_loss_warns_that_the_board_runs_on_battery(
    board: SimBoard, diag: DiagnosticsService
) -> None:
    sim(board).inject_fault(Fault(FaultKind.MAIN_POWER_LOSS))
    results = await diag.run(["power_rail", "battery"])
    assert pick(results, "power_rail", "power_source")["status"] == "WARNING"
    assert pick(results, "battery")["status"] == "PASS"
    sim(board).inject_fault(Fault(FaultKind.BATTERY_FAILURE))
    assert pick(await diag.run(["battery"]), "battery")["status"] == "FAIL"


async def test_case_open_while_armed_warns(board: SimBoard, diag: DiagnosticsService) -> None:
    sim(board).inject_fault(Fault(FaultKind.CASE_OPEN))
    result = pick(await diag.run(["tamper_sensors"]), "tamper_sensors", "case_switch")
    assert result["status"] == "WARNING"
    assert result["reading"] == "open"


async def test_lockdown_skips_the_tests_that_drive_actuators(
    boot: Boot, board: SimBoard, gpio_lines: dict[str, GpioLineSettings]
) -> None:
    high = SecurityPolicy(level=SecurityLevel.HIGH)
    core = await boot(board=board, gpio_lines=gpio_lines, security=high)
    sim(board).inject_fault(Fault(FaultKind.CASE_OPEN))
    for _ in range(3):
        board.advance(1.0)
        await core.tick()
    assert core.current().security.lockdown
    results = await DiagnosticsService(core).run(["fan_spin_up", "gpio_loopback"])
    assert [r["status"] for r in results] == ["SKIPPED", "SKIPPED"]
    assert all("lockdown" in r["message"] for r in results)


# ----------------------------------------------------------------------------- the service


async def test_an_unknown_name_raises_not_found_listing_the_valid_ones(
    diag: DiagnosticsService,
) -> None:
    with pytest.raises(NotFoundError) as err:
        await diag.run(["fan_spin_up", "warp_drive"])
    assert "warp_drive" in err.value.message
    assert "gpio_loopback" in err.value.message
    assert err.value.details["valid"] == diag.names()
    with pytest.raises(InvalidRequestError):
        await diag.run([])
    assert await diag.history() == []


async def test_a_single_name_runs_that_test_only(diag: DiagnosticsService) -> None:
    results = await diag.run("battery")
    assert {r["name"] for r in results} == {"battery"}


async def test_history_is_newest_first_and_survives_a_restart(boot: Boot, tmp_path: Path) -> None:
    path = tmp_path / "metald.db"
    core = await boot(path=path)
    diag = DiagnosticsService(core, limits=DiagLimits(samples=2))
    first = await diag.run(["battery"])
    second = await diag.run(["power_rail"])
    history = await diag.history()
    assert [r["name"] for r in history] == ["power_rail"] * 3 + ["battery"]
    assert history[0]["run_id"] == second[0]["run_id"] != first[0]["run_id"]
    assert [r["name"] for r in await diag.history(limit=2)] == ["power_rail"] * 2
    with pytest.raises(InvalidRequestError):
        await diag.history(limit=0)
    core.store.close()
    reopened = DeviceStore(path)
    try:
        assert await DiagnosticsService(core, store=reopened).history() == history
    finally:
        reopened.close()


async def test_each_run_records_a_diagnostics_event(
    board: SimBoard, core: MetalCore, diag: DiagnosticsService
) -> None:
    ok = await diag.run(["battery"])
    sim(board).inject_fault(Fault(FaultKind.FAN_FAILURE, {"mode": "stalled"}))
    await diag.run(["fan_spin_up", "battery"])
    events = await core.events(types=["DIAGNOSTICS"])
    assert [e.severity.value for e in events] == ["info", "critical"]
    assert events[0].data["run_id"] == ok[0]["run_id"]
    assert events[1].data["failed"] == ["fan_spin_up"]
    assert "failed: fan_spin_up" in events[1].message


async def test_two_runs_at_once_take_turns(core: MetalCore, diag: DiagnosticsService) -> None:
    first, second = await asyncio.gather(
        diag.run(["fan_spin_up", "gpio_loopback"]), diag.run(["fan_spin_up", "gpio_loopback"])
    )
    assert {r["status"] for r in first + second} == {"PASS"}
    assert max(r["timestamp"] for r in first) <= min(r["timestamp"] for r in second)
    assert not core.current().decision.override_active


async def test_running_before_the_first_sample_is_unavailable(boot: Boot) -> None:
    core = await boot(started=False)
    with pytest.raises(UnavailableError):
        await DiagnosticsService(core).run()


def test_loopback_pairs_default_to_the_wired_gpio_lines(diag: DiagnosticsService) -> None:
    assert diag.loopback_pairs == {"out": "in"}
