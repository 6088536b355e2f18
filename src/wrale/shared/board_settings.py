"""The board sections of metald's settings: the simulated board, the Linux backend's kernel
interfaces, the UPS HAT fitted, how the tamper inputs are wired, and named GPIO lines.

They are msgspec documents (``wrale.shared.structs.Doc``) like the rest of the device's
settings; ``wrale.shared.config.MetalSettings`` holds them. The UPS HAT documents are
also what the HAT readers take (``wrale.metal.hw.linux.ups``), so a ``[linux.ups]`` table
reaches the reader field for field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar, Literal

import msgspec
from msgspec import Meta

from wrale.shared.structs import Doc, FieldError

I2cBusNumber = Annotated[int, Meta(ge=0, le=255, description="/dev/i2c-N")]
I2cAddress = Annotated[int, Meta(ge=0x03, le=0x77, description="7-bit I2C address")]
HeaderLine = Annotated[int, Meta(ge=0, le=27, description="BCM number of a header GPIO")]
PISUGAR_SOCKET = "/tmp/pisugar-server.sock"  # noqa: S108 - pisugar-server's own default path
PWM_PINS = (12, 13, 18, 19)  # the header pins the Pi 5's RP1 PWM0 can be muxed to
UPS_TAG = "kind"


class Max17048Config(Doc, frozen=True, tag="max17048", tag_field=UPS_TAG):
    """A MAX17048 gauge (Geekworm X1200/X1201/X1202 for the Pi 5; X120x defaults).

    ``mains_line``: the BCM line that is high while the HAT's supply is OK (``None``: no
    such line; mains is then inferred from the charge rate). ``charge_control_line``: the
    line the HAT reads to allow charging (low = charge); metald leaves it alone, but no
    other input or output may be configured on it (a pulled-up input stops charging).
    """

    kind: ClassVar[str] = "max17048"

    bus: I2cBusNumber = 1
    address: I2cAddress = 0x36
    mains_line: HeaderLine | None = 6
    mains_active_high: bool = True
    charge_control_line: HeaderLine | None = 16

    def check(self) -> None:
        if self.mains_line is not None and self.mains_line == self.charge_control_line:
            raise FieldError("charge_control_line", "must differ from mains_line")


class Ina219Config(Doc, frozen=True, tag="ina219", tag_field=UPS_TAG):
    """An INA219 on the pack (Waveshare UPS HAT and UPS HAT (B): 0x42, 2S, 0.1 Ω shunt;
    UPS HAT (C) for the Pi Zero: 0x43 and ``cells=1``).

    Mains presence is inferred from the current: a pack discharging by more than
    ``idle_band_a`` feeds the board; within the band the HAT is on mains and idle.
    """

    kind: ClassVar[str] = "ina219"
    CAL_SCALE: ClassVar[float] = 0.04096  # INA219 datasheet, equation 1

    bus: I2cBusNumber = 1
    address: I2cAddress = 0x42
    shunt_ohm: Annotated[float, Meta(gt=0, le=10)] = 0.1
    current_lsb_a: Annotated[float, Meta(gt=0, le=1)] = 0.0001
    cells: Annotated[int, Meta(ge=1, le=8)] = 2
    empty_cell_v: Annotated[float, Meta(ge=2.0, le=4.5)] = 3.0
    full_cell_v: Annotated[float, Meta(ge=2.0, le=4.5)] = 4.2
    idle_band_a: Annotated[float, Meta(ge=0, le=5)] = 0.05

    def check(self) -> None:
        if self.full_cell_v <= self.empty_cell_v:
            raise FieldError("full_cell_v", "must be above empty_cell_v")
        if not 2 <= int(self.CAL_SCALE / (self.current_lsb_a * self.shunt_ohm)) <= 0xFFFE:
            raise FieldError(
                "current_lsb_a", "with this shunt_ohm the 16-bit calibration register overflows"
            )

    @property
    def calibration(self) -> int:
        return int(self.CAL_SCALE / (self.current_lsb_a * self.shunt_ohm)) & 0xFFFE


class PiSugarConfig(Doc, frozen=True, tag="pisugar", tag_field=UPS_TAG):
    """pisugar-server's Unix socket (``--uds``; its web UI holds TCP 8421-8423)."""

    kind: ClassVar[str] = "pisugar"

    socket_path: Annotated[str, Meta(min_length=1)] = PISUGAR_SOCKET
    timeout_s: Annotated[float, Meta(gt=0, le=30)] = 1.0


UpsConfig = Max17048Config | Ina219Config | PiSugarConfig


class TamperWiringSettings(Doc, frozen=True):
    """How the case switch and the PIR are wired (section ``[tamper_wiring]``), on either
    backend. ``case_contact``: ``nc`` (closed while the lid is on: magnetic reed alarm
    contacts; a cut wire reads open) or ``no``; ``motion_active``: the PIR output's level
    for motion, ``high`` (HC-SR501, AM312) or ``low`` (open-drain)."""

    case_contact: Literal["nc", "no"] = "nc"
    motion_active: Literal["high", "low"] = "high"


class SimSettings(Doc, frozen=True):
    """The simulated board: its model, environment, what is fitted to it and how fast its
    physics runs."""

    speed: Annotated[float, Meta(gt=0, le=3600, description="simulated seconds per second")] = 1.0
    seed: int | None = None
    model: str = "Raspberry Pi 5 Model B (simulated)"
    ambient_c: Annotated[float, Meta(ge=-40, le=80)] = 25.0
    load_pct: Annotated[float, Meta(ge=0, le=100)] = 10.0
    battery_wh: Annotated[float, Meta(ge=0, le=10_000, description="0 = no battery")] = 20.0
    battery_pct: Annotated[float, Meta(ge=0, le=100)] = 100.0
    solar_peak_w: Annotated[float, Meta(ge=0, le=10_000, description="0 = no panel")] = 0.0
    noise: bool = True
    # the official Active Cooler (else a bare board: no fan turning)
    active_cooler: bool = True
    # a HAT with an air sensor (a BME280, say): a bare Pi 5 reports no ambient temperature
    ambient_sensor: bool = False
    # the pins the boot overlays gave to hardware PWM (dtoverlay=pwm-2chan: 18 and 19)
    pwm_muxed: tuple[HeaderLine, ...] = (18, 19)
    # a UPS HAT read through its own reader, as on a real board (needs battery_wh > 0)
    ups_hat: UpsConfig | None = None

    def check(self) -> None:
        stray = sorted(set(self.pwm_muxed) - set(PWM_PINS))
        if stray:
            raise FieldError(
                "pwm_muxed", f"GPIO {stray}: a Pi 5 has hardware PWM only on GPIO 12, 13, 18, 19"
            )
        if self.ups_hat is not None and self.battery_wh <= 0:
            raise FieldError("ups_hat", "a UPS HAT needs a battery: set battery_wh > 0")


class LinuxPaths(Doc, frozen=True):
    """Where the Linux backend finds the kernel interfaces; tests point them at a tmp tree."""

    sysfs_root: Path = Path("/sys")
    cpu_thermal_zone: Annotated[str, Meta(description="thermal_zone type")] = "cpu-thermal"
    gpu_thermal_zone: str | None = None
    ambient_hwmon: Annotated[str, Meta(description="hwmon name with temp1_input")] | None = None
    fan_hwmon: Annotated[str, Meta(description="hwmon name with pwm1 and fan1_input")] = "pwmfan"
    get_throttled_path: Path = Path("/sys/devices/platform/soc/soc:firmware/get_throttled")
    # also read the firmware's get_throttled file (off: vcgencmd get_throttled is the source;
    # the file's driver logs a warning on each new under-voltage it reports)
    read_get_throttled_file: bool = False
    # source name (main, battery, solar) to /sys/class/power_supply entry
    power_supplies: dict[str, str] = msgspec.field(default_factory=dict)
    # a UPS HAT's reader instead of power_supplies
    ups: UpsConfig | None = None
    # the header's GPIO chip: "auto" (by the board's model: pinctrl-rp1 on a Pi 5), a chip
    # label, or a /dev/gpiochipN path (refused when its label is not the header's)
    gpio_chip: Annotated[str, Meta(min_length=1)] = "auto"
    case_switch_line: int | None = None
    motion_line: int | None = None
    shutdown_command: tuple[str, ...] = ("systemctl", "poweroff")

    def check(self) -> None:
        unknown = set(self.power_supplies) - {"main", "battery", "solar"}
        if unknown:
            raise FieldError(
                "power_supplies",
                f"unknown power source(s) {sorted(unknown)}: use main, battery, solar",
            )
        if self.ups is not None and self.power_supplies:
            raise FieldError(
                "ups", "set either ups (a UPS HAT) or power_supplies (kernel drivers), not both"
            )


class GpioLineSettings(Doc, frozen=True):
    """A named GPIO line as the operator wires it."""

    line: Annotated[int, Meta(ge=0, le=1023)]
    direction: Literal["in", "out"] = "in"
    pull: Literal["none", "up", "down"] = "none"
    edge: Literal["none", "rising", "falling", "both"] = "none"
    debounce_ms: Annotated[float, Meta(ge=0, le=10_000)] = 50.0
    loopback_to: Annotated[str, Meta(description="line name wired to this one")] | None = None
