"""Tamper inputs of the simulated board: case switch, PIR motion and the voltage monitor.

Transitions are latched between reads so that an opening shorter than a sample is seen; the
NC/NO case switch and active-high/low PIR wiring give the line levels a real board would read.
"""

from __future__ import annotations

from wrale.metal.hw.base import (
    CaseContact,
    Fault,
    FaultKind,
    MotionActive,
    TamperInput,
    TamperWiring,
)
from wrale.metal.hw.sim import SimBoard
from wrale.metal.hw.sim.tamper import SimTamper

NONE = {TamperInput.CASE: 0, TamperInput.MOTION: 0, TamperInput.VOLTAGE: 0}


def test_quiet_board(sim_board: SimBoard) -> None:
    reading = sim_board.tamper.read_tamper()
    assert (reading.case_open, reading.motion_detected, reading.voltage_normal) == (
        False,
        False,
        True,
    )
    assert reading.transitions == NONE


def test_case_open_until_cleared_and_transitions_latch(sim_board: SimBoard) -> None:
    sim_board.inject_fault(Fault(FaultKind.CASE_OPEN))
    first = sim_board.tamper.read_tamper()
    assert first.case_open
    assert first.transitions[TamperInput.CASE] == 1
    sim_board.advance(3600)
    second = sim_board.tamper.read_tamper()
    assert second.case_open
    assert second.transitions == NONE
    sim_board.clear_faults(FaultKind.CASE_OPEN)
    third = sim_board.tamper.read_tamper()
    assert not third.case_open
    assert third.transitions[TamperInput.CASE] == 1


def test_an_opening_between_two_reads_is_not_missed(sim_board: SimBoard) -> None:
    sim_board.tamper.read_tamper()
    sim_board.inject_fault(Fault(FaultKind.CASE_OPEN, duration_s=0.2))
    sim_board.advance(1.0)
    reading = sim_board.tamper.read_tamper()
    assert not reading.case_open
    assert reading.transitions[TamperInput.CASE] == 2


def test_motion_lasts_five_seconds_by_default(sim_board: SimBoard) -> None:
    sim_board.inject_fault(Fault(FaultKind.MOTION))
    sim_board.advance(4.9)
    assert sim_board.tamper.read_tamper().motion_detected
    sim_board.advance(0.2)
    reading = sim_board.tamper.read_tamper()
    assert not reading.motion_detected
    assert reading.transitions[TamperInput.MOTION] == 1  # the rise was read already


def test_motion_with_its_own_duration_or_cleared_early(sim_board: SimBoard) -> None:
    sim_board.inject_fault(Fault(FaultKind.MOTION, {"duration_s": 30}))
    sim_board.advance(20)
    assert sim_board.tamper.read_tamper().motion_detected
    assert sim_board.clear_faults(FaultKind.MOTION) == 1
    assert not sim_board.tamper.read_tamper().motion_detected


def test_voltage_monitor_follows_the_rail(sim_board: SimBoard) -> None:
    sim_board.inject_fault(Fault(FaultKind.VOLTAGE_SAG, {"voltage_v": 4.5}))
    low = sim_board.tamper.read_tamper()
    assert low.voltage_normal is False
    assert low.transitions[TamperInput.VOLTAGE] == 1
    sim_board.clear_faults()
    ok = sim_board.tamper.read_tamper()
    assert ok.voltage_normal is True
    assert ok.transitions[TamperInput.VOLTAGE] == 1


def test_switching_to_battery_keeps_the_voltage_normal(sim_board: SimBoard) -> None:
    sim_board.inject_fault(Fault(FaultKind.MAIN_POWER_LOSS))
    reading = sim_board.tamper.read_tamper()
    assert reading.voltage_normal is True
    assert reading.transitions == NONE


def test_a_normally_closed_case_switch_reads_low_while_shut() -> None:
    board = SimBoard(tamper_wiring=TamperWiring())  # nc, the default
    tamper = board.tamper
    assert isinstance(tamper, SimTamper)
    assert tamper.line_level(TamperInput.CASE) == 0
    board.inject_fault(Fault(FaultKind.CASE_OPEN))
    assert tamper.line_level(TamperInput.CASE) == 1
    assert board.tamper.read_tamper().case_open is True


def test_a_normally_open_case_switch_reads_high_while_shut_and_still_decodes() -> None:
    board = SimBoard(tamper_wiring=TamperWiring(case_contact=CaseContact.NO))
    tamper = board.tamper
    assert isinstance(tamper, SimTamper)
    assert tamper.line_level(TamperInput.CASE) == 1
    assert board.tamper.read_tamper().case_open is False
    board.inject_fault(Fault(FaultKind.CASE_OPEN))
    assert tamper.line_level(TamperInput.CASE) == 0
    reading = board.tamper.read_tamper()
    assert reading.case_open is True
    assert reading.transitions[TamperInput.CASE] == 1


def test_an_active_low_pir_reads_low_on_motion() -> None:
    board = SimBoard(tamper_wiring=TamperWiring(motion_active=MotionActive.LOW))
    tamper = board.tamper
    assert isinstance(tamper, SimTamper)
    assert tamper.line_level(TamperInput.MOTION) == 1  # idle: the open drain lets go
    assert board.tamper.read_tamper().motion_detected is False
    board.inject_fault(Fault(FaultKind.MOTION))
    assert tamper.line_level(TamperInput.MOTION) == 0
    assert board.tamper.read_tamper().motion_detected is True
    board.advance(6)  # five seconds by default
    assert tamper.line_level(TamperInput.MOTION) == 1
    assert board.tamper.read_tamper().motion_detected is False
