"""The tamper contract on both backends and every wiring: the same physical events (lid off,
someone walks by) read the same on the simulator and on a Linux board over a fake chip.

On the Linux side the events are the levels the wires put on the pins: the case switch goes
to GND (contact closed: 0, open: released to the pull-up, 1), the PIR drives its output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.metal.hw.fakechip import FakeChip
from tests.metal.hw.fakesys import FakeSys
from wrale.metal.hw.base import (
    Board,
    CaseContact,
    Fault,
    FaultKind,
    MotionActive,
    TamperInput,
    TamperWiring,
)
from wrale.metal.hw.linux import LinuxBoard
from wrale.metal.hw.sim import SimBoard
from wrale.shared.clock import FakeClock

CASE, MOTION = 5, 6
WIRINGS = [
    TamperWiring(),
    TamperWiring(CaseContact.NO, MotionActive.HIGH),
    TamperWiring(CaseContact.NC, MotionActive.LOW),
    TamperWiring(CaseContact.NO, MotionActive.LOW),
]


@dataclass
class Rig:
    board: Board
    lid_off: Callable[[bool], None]
    someone_there: Callable[[bool], None]


def sim_rig(wiring: TamperWiring) -> Rig:
    board = SimBoard(clock=FakeClock(), tamper_wiring=wiring)

    def lid_off(off: bool) -> None:
        if off:
            board.inject_fault(Fault(FaultKind.CASE_OPEN))
        else:
            board.clear_faults(FaultKind.CASE_OPEN)

    def someone_there(there: bool) -> None:
        if there:
            board.inject_fault(Fault(FaultKind.MOTION, {"duration_s": 60}))
        else:
            board.clear_faults(FaultKind.MOTION)

    return Rig(board, lid_off, someone_there)


def linux_rig(wiring: TamperWiring, tmp_path: Path) -> Rig:
    chip = FakeChip()
    fake = FakeSys(tmp_path)

    def lid_off(off: bool) -> None:
        closed = off is (wiring.case_contact is CaseContact.NO)  # NC opens, NO closes
        chip.drive(CASE, 0 if closed else 1)

    def someone_there(there: bool) -> None:
        chip.drive(MOTION, int(there is (wiring.motion_active is MotionActive.HIGH)))

    lid_off(False)
    someone_there(False)
    board = LinuxBoard(
        fake.paths(case_switch_line=CASE, motion_line=MOTION),
        clock=FakeClock(),
        gpio=fake.gpio(chip),
        tamper_wiring=wiring,
    )
    return Rig(board, lid_off, someone_there)


@pytest.fixture(params=["sim", "linux"])
def make_rig(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[TamperWiring], Rig]]:
    made: list[Rig] = []

    def make(wiring: TamperWiring) -> Rig:
        rig = sim_rig(wiring) if request.param == "sim" else linux_rig(wiring, tmp_path)
        made.append(rig)
        return rig

    yield make
    for rig in made:
        rig.board.close()


@pytest.mark.parametrize("wiring", WIRINGS, ids=lambda w: f"{w.case_contact}-{w.motion_active}")
def test_lid_and_motion_read_the_same_on_every_backend(
    make_rig: Callable[[TamperWiring], Rig], wiring: TamperWiring
) -> None:
    rig = make_rig(wiring)
    quiet = rig.board.tamper.read_tamper()
    assert (quiet.case_open, quiet.motion_detected) == (False, False)
    rig.lid_off(True)
    rig.someone_there(True)
    alarm = rig.board.tamper.read_tamper()
    assert (alarm.case_open, alarm.motion_detected) == (True, True)
    assert alarm.transitions[TamperInput.CASE] == 1
    assert alarm.transitions[TamperInput.MOTION] == 1
    rig.lid_off(False)
    rig.someone_there(False)
    back = rig.board.tamper.read_tamper()
    assert (back.case_open, back.motion_detected) == (False, False)
    assert back.transitions[TamperInput.CASE] == 1
