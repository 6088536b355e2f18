"""The Pi 5's thermal governor and firmware as fakes that behave, for the Linux backend tests.

``FakeGovernor`` runs ``thermal_zone0`` the way the Raspberry Pi kernel does: the
``step_wise`` governor (drivers/thermal/gov_step_wise.c, ``get_target_state`` and
``thermal_zone_trip_update``) over the DT trips of bcm2712-rpi-5-b.dts (``cpu-tepid`` 50 °C,
``cpu-warm`` 60, ``cpu-hot`` 67.5, ``cpu-vhot`` 75, 5 °C hysteresis each, cooling maps trip N
-> fan state N..N) driving the ``pwm-fan`` cooling device (drivers/hwmon/pwm-fan.c:
``cooling-levels = <0 75 125 175 250>``, ``set_cur_state`` writes only when the state
differs from ``pwm_fan_state``, and a write to ``pwm1`` moves ``pwm_fan_state`` to the level
of the written value). ``user_space`` (gov_user_space.c) only notifies userspace, and a
zone whose ``mode`` is ``disabled`` is not polled: neither touches the fan.

``FakeFirmware`` answers ``vcgencmd get_throttled`` like raspi-utils' vcgencmd on a Pi 5
(``throttled=0x50005``) and keeps the firmware's word, whose sticky bits 16-19 the
``rpi_volt`` driver clears every 2 s (drivers/hwmon/raspberrypi-hwmon.c sends 0xffff).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

PI5_TRIPS = (  # (type, temp m°C, hyst m°C) in the order sysfs lists them on a Pi 5
    ("critical", 110_000, 0),
    ("active", 50_000, 5_000),
    ("active", 60_000, 5_000),
    ("active", 67_500, 5_000),
    ("active", 75_000, 5_000),
)
PI5_COOLING_LEVELS = (0, 75, 125, 175, 250)
NO_TARGET = -1


def pwm_fan_state(pwm: int, levels: Sequence[int] = PI5_COOLING_LEVELS) -> int:
    """pwm-fan.c ``pwm_fan_update_state``: the highest state whose level is <= ``pwm``."""
    state = 0
    while state < len(levels) - 1 and pwm >= levels[state + 1]:
        state += 1
    return state


class FakeGovernor:
    """One poll of the kernel's thermal framework per ``poll()`` (the Pi 5 polls every 1 s)."""

    def __init__(self, zone: Path, fan: Path, cooling_device: Path) -> None:
        self.zone, self.fan, self.cdev = zone, fan, cooling_device
        self.last_temp: int | None = None
        self.targets = dict.fromkeys(range(1, len(PI5_TRIPS)), NO_TARGET)
        self.initialized = dict.fromkeys(self.targets, False)
        self.state = pwm_fan_state(self._pwm())
        self._pwm_seen = self._pwm()
        self.writes = 0  # how often the governor rewrote pwm1

    def _read(self, name: str) -> str:
        return (self.zone / name).read_text().strip()

    def _pwm(self) -> int:
        return int((self.fan / "pwm1").read_text().strip())

    def poll(self) -> None:
        pwm = self._pwm()
        if pwm != self._pwm_seen:  # someone wrote pwm1: pwm-fan moved its state with it
            self.state = pwm_fan_state(pwm)
            self._pwm_seen = pwm
        if self._read("mode") != "enabled" or self._read("policy") != "step_wise":
            return
        temp = int(self._read("temp"))
        last, self.last_temp = self.last_temp, temp
        trend = 0 if last is None or last == temp else (1 if temp > last else -1)
        update = False
        for trip, old in self.targets.items():
            _, trip_temp, hyst = PI5_TRIPS[trip]
            throttle = temp >= trip_temp or (temp >= trip_temp - hyst and old != NO_TARGET)
            new = self._target(trip, old, trend, throttle)
            self.targets[trip] = new
            if self.initialized[trip] and new == old:
                continue
            self.initialized[trip] = True
            update = True
        if update:
            wanted = max([t for t in self.targets.values() if t != NO_TARGET], default=0)
            self._set_cur_state(wanted)

    def _target(self, trip: int, old: int, trend: int, throttle: bool) -> int:
        lower = upper = trip  # cooling maps: trip N -> <&fan N N>
        cur = self.state
        if not self.initialized[trip]:
            return min(max(cur + 1, lower), upper) if throttle else NO_TARGET
        if throttle and trend > 0:
            return min(max(cur + 1, lower), upper)
        if not throttle and trend < 0:
            return NO_TARGET if cur <= lower else min(max(cur - 1, lower), upper)
        return old

    def _set_cur_state(self, state: int) -> None:
        (self.cdev / "cur_state").write_text(f"{state}\n")
        if state == self.state:
            return
        pwm = PI5_COOLING_LEVELS[state]
        (self.fan / "pwm1").write_text(f"{pwm}\n")
        self.state, self._pwm_seen = state, pwm
        self.writes += 1


class FakeFirmware:
    """The VideoCore firmware as ``vcgencmd`` reaches it; ``calls`` records every argv."""

    def __init__(self, *, present: bool = True) -> None:
        self.present = present  # False: no vcgencmd on the machine
        self.word = 0
        self.calls: list[list[str]] = []

    def run(self, argv: Sequence[str]) -> str:
        if not self.present:
            raise FileNotFoundError(2, "No such file or directory", argv[0])
        self.calls.append(list(argv))
        if list(argv[1:]) == ["get_throttled"]:
            return f"throttled=0x{self.word:x}\n"
        raise subprocess.CalledProcessError(
            255, list(argv), 'error=1 error_msg="Command not registered"\n'
        )

    def rpi_volt_poll(self) -> int:
        """What ``rpi_volt`` does every 2 s: read the word and clear the sticky bits (a
        condition still present sets its sticky bit again at once)."""
        reply = self.word
        now = self.word & 0xF
        self.word = now | (now << 16)
        return reply
