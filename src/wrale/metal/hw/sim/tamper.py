"""Physical-security inputs of the simulated board: case switch, PIR motion, voltage monitor.

The board reports each input's state after every change; transitions are counted and
latched here until the next ``read_tamper`` so that short openings are never missed.
"""

from __future__ import annotations

from wrale.metal.hw.base import TamperInput, TamperReading
from wrale.metal.hw.sim.runtime import Runtime

VOLTAGE_NORMAL_MIN_V = 4.75  # below this the supply monitor reports abnormal


class SimTamper:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._state = {
            TamperInput.CASE: False,
            TamperInput.MOTION: False,
            TamperInput.VOLTAGE: True,
        }
        self._transitions = dict.fromkeys(TamperInput, 0)

    def observe(self, *, case_open: bool, motion: bool, voltage_normal: bool) -> None:
        for inp, value in (
            (TamperInput.CASE, case_open),
            (TamperInput.MOTION, motion),
            (TamperInput.VOLTAGE, voltage_normal),
        ):
            if self._state[inp] != value:
                self._state[inp] = value
                self._transitions[inp] += 1

    def read_tamper(self) -> TamperReading:
        with self._rt.reading():
            transitions, self._transitions = self._transitions, dict.fromkeys(TamperInput, 0)
            return TamperReading(
                case_open=self._state[TamperInput.CASE],
                motion_detected=self._state[TamperInput.MOTION],
                voltage_normal=self._state[TamperInput.VOLTAGE],
                transitions=transitions,
            )
