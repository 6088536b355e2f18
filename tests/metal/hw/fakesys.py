"""A Raspberry Pi 5 sysfs tree in ``tmp_path``, and a ``LinuxBoard`` wired over it.

``FakeSys`` writes the files the kernel would (in kernel units: m°C, µV, kHz, hex flags) and
lets tests change them; GPIO goes to a ``FakeChip`` (``fakechip.py``, the libgpiod chip) with
RP1's pin functions from ``fakegpio.py``, the firmware and thermal governor from
``fakethermal.py``.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.metal.hw.fakechip import FakeChip
from tests.metal.hw.fakegpio import FakePinctrl
from tests.metal.hw.fakethermal import PI5_TRIPS, FakeFirmware, FakeGovernor
from wrale.metal.hw.linux import GpiodGpio, LinuxBoard, SysfsPwm
from wrale.metal.hw.linux.pinmux import PinmuxReader
from wrale.metal.hw.linux.sysfs import HealthLog
from wrale.metal.hw.linux.vcgencmd import Vcgencmd
from wrale.shared.clock import Clock, FakeClock
from wrale.shared.config import GpioLineSettings, LinuxPaths

PI5_MODEL = "Raspberry Pi 5 Model B Rev 1.0"
THROTTLED = "devices/platform/soc/soc:firmware/get_throttled"  # LinuxPaths' default
RP1 = "devices/platform/axi/1000120000.pcie"
CPUFREQ = "devices/system/cpu/cpufreq/policy0"
PI5_MAX_KHZ, PI5_MIN_KHZ = 2_400_000, 1_500_000


class FakeSys:
    """A Pi 5 as the kernel shows it: one ``cpu-thermal`` zone (the DT's trips, ``step_wise``
    the only governor built into the Raspberry Pi kernels: bcm2712_defconfig has no
    THERMAL_GOV_USER_SPACE), the fan's ``pwm-fan`` cooling device, hwmon ``cpu_thermal``,
    ``rp1_adc``, ``pwmfan`` (``pwm1_enable`` 1, its probe default) and ``rpi_volt``, one
    cpufreq policy for the four cores, the fan's PWM chip plus RP1 PWM0
    (``dtoverlay=pwm-2chan``), no power_supply entries, a boot id and the firmware behind
    ``vcgencmd`` (``firmware``). ``governor()`` runs the kernel's thermal polling.
    """

    def __init__(
        self,
        tmp_path: Path,
        *,
        cpu_temp_c: float = 52.3,
        fan: bool = True,
        get_throttled: str | None = THROTTLED,
        rpi_volt: bool = True,
        pwm_overlay: bool = True,
        governors: Sequence[str] = ("step_wise",),
        vcgencmd: bool | None = None,
    ) -> None:
        self.base = tmp_path
        self.governors = tuple(governors)
        present = get_throttled is not None if vcgencmd is None else vcgencmd
        self.firmware = FakeFirmware(present=present)  # vcgencmd: by default with the file
        self.state_dir = tmp_path / "state"
        self.boot_id_path = tmp_path / "proc/sys/kernel/random/boot_id"
        self.reboot()
        self.sys = tmp_path / "sys"
        self.model_path = tmp_path / "proc/device-tree/model"
        self.model_path.parent.mkdir(parents=True)
        self.model_path.write_bytes(PI5_MODEL.encode() + b"\x00")  # device tree: NUL-ended
        self._throttled = get_throttled
        self._hwmon_count = 0
        self._zone("thermal_zone0", "cpu-thermal", cpu_temp_c)
        self.add_hwmon("cpu_thermal", "devices/virtual/thermal/thermal_zone0", temp1_input=52300)
        self.add_hwmon("rp1_adc", f"{RP1}/1f000c8000.adc", temp1_input=47900, in1_input=1452)
        if fan:
            self.add_hwmon(
                "pwmfan", "devices/platform/cooling_fan", pwm1=75, pwm1_enable=1, fan1_input=2430
            )
            self._cooling_device()
        if rpi_volt:
            self.add_hwmon(
                "rpi_volt", "devices/platform/soc/soc:firmware/rpi-hwmon", in0_lcrit_alarm=0
            )
        if get_throttled is not None:
            self.write(get_throttled, "0")
        for name, value in {
            "cpuinfo_max_freq": PI5_MAX_KHZ,
            "cpuinfo_min_freq": PI5_MIN_KHZ,
            "scaling_max_freq": PI5_MAX_KHZ,
            "scaling_min_freq": PI5_MIN_KHZ,
            "scaling_cur_freq": PI5_MIN_KHZ,
            "scaling_governor": "ondemand",
            "affected_cpus": "0 1 2 3",
        }.items():
            self.write(f"{CPUFREQ}/{name}", value)
        self._pwm_chip("pwmchip0", f"{RP1}/1f0009c000.pwm")  # the fan's PWM1
        self.pwm_chip = self._pwm_chip("pwmchip2", f"{RP1}/1f00098000.pwm") if pwm_overlay else None
        (self.sys / "class/power_supply").mkdir(parents=True)

    # ------------------------------------------------------------------ wiring

    def paths(self, **overrides: Any) -> LinuxPaths:
        return LinuxPaths(sysfs_root=self.sys, **overrides)

    def board(
        self,
        *,
        chip: FakeChip | None = None,
        clock: Clock | None = None,
        gpio_lines: Mapping[str, GpioLineSettings] | None = None,
        commands: list[Sequence[str]] | None = None,
        **path_overrides: Any,
    ) -> LinuxBoard:
        """A LinuxBoard over this tree, GPIO on ``chip`` and shutdown captured in ``commands``."""
        clock = clock or FakeClock()
        captured = commands if commands is not None else []
        return LinuxBoard(
            self.paths(**path_overrides),
            gpio_lines=gpio_lines,
            clock=clock,
            gpio=self.gpio(chip or FakeChip(), clock),
            run_command=lambda argv: captured.append(list(argv)),
            state_dir=self.state_dir,
            boot_id_path=self.boot_id_path,
            vcgencmd=Vcgencmd(clock, HealthLog(), run=self.firmware.run),
        )

    def governor(self) -> FakeGovernor:
        """The kernel's thermal polling of ``thermal_zone0`` (call ``poll()`` per second)."""
        zone = self.sys / "class/thermal/thermal_zone0"
        return FakeGovernor(zone, self.sys / self.hwmon("pwmfan"), self.sys / self._cdev)

    def reboot(self) -> None:
        """A new boot id, as the kernel makes at every boot."""
        self.boot_id_path.parent.mkdir(parents=True, exist_ok=True)
        self.boot_id_path.write_text(f"{uuid.uuid4()}\n")

    def gpio(self, chip: FakeChip, clock: Clock | None = None) -> GpiodGpio:
        """GPIO on ``chip``; RP1's pin functions answer ``pinctrl get`` from ``chip.pinctrl``
        (pwm-2chan's 18/19 muxed when this tree has the overlay's PWM chip)."""
        if chip.pinctrl is None:
            chip.pinctrl = FakePinctrl.pwm_2chan() if self.pwm_chip is not None else FakePinctrl()
        mux = PinmuxReader(run=chip.pinctrl.run, debugfs=self.base / "debugfs/pinctrl")
        pwm = SysfsPwm(self.sys, clock=clock, mux=mux)
        return GpiodGpio("/dev/gpiochip0", clock, pwm=pwm, open_chip=chip.open)

    # ------------------------------------------------------------------ files

    def write(self, rel: str, value: object) -> None:
        path = self.sys / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{value}\n")

    def read(self, rel: str) -> str:
        return (self.sys / rel).read_text().strip()

    def remove(self, rel: str) -> None:
        path = self.sys / rel
        if path.is_symlink() or path.is_file():
            path.unlink()
        else:
            shutil.rmtree(path)

    # ------------------------------------------------------------------ devices

    def add_hwmon(self, name: str, device: str, **attributes: object) -> str:
        """A hwmon device under ``device``, linked as the next ``class/hwmon/hwmonN``."""
        hwmon = f"hwmon{self._hwmon_count}"
        self._hwmon_count += 1
        target = self.sys / device / "hwmon" / hwmon
        target.mkdir(parents=True)
        (target / "name").write_text(f"{name}\n")
        for attribute, value in attributes.items():
            (target / attribute).write_text(f"{value}\n")
        link = self.sys / "class/hwmon" / hwmon
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)
        return f"class/hwmon/{hwmon}"

    def hwmon(self, name: str) -> str:
        for entry in sorted((self.sys / "class/hwmon").iterdir()):
            if (entry / "name").read_text().strip() == name:
                return f"class/hwmon/{entry.name}"
        raise LookupError(name)

    def remove_hwmon(self, name: str) -> None:
        link = self.sys / self.hwmon(name)
        shutil.rmtree(link.resolve())
        link.unlink()

    def add_power_supply(self, entry: str, kind: str, **attributes: object) -> None:
        """``class/power_supply/<entry>`` with ``type`` and attributes in kernel units."""
        self.write(f"class/power_supply/{entry}/type", kind)
        self.set_supply(entry, **attributes)

    def set_supply(self, entry: str, **attributes: object) -> None:
        for attribute, value in attributes.items():
            self.write(f"class/power_supply/{entry}/{attribute}", value)

    # ------------------------------------------------------------------ values

    def set_cpu_temp(self, celsius: float) -> None:
        self.write("class/thermal/thermal_zone0/temp", round(celsius * 1000))

    def set_fan_rpm(self, rpm: int) -> None:
        self.write(f"{self.hwmon('pwmfan')}/fan1_input", rpm)

    def fan_pwm(self) -> int:
        return int(self.read(f"{self.hwmon('pwmfan')}/pwm1"))

    def fan_enable(self) -> str:
        return self.read(f"{self.hwmon('pwmfan')}/pwm1_enable")

    def set_throttled(self, bits: int) -> None:
        """The firmware's word now: what ``vcgencmd get_throttled`` answers, ``rpi_volt``'s
        alarm (under-voltage now), and the sysfs file (bare hex, as the kernel prints it)."""
        self.firmware.word = bits
        if self._has_rpi_volt():
            self.set_undervoltage_alarm(bool(bits & 0x1))
        if self._throttled is not None:
            self.write(self._throttled, f"{bits:x}")

    def _has_rpi_volt(self) -> bool:
        try:
            self.hwmon("rpi_volt")
        except LookupError:
            return False
        return True

    def set_undervoltage_alarm(self, on: bool) -> None:
        self.write(f"{self.hwmon('rpi_volt')}/in0_lcrit_alarm", int(on))

    def scaling_max_freq(self) -> int:
        return int(self.read(f"{CPUFREQ}/scaling_max_freq"))

    def export_pwm(self, channel: int) -> Path:
        """What the kernel does on ``echo N > export``: the channel directory appears."""
        assert self.pwm_chip is not None
        directory = self.pwm_chip / f"pwm{channel}"
        directory.mkdir()
        for name, value in {
            "period": 0,
            "duty_cycle": 0,
            "enable": 0,
            "polarity": "normal",
        }.items():
            (directory / name).write_text(f"{value}\n")
        return directory

    # ------------------------------------------------------------------ internals

    def _zone(self, zone: str, kind: str, celsius: float) -> None:
        target = self.sys / "devices/virtual/thermal" / zone
        target.mkdir(parents=True)
        (target / "type").write_text(f"{kind}\n")
        (target / "temp").write_text(f"{round(celsius * 1000)}\n")
        (target / "policy").write_text("step_wise\n")
        (target / "available_policies").write_text(" ".join(self.governors) + "\n")
        (target / "mode").write_text("enabled\n")
        for n, (trip_type, temp, hyst) in enumerate(PI5_TRIPS):
            (target / f"trip_point_{n}_type").write_text(f"{trip_type}\n")
            (target / f"trip_point_{n}_temp").write_text(f"{temp}\n")
            (target / f"trip_point_{n}_hyst").write_text(f"{hyst}\n")
        link = self.sys / "class/thermal" / zone
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)

    _cdev = "devices/virtual/thermal/cooling_device0"

    def _cooling_device(self) -> None:
        """pwm-fan's cooling device (states 0-4), bound to ``thermal_zone0`` as ``cdev0``."""
        for name, value in {"type": "pwm-fan", "max_state": 4, "cur_state": 1}.items():
            self.write(f"{self._cdev}/{name}", value)
        link = self.sys / "class/thermal/cooling_device0"
        link.symlink_to(self.sys / self._cdev)
        (self.sys / "devices/virtual/thermal/thermal_zone0/cdev0").symlink_to(self.sys / self._cdev)

    def _pwm_chip(self, chip: str, device: str) -> Path:
        device_dir = self.sys / device
        device_dir.mkdir(parents=True, exist_ok=True)
        directory = self.sys / "class/pwm" / chip
        directory.mkdir(parents=True)
        (directory / "device").symlink_to(device_dir)
        (directory / "npwm").write_text("4\n")
        (directory / "export").write_text("")
        (directory / "unexport").write_text("")
        return directory
