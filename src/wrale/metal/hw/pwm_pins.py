"""Which Raspberry Pi 5 header pins RP1's PWM0 can drive, and what config.txt needs for each.

Board facts shared by the Linux backend (which checks the live pin mux) and the simulator
(which models a board booted with given overlays). No I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import msgspec

CONFIG_TXT = "/boot/firmware/config.txt"
# arch/arm/boot/dts/overlays/pwm-2chan-overlay.dts: pins 18/19 with brcm,function 2 (Alt5)
# by default; pinctrl-rp1.c's legacy_fsel_map turns Alt5 on 18/19 and Alt0 (func=4) on
# 12/13 into RP1's pwm0 function. One pwm-2chan gives one pair.
PWM_2CHAN_18_19 = "dtoverlay=pwm-2chan"
PWM_2CHAN_12_13 = "dtoverlay=pwm-2chan,pin=12,func=4,pin2=13,func2=4"


class PwmPin(msgspec.Struct, frozen=True):
    """A header pin RP1's PWM0 can drive: its channel, alt function and signal name."""

    line: int
    channel: int
    alt: str  # as ``pinctrl set N <alt>`` takes it
    signal: str  # as ``pinctrl get`` names it (RP1 datasheet, GPIO function table)
    overlay: str  # the config.txt line that muxes it at boot


PI5_PWM_PINS: Mapping[int, PwmPin] = MappingProxyType(
    {
        12: PwmPin(12, 0, "a0", "PWM0_CHAN0", PWM_2CHAN_12_13),
        13: PwmPin(13, 1, "a0", "PWM0_CHAN1", PWM_2CHAN_12_13),
        18: PwmPin(18, 2, "a3", "PWM0_CHAN2", PWM_2CHAN_18_19),
        19: PwmPin(19, 3, "a3", "PWM0_CHAN3", PWM_2CHAN_18_19),
    }
)


def not_muxed(pin: PwmPin, found: str) -> str:
    """The refusal for a pin that is not muxed to its PWM channel; ``found``: what it is."""
    return (
        f"GPIO {pin.line} is not muxed for hardware PWM ({found}; {pin.signal} needs "
        f"{pin.alt}): add `{pin.overlay}` to {CONFIG_TXT} and reboot (no software PWM here)"
    )
