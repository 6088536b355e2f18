"""Which function a header pin is muxed to, so hardware PWM is used only where it is wired.

Sources, in order: ``pinctrl get N`` (raspi-utils; reads RP1's registers through
``/dev/gpiomem0``, so the ``gpio`` group suffices: the state now), then debugfs
``pinctrl/<dev>-pinctrl-rp1/pinmux-pins`` (root only; shows the kernel's claims, which a
later GPIO use of the pin does not undo). Neither readable: ``None``, never a guess.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from wrale.metal.hw.linux.gpiochip import PI5_GPIO_LABEL
from wrale.metal.hw.linux.vcgencmd import RunText, run_text
from wrale.metal.hw.pwm_pins import PwmPin

PINCTRL = "pinctrl"
DEBUGFS_PINCTRL = Path("/sys/kernel/debug/pinctrl")
PI5_PWM_FUNCTION = "pwm0"  # the function pinctrl-rp1 names in pinmux-pins
GPIO_FUNCTIONS = frozenset({"ip", "op", "gp", "input", "output", "gpio"})


@dataclass(frozen=True, slots=True)
class MuxReading:
    """A pin's function: ``function`` (``a3``, ``ip``, ``pwm0``...), ``signal`` (``PWM0_CHAN2``,
    ``input``, ``pwm0``...) and where it was read."""

    line: int
    function: str
    signal: str
    source: str

    @property
    def gpio(self) -> bool:
        return self.function in GPIO_FUNCTIONS

    def drives(self, pin: PwmPin) -> bool:
        return self.signal in (pin.signal, PI5_PWM_FUNCTION)


_PINCTRL_LINE = re.compile(
    r"^\s*(?P<line>\d+):\s+(?P<function>\S+)\s.*?//\s*\S*\s*=\s*(?P<signal>\S+)\s*$"
)
_PINMUX_LINE = re.compile(
    r"^pin (?P<line>\d+) \([^)]*\): (?P<owners>.*?)(?: function (?P<function>\S+) group \S+)?$"
)


def parse_pinctrl_get(text: str, line: int) -> MuxReading | None:
    """``18: a3    pd | lo // GPIO18 = PWM0_CHAN2`` (raspberrypi/utils pinctrl.c)."""
    for row in text.splitlines():
        match = _PINCTRL_LINE.match(row)
        if match is not None and int(match["line"]) == line:
            return MuxReading(line, match["function"], match["signal"], "pinctrl get")
    return None


def parse_pinmux_pins(text: str, line: int, source: str = "pinmux-pins") -> MuxReading | None:
    """``pin 18 (gpio18): 1f00098000.pwm (GPIO UNCLAIMED) function pwm0 group gpio18``.

    A pin with a GPIO owner is GPIO now whatever its mux claim says; an unclaimed one has none.
    """
    for row in text.splitlines():
        match = _PINMUX_LINE.match(row.strip())
        if match is None or int(match["line"]) != line:
            continue
        if "(GPIO UNCLAIMED)" not in match["owners"]:
            return MuxReading(line, "gpio", "gpio", source)
        function = match["function"]
        if function is None:
            return MuxReading(line, "none", "none", source)
        return MuxReading(line, function, function, source)
    return None


class PinmuxReader:
    """``read(line)``: the pin's function from the first source that answers, else ``None``.

    ``label`` names the pin controller (its debugfs directory ends in ``-<label>``); ``run``
    replaces the command runner (argv in, stdout out); ``debugfs`` the debugfs pinctrl root.
    """

    def __init__(
        self,
        label: str = PI5_GPIO_LABEL,
        *,
        run: RunText | None = None,
        pinctrl: str = PINCTRL,
        debugfs: Path = DEBUGFS_PINCTRL,
    ) -> None:
        self.label = label
        self._run = run or run_text
        self._pinctrl = pinctrl
        self._debugfs = debugfs
        self.last_failures: list[str] = []

    def read(self, line: int) -> MuxReading | None:
        self.last_failures = []
        return self._from_pinctrl(line) or self._from_debugfs(line)

    def _from_pinctrl(self, line: int) -> MuxReading | None:
        try:
            text = self._run([self._pinctrl, "get", str(line)])
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            self.last_failures.append(f"`{self._pinctrl} get {line}`: {_why(exc)}")
            return None
        reading = parse_pinctrl_get(text, line)
        if reading is None:
            self.last_failures.append(f"`{self._pinctrl} get {line}` printed {text.strip()!r:.80}")
        return reading

    def _from_debugfs(self, line: int) -> MuxReading | None:
        try:
            dirs = sorted(
                d
                for d in self._debugfs.iterdir()
                if d.name == self.label or d.name.endswith(f"-{self.label}")
            )
        except OSError as exc:
            self.last_failures.append(f"{self._debugfs}: {_why(exc)}")
            return None
        for directory in dirs:
            path = directory / "pinmux-pins"
            try:
                text = path.read_text(errors="replace")
            except OSError as exc:
                self.last_failures.append(f"{path}: {_why(exc)}")
                continue
            reading = parse_pinmux_pins(text, line, str(path))
            if reading is not None:
                return reading
            self.last_failures.append(f"{path} has no pin {line}")
        if not dirs:
            self.last_failures.append(f"no {self.label} pin controller under {self._debugfs}")
        return None


def _why(exc: BaseException) -> str:
    if isinstance(exc, subprocess.CalledProcessError):
        detail = (exc.stderr or "").strip() if isinstance(exc.stderr, str) else ""
        return f"exit {exc.returncode}" + (f" ({detail:.80})" if detail else "")
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
