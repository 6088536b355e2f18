"""Physical-security inputs of the simulated board: case switch, PIR motion, voltage monitor.

The case and motion inputs are kept as the levels their GPIO lines would read under the
board's ``TamperWiring`` (NC/NO switch, active-high/low PIR) and decoded with the same
wiring as the Linux backend. Transitions are latched until the next ``read_tamper``.
"""

from __future__ import annotations

from wrale.metal.hw.base import TamperInput, TamperReading, TamperWiring
from wrale.metal.hw.sim.runtime import Runtime

VOLTAGE_NORMAL_MIN_V = 4.75  # below this the supply monitor reports abnormal


class SimTamper:
    def __init__(self, rt: Runtime, wiring: TamperWiring | None = None) -> None:
        self._rt = rt
        self.wiring = wiring or TamperWiring()
        self._level = {
            TamperInput.CASE: self.wiring.case_level(False),
            TamperInput.MOTION: self.wiring.motion_level(False),
            TamperInput.VOLTAGE: 1,  # the supply monitor: 1 = normal
        }
        self._transitions = dict.fromkeys(TamperInput, 0)

    def observe(self, *, case_open: bool, motion: bool, voltage_normal: bool) -> None:
        """The physical state now; each input becomes the level its line would read."""
        for inp, level in (
            (TamperInput.CASE, self.wiring.case_level(case_open)),
            (TamperInput.MOTION, self.wiring.motion_level(motion)),
            (TamperInput.VOLTAGE, int(voltage_normal)),
        ):
            if self._level[inp] != level:
                self._level[inp] = level
                self._transitions[inp] += 1

    def line_level(self, inp: TamperInput) -> int:
        """What the input's GPIO line reads now (0 or 1) under the board's wiring."""
        with self._rt.reading():
            return self._level[inp]

    def read_tamper(self) -> TamperReading:
        with self._rt.reading():
            transitions, self._transitions = self._transitions, dict.fromkeys(TamperInput, 0)
            return TamperReading(
                case_open=self.wiring.case_open(self._level[TamperInput.CASE]),
                motion_detected=self.wiring.motion(self._level[TamperInput.MOTION]),
                voltage_normal=bool(self._level[TamperInput.VOLTAGE]),
                transitions=transitions,
            )
