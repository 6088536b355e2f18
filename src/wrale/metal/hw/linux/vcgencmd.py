"""The Raspberry Pi firmware's ``vcgencmd``: run it (argv, no shell, short timeout), cache
each answer for ``min_interval_s`` so a 1 Hz sampler forks it at most every few seconds,
and parse the two answers metald needs.

Answer shapes (Raspberry Pi OS Bookworm, ``raspi-utils``'s ``vcgencmd`` on a Pi 5):
``get_throttled`` prints ``throttled=0x50005``; ``pmic_read_adc`` prints one line per PMIC
channel, e.g. ``         EXT5V_V volt(24)=5.15408000V`` and ``VDD_CORE_A current(7)=1.2A``.
A missing binary or a failing command is logged once through ``HealthLog`` and reads ``None``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Sequence

from wrale.metal.hw.linux.sysfs import HealthLog
from wrale.shared.clock import Clock

VCGENCMD = "vcgencmd"
TIMEOUT_S = 2.0
MIN_INTERVAL_S = 5.0  # each command at most this often; readings in between are cached

# argv in, stdout out; raises OSError / subprocess.SubprocessError on failure
RunText = Callable[[Sequence[str]], str]

_ADC_LINE = re.compile(
    r"^\s*(?P<name>[A-Za-z0-9_]+)\s+(?P<kind>volt|current)\(\d+\)=(?P<value>[-+0-9.eE]+)[VA]\s*$"
)


def run_text(argv: Sequence[str]) -> str:
    """Run ``argv`` (no shell) and return its stdout; non-zero exit raises."""
    done = subprocess.run(  # noqa: S603 - fixed argv, never a shell
        list(argv), check=True, timeout=TIMEOUT_S, capture_output=True, text=True
    )
    return done.stdout


def parse_pmic_adc(text: str) -> dict[str, float]:
    """``pmic_read_adc`` output as ``{"EXT5V_V": 5.154, "VDD_CORE_A": 1.2, ...}``.

    Voltage channels keep their names (they end in ``_V``), current channels theirs (``_A``);
    lines that are not channel readings are skipped.
    """
    out: dict[str, float] = {}
    for line in text.splitlines():
        match = _ADC_LINE.match(line)
        if match is None:
            continue
        try:
            out[match["name"]] = float(match["value"])
        except ValueError:
            continue
    return out


class Vcgencmd:
    """``query("get_throttled")`` → the command's stdout, cached per argv for ``min_interval_s``.

    ``binary`` is looked up on ``PATH`` when it has no slash; ``run`` replaces the runner
    (tests pass a fake firmware that answers like the real one).
    """

    def __init__(
        self,
        clock: Clock,
        health: HealthLog,
        *,
        binary: str = VCGENCMD,
        run: RunText | None = None,
        min_interval_s: float = MIN_INTERVAL_S,
    ) -> None:
        self._clock = clock
        self._health = health
        self._binary = binary
        self._run = run
        self._min_interval_s = min_interval_s
        self._cache: dict[tuple[str, ...], tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    def available(self) -> bool:
        """Whether there is a runner: a fake one, or the binary on this machine."""
        return self._run is not None or shutil.which(self._binary) is not None

    def query(self, *args: str) -> str | None:
        """The stdout of ``vcgencmd *args``, at most ``min_interval_s`` old; ``None`` on failure."""
        key = tuple(args)
        now = self._clock.monotonic()
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and now - cached[0] < self._min_interval_s:
                return cached[1]
        source = f"vcgencmd {' '.join(args)}"
        answer: str | None
        if not self.available():
            self._health.absent(source, f"no {self._binary!r} on this machine")
            answer = None
        else:
            try:
                answer = (self._run or run_text)([self._binary, *args])
            except (OSError, subprocess.SubprocessError) as exc:
                self._health.failed(source, str(exc))
                answer = None
            else:
                self._health.ok(source)
        with self._lock:
            self._cache[key] = (now, answer)
        return answer

    def pmic_adc(self) -> dict[str, float] | None:
        """The PMIC's ADC channels (Pi 5), or ``None`` where the command is missing or fails."""
        text = self.query("pmic_read_adc")
        return None if text is None else parse_pmic_adc(text)

    def throttled(self) -> str | None:
        """The raw ``get_throttled`` answer (``throttled=0x…``), parsed by ``parse_throttled``."""
        return self.query("get_throttled")
