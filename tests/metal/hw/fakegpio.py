"""GPIO fakes shaped like a Raspberry Pi's: ``/dev/gpiochip*`` sets and RP1 pin functions.

``FakeDev`` lays out the chips ``gpiodetect`` lists on a Pi 5 before and after the kernel gave
the header chip number 0, and on a Pi 4; ``FakePinctrl`` answers ``pinctrl get N`` and writes
debugfs ``pinmux-pins`` as the real tools do. Sources are cited at each shape.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.metal.hw.fakechip import FakeChip

# ``gpiodetect`` on a Pi 5, kernel 6.6.20 (header chip is gpiochip4) and 6.6.47 (gpiochip0,
# SoC chips moved to 10+): raspberrypi/linux pull request #6144 "Use gpiochip0 for the
# user-facing GPIOs on Pi 5" and WiringPi issue #280, which quotes both listings.
PI5_OLD_KERNEL: Mapping[str, tuple[str, int]] = {
    "gpiochip0": ("gpio-brcmstb@107d508500", 32),
    "gpiochip1": ("gpio-brcmstb@107d508520", 4),
    "gpiochip2": ("gpio-brcmstb@107d517c00", 17),
    "gpiochip3": ("gpio-brcmstb@107d517c20", 6),
    "gpiochip4": ("pinctrl-rp1", 54),
}
PI5_NEW_KERNEL: Mapping[str, tuple[str, int]] = {
    "gpiochip0": ("pinctrl-rp1", 54),
    "gpiochip10": ("gpio-brcmstb@107d508500", 32),
    "gpiochip11": ("gpio-brcmstb@107d508520", 4),
    "gpiochip12": ("gpio-brcmstb@107d517c00", 17),
    "gpiochip13": ("gpio-brcmstb@107d517c20", 6),
}
# Raspberry Pi OS keeps /dev/gpiochip4 as a link to gpiochip0 for old programs
# (2bndy5/CirquePinnacle pull request #35 describes the link).
PI5_NEW_KERNEL_LINKS: Mapping[str, str] = {"gpiochip4": "gpiochip0"}
# A Pi 4 on 6.6.47 (WiringPi issue #280): the header chip and the firmware's expander.
PI4: Mapping[str, tuple[str, int]] = {
    "gpiochip0": ("pinctrl-bcm2711", 58),
    "gpiochip1": ("raspberrypi-exp-gpio", 8),
}


class FakeDev:
    """``<root>/dev/gpiochip*``: empty files stand in for the character devices, and
    ``open(path)`` hands out the ``FakeChip`` behind a path (links followed, as the kernel does).
    """

    def __init__(
        self,
        root: Path,
        chips: Mapping[str, tuple[str, int]],
        links: Mapping[str, str] | None = None,
        *,
        unreadable: Sequence[str] = (),
    ) -> None:
        self.root = root / "dev"
        self.root.mkdir(parents=True, exist_ok=True)
        self.chips: dict[str, FakeChip] = {}
        self.unreadable = set(unreadable)  # chips whose open() says EACCES
        self.opened: list[str] = []
        for name, (label, lines) in chips.items():
            (self.root / name).touch()
            self.chips[name] = FakeChip(lines, label=label)
        for name, target in (links or {}).items():
            (self.root / name).symlink_to(target)

    def path(self, name: str) -> str:
        return str(self.root / name)

    def chip(self, name: str) -> FakeChip:
        return self.chips[name]

    def open(self, path: str) -> FakeChip:
        self.opened.append(path)
        name = Path(os.path.realpath(path)).name
        if Path(path).parent.resolve() != self.root.resolve() or name not in self.chips:
            raise FileNotFoundError(2, "No such file or directory", path)
        if name in self.unreadable:
            raise PermissionError(13, "Permission denied", path)
        return self.chips[name]


# RP1 function select names of the PWM0 signals (raspberrypi/utils pinctrl/gpiochip_rp1.c,
# rp1_gpio_fsel_names; RP1 peripherals datasheet, GPIO function table): a0 on 12-15, a3 on 18/19.
RP1_PWM_SIGNALS: Mapping[tuple[int, str], str] = {
    (12, "a0"): "PWM0_CHAN0",
    (13, "a0"): "PWM0_CHAN1",
    (14, "a0"): "PWM0_CHAN2",
    (15, "a0"): "PWM0_CHAN3",
    (18, "a3"): "PWM0_CHAN2",
    (19, "a3"): "PWM0_CHAN3",
}
# pinctrl's names when the pin is GPIO (input/output) or unconnected (gpiolib.c fsel_names).
GPIO_SIGNALS = {"ip": "input", "op": "output", "no": "none"}
RP1_PINCTRL_DIR = "1f000d0000.gpio-pinctrl-rp1"  # debugfs: "<dev_name>-<pinctrl desc name>"
RP1_PWM0_DEVICE = "1f00098000.pwm"


class FakePinctrl:
    """RP1 pin functions as ``pinctrl get N`` prints them and as debugfs ``pinmux-pins`` shows.

    ``pinctrl get 18`` prints ``18: a3    pd | lo // GPIO18 = PWM0_CHAN2`` (raspberrypi/utils
    pinctrl/pinctrl.c, do_gpio_get: ``"%2d: %2s "``, the drive or two spaces, then
    ``" %s | %s // %s = %s"``; gpiolib.c gpio_get_fsel turns a GPIO pin into ``ip``/``op``).
    It opens ``/dev/gpiomem0``, so it works for the ``gpio`` group; ``installed=False`` is a
    board without raspi-utils, ``readable=False`` a user outside that group.
    ``pinmux-pins`` lines follow drivers/pinctrl/pinmux.c (pinmux_pins_show, non-strict
    controller): ``pin 18 (gpio18): 1f00098000.pwm (GPIO UNCLAIMED) function pwm0 group gpio18``;
    the number after ``pinctrl-rp1:`` in a GPIO owner is illustrative (not parsed).
    """

    def __init__(
        self,
        fsel: Mapping[int, str] | None = None,
        *,
        installed: bool = True,
        readable: bool = True,
    ) -> None:
        self.fsel: dict[int, str] = dict(fsel or {})
        self.installed = installed
        self.readable = readable
        self.calls: list[list[str]] = []

    @classmethod
    def pwm_2chan(cls, *, pins: Sequence[int] = (18, 19)) -> FakePinctrl:
        """After ``dtoverlay=pwm-2chan`` (18/19 on a3) or its ``pin=12,func=4`` form (a0)."""
        return cls({pin: "a3" if pin in (18, 19) else "a0" for pin in pins})

    def get_line(self, line: int) -> str:
        fsel = self.fsel.get(line, "no")
        signal = RP1_PWM_SIGNALS.get((line, fsel)) or GPIO_SIGNALS.get(fsel, "-")
        drive = "dl" if fsel == "op" else "  "
        level = "--" if fsel == "no" else "lo"
        return f"{line:2d}: {fsel:>2s} {drive} pd | {level} // GPIO{line} = {signal}"

    def run(self, argv: Sequence[str]) -> str:
        self.calls.append(list(argv))
        if not self.installed:
            raise FileNotFoundError(2, "No such file or directory", argv[0])
        if not self.readable:
            raise subprocess.CalledProcessError(1, list(argv), "", "No GPIO chips found\n")
        if len(argv) != 3 or argv[1] != "get":
            raise subprocess.CalledProcessError(1, list(argv), "", "bad arguments\n")
        return "".join(f"{self.get_line(int(n))}\n" for n in argv[2].split(","))

    def pinmux_pins(self) -> str:
        lines = ["Pinmux settings per pin", "Format: pin (name): mux_owner gpio_owner hog?"]
        for pin in range(54):
            fsel = self.fsel.get(pin, "no")
            head = f"pin {pin} (gpio{pin}): "
            if (pin, fsel) in RP1_PWM_SIGNALS:
                lines.append(
                    f"{head}{RP1_PWM0_DEVICE} (GPIO UNCLAIMED) function pwm0 group gpio{pin}"
                )
            elif fsel in ("ip", "op"):
                lines.append(f"{head}(MUX UNCLAIMED) pinctrl-rp1:{pin}")
            else:
                lines.append(f"{head}(MUX UNCLAIMED) (GPIO UNCLAIMED)")
        return "\n".join(lines) + "\n"

    def write_debugfs(self, root: Path) -> Path:
        """``<root>/1f000d0000.gpio-pinctrl-rp1/pinmux-pins`` (root: debugfs ``pinctrl``)."""
        directory = root / RP1_PINCTRL_DIR
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "pinmux-pins").write_text(self.pinmux_pins())
        return directory / "pinmux-pins"
