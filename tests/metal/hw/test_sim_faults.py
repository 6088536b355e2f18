"""Fault injection on the simulated board: validation, effects, durations and clearing.

Every ``FaultKind`` of the hardware contract is injected at least once here.
"""

from __future__ import annotations

from typing import Any

import pytest

from wrale.metal.hw.base import Fault, FaultKind
from wrale.metal.hw.sim import SimBoard
from wrale.shared.config import SimSettings
from wrale.shared.errors import InvalidRequestError

BAD_FAULTS: list[tuple[Fault, str]] = [
    (Fault(FaultKind.FAN_FAILURE, {"mode": "exploded"}), "mode must be one of"),
    (Fault(FaultKind.FAN_FAILURE, {"mode": "degraded", "rpm_factor": 1.5}), "rpm_factor"),
    (Fault(FaultKind.HEAT_SPIKE, {"watts": -1}), "watts"),
    (Fault(FaultKind.HEAT_SPIKE, {"watts": "lots"}), "must be a number"),
    (Fault(FaultKind.AMBIENT_CHANGE), "celsius is required"),
    (Fault(FaultKind.AMBIENT_CHANGE, {"celsius": 120}), "between -40 and 80"),
    (Fault(FaultKind.VOLTAGE_SAG, {"voltage_v": 9}), "voltage_v"),
    (Fault(FaultKind.SENSOR_FAILURE, {"sensor": "disk"}), "sensor must be one of"),
    (Fault(FaultKind.SENSOR_FAILURE, {"mode": "melted"}), "mode must be one of"),
    (Fault(FaultKind.SENSOR_FAILURE, {"mode": "range", "value_c": 50}), "outside"),
    (Fault(FaultKind.SENSOR_FAILURE, {"mode": "missing", "value_c": 50}), "no value_c"),
    (Fault(FaultKind.CASE_OPEN, {"sevrity": 3}), "unknown parameter"),
    (Fault(FaultKind.MOTION, duration_s=0), "positive"),
    (Fault(FaultKind.MOTION, duration_s=-5), "duration_s"),
    (Fault(FaultKind.MOTION, {"duration_s": 3}, duration_s=4), "given twice"),
    (Fault("earthquake", {}), "unknown fault kind"),  # type: ignore[arg-type]
    (Fault(FaultKind.CASE_OPEN, None), "params must be a mapping"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(("fault", "message"), BAD_FAULTS)
def test_bad_faults_are_refused_with_a_clear_message(
    sim_board: SimBoard, fault: Fault, message: str
) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        sim_board.inject_fault(fault)
    assert sim_board.active_faults() == []


def test_defaults_are_filled_in(sim_board: SimBoard) -> None:
    sim_board.inject_fault(Fault(FaultKind.FAN_FAILURE))
    sim_board.inject_fault(Fault(FaultKind.HEAT_SPIKE))
    sim_board.inject_fault(Fault(FaultKind.MOTION))
    sim_board.inject_fault(Fault(FaultKind.VOLTAGE_SAG))
    sim_board.inject_fault(Fault(FaultKind.SENSOR_FAILURE, {"mode": "range"}))
    assert sim_board.active_faults() == [
        Fault(FaultKind.FAN_FAILURE, {"mode": "stalled", "rpm_factor": 0.3}),
        Fault(FaultKind.HEAT_SPIKE, {"watts": 5.0}, duration_s=60.0),
        Fault(FaultKind.MOTION, {}, duration_s=5.0),
        Fault(FaultKind.VOLTAGE_SAG, {"voltage_v": 4.6}),
        Fault(FaultKind.SENSOR_FAILURE, {"sensor": "cpu", "mode": "range", "value_c": -273.15}),
    ]


def test_kind_may_be_given_as_its_name(sim_board: SimBoard) -> None:
    sim_board.inject_fault(Fault("case_open"))  # type: ignore[arg-type]
    assert sim_board.active_faults()[0].kind is FaultKind.CASE_OPEN
    assert sim_board.clear_faults("case_open") == 1  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError):
        sim_board.clear_faults("flood")  # type: ignore[arg-type]


def test_faults_end_by_themselves_in_sim_time(sim_board: SimBoard) -> None:
    sim_board.inject_fault(Fault(FaultKind.CASE_OPEN, duration_s=10))
    sim_board.advance(9.9)
    assert sim_board.tamper.read_tamper().case_open
    assert sim_board.status()["faults"][0]["remaining_s"] == pytest.approx(0.1)
    sim_board.advance(0.2)
    assert not sim_board.tamper.read_tamper().case_open
    assert sim_board.active_faults() == []


def test_faults_end_on_time_within_one_long_advance(sim_board: SimBoard) -> None:
    sim_board.inject_fault(Fault(FaultKind.HEAT_SPIKE, {"watts": 20.0}, duration_s=30))
    sim_board.advance(3600)
    assert sim_board.active_faults() == []
    quiet = SimBoard(SimSettings(seed=1))
    quiet.advance(3600)
    # 20 W for 30 s heated the board, but an hour later nothing of it is left
    assert sim_board.soc_temp_c == pytest.approx(quiet.soc_temp_c, abs=0.01)


def test_clear_faults_counts_what_ended(sim_board: SimBoard) -> None:
    assert sim_board.clear_faults() == 0
    sim_board.inject_fault(Fault(FaultKind.CASE_OPEN))
    sim_board.inject_fault(Fault(FaultKind.MOTION, duration_s=100))
    sim_board.inject_fault(Fault(FaultKind.MOTION, duration_s=100))
    assert sim_board.clear_faults(FaultKind.FAN_FAILURE) == 0
    assert sim_board.clear_faults(FaultKind.MOTION) == 2
    assert [f.kind for f in sim_board.active_faults()] == [FaultKind.CASE_OPEN]
    assert sim_board.clear_faults() == 1


def test_heat_spike_adds_watts_for_its_duration() -> None:
    board = SimBoard(SimSettings(seed=1, noise=False))
    before_w = board.power.read_power().power_w
    assert before_w is not None
    before_c = board.soc_temp_c
    # 4 W: with 8 W the die passes 80 °C within the minute and the firmware throttles
    board.inject_fault(Fault(FaultKind.HEAT_SPIKE, {"watts": 4.0}))
    assert board.power.read_power().power_w == pytest.approx(before_w + 4.0)
    board.advance(59)
    assert board.soc_temp_c > before_c + 10
    board.advance(2)
    assert board.power.read_power().power_w == pytest.approx(before_w)


def test_heat_spikes_add_up(sim_board: SimBoard) -> None:
    sim_board.inject_fault(Fault(FaultKind.HEAT_SPIKE, {"watts": 2.0}))
    sim_board.inject_fault(Fault(FaultKind.HEAT_SPIKE, {"watts": 3.0}))
    assert sim_board.power.read_power().power_w == pytest.approx(3.13 + 5.0)


def test_ambient_change_without_duration_sets_the_room(sim_board: SimBoard) -> None:
    sim_board.inject_fault(Fault(FaultKind.AMBIENT_CHANGE, {"celsius": 40}))
    assert sim_board.ambient_c == 40.0
    assert sim_board.active_faults() == []


def test_timed_ambient_change_reverts(sim_board: SimBoard) -> None:
    sim_board.inject_fault(Fault(FaultKind.AMBIENT_CHANGE, {"celsius": 40}, duration_s=600))
    assert sim_board.ambient_c == 40.0
    sim_board.set_ambient(20)  # the room behind the heat wave
    assert sim_board.ambient_c == 40.0
    sim_board.advance(601)
    assert sim_board.ambient_c == 20.0


@pytest.mark.parametrize("sensor", ["cpu", "ambient"])
def test_missing_sensor_reads_none(sensor: str) -> None:
    board = SimBoard(SimSettings(seed=1, ambient_sensor=True))  # an ambient HAT
    board.inject_fault(Fault(FaultKind.SENSOR_FAILURE, {"sensor": sensor, "mode": "missing"}))
    reading = board.thermal.read_thermal()
    values = {"cpu": reading.cpu_temp_c, "ambient": reading.ambient_temp_c}
    assert values.pop(sensor) is None
    assert all(v is not None for v in values.values())
    assert reading.gpu_temp_c is None  # a Pi 5 has no GPU sensor
    board.clear_faults()
    assert None not in (board.thermal.read_thermal().cpu_temp_c,)


@pytest.mark.parametrize(
    ("board", "fault", "says"),
    [
        (
            SimBoard(SimSettings(seed=1)),
            Fault(FaultKind.SENSOR_FAILURE, {"sensor": "gpu", "mode": "missing"}),
            "no gpu sensor",
        ),
        (
            SimBoard(SimSettings(seed=1)),
            Fault(FaultKind.SENSOR_FAILURE, {"sensor": "ambient", "mode": "stuck"}),
            "no ambient sensor",
        ),
        (
            SimBoard(SimSettings(seed=1, active_cooler=False)),
            Fault(FaultKind.FAN_FAILURE, {"mode": "stalled"}),
            "no fan",
        ),
    ],
    ids=["gpu", "ambient-without-hat", "fan-without-cooler"],
)
def test_faults_on_parts_the_board_lacks_are_refused(
    board: SimBoard, fault: Fault, says: str
) -> None:
    with pytest.raises(InvalidRequestError, match=says):
        board.inject_fault(fault)
    assert board.active_faults() == []


def test_out_of_range_sensor(sim_board: SimBoard) -> None:
    sim_board.inject_fault(Fault(FaultKind.SENSOR_FAILURE, {"sensor": "cpu", "mode": "range"}))
    assert sim_board.thermal.read_thermal().cpu_temp_c == -273.15
    sim_board.inject_fault(
        Fault(FaultKind.SENSOR_FAILURE, {"sensor": "cpu", "mode": "range", "value_c": 212})
    )
    assert sim_board.thermal.read_thermal().cpu_temp_c == 212.0


def test_stuck_sensor_keeps_its_last_reading(sim_board: SimBoard) -> None:
    sim_board.inject_fault(Fault(FaultKind.SENSOR_FAILURE, {"sensor": "cpu", "mode": "stuck"}))
    stuck = sim_board.thermal.read_thermal().cpu_temp_c
    assert stuck == pytest.approx(sim_board.soc_temp_c, abs=0.2)
    sim_board.set_load(100)
    sim_board.advance(600)
    assert sim_board.soc_temp_c > stuck + 10  # type: ignore[operator]
    assert sim_board.thermal.read_thermal().cpu_temp_c == stuck


def test_status_reports_the_physics(sim_board: SimBoard) -> None:
    sim_board.inject_fault(Fault(FaultKind.CASE_OPEN))
    status: dict[str, Any] = sim_board.status()
    assert status["load_pct"] == 10.0
    assert status["ambient_c"] == 25.0
    assert status["battery_wh"] == 20.0
    assert status["battery_pct"] == 100.0
    assert status["shutdown_requests"] == []
    assert status["faults"] == [
        {"kind": "case_open", "params": {}, "duration_s": None, "remaining_s": None}
    ]
    assert 40 < status["soc_temp_c"] < 60


@pytest.mark.parametrize(
    ("setter", "value"),
    [
        ("set_load", -1),
        ("set_load", 100.5),
        ("set_load", float("nan")),
        ("set_ambient", -41),
        ("set_ambient", 81),
        ("set_ambient", "warm"),
    ],
)
def test_set_load_and_ambient_are_validated(sim_board: SimBoard, setter: str, value: Any) -> None:
    with pytest.raises(InvalidRequestError):
        getattr(sim_board, setter)(value)


def test_load_and_ambient_are_readable(sim_board: SimBoard) -> None:
    sim_board.set_load(55)
    sim_board.set_ambient(-10)
    assert (sim_board.load_pct, sim_board.ambient_c) == (55.0, -10.0)
