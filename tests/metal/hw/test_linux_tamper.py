"""Linux tamper: case switch and PIR on GPIO lines (NC/NO, active-high/low), supply voltage,
edges latched between reads."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from gpiod.line import Bias, Direction, Edge

from tests.metal.hw.fakechip import FakeChip
from tests.metal.hw.fakesys import FakeSys
from wrale.metal.hw.base import CaseContact, MotionActive, TamperInput, TamperWiring
from wrale.metal.hw.base import Edge as EdgeKind
from wrale.metal.hw.linux import LinuxBoard
from wrale.shared.clock import FakeClock
from wrale.shared.config import GpioLineSettings

CASE, MOTION = 5, 6


@pytest.fixture
def fake(tmp_path: Path) -> FakeSys:
    return FakeSys(tmp_path)


@pytest.fixture
def chip() -> FakeChip:
    chip = FakeChip()
    chip.drive(CASE, 0)  # lid on: the switch holds the line to ground
    chip.drive(MOTION, 0)  # PIR idle
    return chip


@pytest.fixture
def board(fake: FakeSys, chip: FakeChip) -> LinuxBoard:
    return fake.board(chip=chip, case_switch_line=CASE, motion_line=MOTION)


def test_lines_are_pulled_up_inputs_watching_both_edges(board: LinuxBoard, chip: FakeChip) -> None:
    for line in (CASE, MOTION):
        settings = chip.settings(line)
        assert settings.direction is Direction.INPUT
        assert settings.bias is Bias.PULL_UP
        assert settings.edge_detection is Edge.BOTH


def test_closed_case_quiet_room_normal_voltage(board: LinuxBoard) -> None:
    reading = board.tamper.read_tamper()
    assert reading.case_open is False
    assert reading.motion_detected is False
    assert reading.voltage_normal is True
    assert dict(reading.transitions) == {
        TamperInput.CASE: 0,
        TamperInput.MOTION: 0,
        TamperInput.VOLTAGE: 0,
    }


def test_case_opened_and_closed_between_reads_is_not_missed(
    board: LinuxBoard, chip: FakeChip
) -> None:
    board.tamper.read_tamper()
    chip.drive(CASE, 1)
    chip.drive(CASE, 0)
    chip.drive(MOTION, 1)
    reading = board.tamper.read_tamper()
    assert reading.case_open is False
    assert reading.transitions[TamperInput.CASE] == 2
    assert reading.motion_detected is True
    assert reading.transitions[TamperInput.MOTION] == 1
    assert board.tamper.read_tamper().transitions[TamperInput.CASE] == 0


def test_a_cut_case_wire_reads_open(fake: FakeSys) -> None:
    board = fake.board(chip=FakeChip(), case_switch_line=CASE)  # nothing holds the line down
    assert board.tamper.read_tamper().case_open is True


def test_tamper_edges_still_reach_the_gpio_event_stream(board: LinuxBoard, chip: FakeChip) -> None:
    chip.drive(CASE, 1)
    board.tamper.read_tamper()
    events = board.gpio.drain_edge_events()
    assert [(e.line, e.kind) for e in events] == [(CASE, EdgeKind.RISING)]


def test_voltage_from_get_throttled_and_its_changes(board: LinuxBoard, fake: FakeSys) -> None:
    board.tamper.read_tamper()
    fake.set_throttled(0x50005)
    reading = board.tamper.read_tamper()
    assert reading.voltage_normal is False
    assert reading.transitions[TamperInput.VOLTAGE] == 1
    assert board.tamper.read_tamper().transitions[TamperInput.VOLTAGE] == 0
    fake.set_throttled(0x50000)  # only "has occurred": normal now
    assert board.tamper.read_tamper().voltage_normal is True


def test_voltage_from_rpi_volt_alone(tmp_path: Path) -> None:
    fake = FakeSys(tmp_path, get_throttled=None)
    board = fake.board()
    assert board.tamper.read_tamper().voltage_normal is True
    fake.set_undervoltage_alarm(True)
    assert board.tamper.read_tamper().voltage_normal is False


def test_a_board_without_tamper_sensors(tmp_path: Path) -> None:
    board = FakeSys(tmp_path, get_throttled=None, rpi_volt=False).board()
    reading = board.tamper.read_tamper()
    assert (reading.case_open, reading.motion_detected, reading.voltage_normal) == (None,) * 3
    assert dict(reading.transitions) == {}


def test_operator_line_settings_win(fake: FakeSys, chip: FakeChip) -> None:
    lines = {"pir": GpioLineSettings(line=MOTION, pull="down", edge="rising")}
    fake.board(chip=chip, motion_line=MOTION, gpio_lines=lines)
    assert chip.settings(MOTION).bias is Bias.PULL_DOWN
    assert chip.settings(MOTION).edge_detection is Edge.RISING


def test_a_busy_line_is_retried_every_30_s(fake: FakeSys, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="wrale.metal.hw.linux")
    clock = FakeClock()
    chip = FakeChip(busy=[CASE])
    board = fake.board(chip=chip, clock=clock, case_switch_line=CASE)
    assert board.tamper.read_tamper().case_open is None
    chip.busy.clear()
    clock.advance(29)
    assert board.tamper.read_tamper().case_open is None
    clock.advance(1)
    assert board.tamper.read_tamper().case_open is True
    messages = [r.getMessage() for r in caplog.records if "tamper case" in r.getMessage()]
    assert len(messages) == 2
    assert "in use" in messages[0]
    assert "recovered" in messages[1]


def wired_board(fake: FakeSys, chip: FakeChip, wiring: TamperWiring) -> LinuxBoard:
    return LinuxBoard(
        fake.paths(case_switch_line=CASE, motion_line=MOTION),
        clock=FakeClock(),
        gpio=fake.gpio(chip),
        tamper_wiring=wiring,
    )


def test_a_normally_open_case_switch_reads_open_when_its_line_falls(fake: FakeSys) -> None:
    chip = FakeChip()  # NO contact to GND: open while the lid is on, so the line floats up
    board = wired_board(fake, chip, TamperWiring(case_contact=CaseContact.NO))
    assert chip.settings(CASE).bias is Bias.PULL_UP
    assert board.tamper.read_tamper().case_open is False
    chip.drive(CASE, 0)  # lid off: the contact closes to ground
    reading = board.tamper.read_tamper()
    assert reading.case_open is True
    assert reading.transitions[TamperInput.CASE] == 1


def test_an_active_low_pir_reads_motion_when_its_line_falls(fake: FakeSys) -> None:
    chip = FakeChip()
    chip.drive(CASE, 0)
    board = wired_board(fake, chip, TamperWiring(motion_active=MotionActive.LOW))
    assert chip.settings(MOTION).bias is Bias.PULL_UP  # the open drain needs it
    assert board.tamper.read_tamper().motion_detected is False  # idle: released, pulled up
    chip.drive(MOTION, 0)
    assert board.tamper.read_tamper().motion_detected is True
    chip.drive(MOTION, 1)
    assert board.tamper.read_tamper().motion_detected is False


def test_the_default_wiring_is_a_normally_closed_switch_and_an_active_high_pir(
    board: LinuxBoard, chip: FakeChip
) -> None:
    chip.drive(CASE, 1)
    chip.drive(MOTION, 1)
    reading = board.tamper.read_tamper()
    assert (reading.case_open, reading.motion_detected) == (True, True)
