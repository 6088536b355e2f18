"""PiSugar HATs through pisugar-server's local socket (the server owns the I2C chip).

Protocol from PiSugar/pisugar-power-manager-rs (``pisugar-server/src/{uds,stream,cmds}.rs``):
one command per line (``get battery``), one answer line each, ``<name>: <value>`` with Rust's
float and bool formatting (``battery: 87.5``, ``battery_power_plugged: true``); a failing
getter answers ``battery: I2C not connected``; button taps (``single``...) may interleave.
"""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Callable
from typing import Protocol

from wrale.metal.hw.linux.sysfs import HealthLog
from wrale.metal.hw.linux.ups.base import UpsReading
from wrale.shared.board_settings import PISUGAR_SOCKET, PiSugarConfig

SOCKET_PATH = PISUGAR_SOCKET  # pisugar-server's own default path
COMMANDS = ("battery", "battery_v", "battery_charging", "battery_power_plugged")
MAX_ANSWER_BYTES = 16_384
CELL_V_RANGE = (2.0, 5.5)

Done = Callable[[list[str]], bool]


class PiSugarLink(Protocol):
    """Sends ``request``; answer lines once ``done(lines)``, or those it has when the time is
    up (``TimeoutError`` if none); ``OSError`` when the server cannot be reached."""

    def exchange(self, request: bytes, done: Done) -> list[str]: ...


class UnixSocketLink:
    """A fresh connection per exchange (the server keeps no state worth a long session)."""

    def __init__(self, path: str, timeout_s: float) -> None:
        self.path = path
        self.timeout_s = timeout_s

    def exchange(self, request: bytes, done: Done) -> list[str]:
        deadline = time.monotonic() + self.timeout_s
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(self.timeout_s)
            sock.connect(self.path)
            sock.sendall(request)
            buffer = b""
            while True:
                lines = buffer.decode("utf-8", errors="replace").split("\n")[:-1]
                left = deadline - time.monotonic()
                if done(lines) or left <= 0 or len(buffer) > MAX_ANSWER_BYTES:
                    break
                sock.settimeout(left)
                try:
                    chunk = sock.recv(4096)
                except TimeoutError:
                    break
                if not chunk:
                    break  # the server hung up: keep what it said
                buffer += chunk
        if not lines:
            raise TimeoutError(f"no answer within {self.timeout_s:g} s")
        return lines  # an older server may leave some commands unanswered


class PiSugarReader:
    """Asks for level, voltage, charging and mains in one exchange; never raises."""

    def __init__(
        self, config: PiSugarConfig, health: HealthLog, *, link: PiSugarLink | None = None
    ) -> None:
        self.config = config
        self.name = f"UPS HAT (pisugar-server at {config.socket_path})"
        self._health = health
        self._link = link or UnixSocketLink(config.socket_path, config.timeout_s)

    def read_ups(self) -> UpsReading:
        request = "".join(f"get {name}\n" for name in COMMANDS).encode()
        try:
            lines = self._link.exchange(request, _has_all)
        except OSError as exc:  # includes TimeoutError and ConnectionError
            self._health.failed(self.name, str(exc))
            return UpsReading()
        self._health.ok(self.name)
        answers = _answers(lines)
        return UpsReading(
            battery_pct=self._number(answers, "battery", (0.0, 100.0)),
            battery_v=self._number(answers, "battery_v", CELL_V_RANGE),
            current_a=None,  # ``battery_i`` exists on the PiSugar 2 only, sign undocumented
            mains_present=self._flag(answers, "battery_power_plugged"),
            charging=self._flag(answers, "battery_charging"),
        )

    def close(self) -> None:
        """Nothing held between reads."""

    def _number(
        self, answers: dict[str, str], name: str, valid: tuple[float, float]
    ) -> float | None:
        text = answers.get(name, "")
        try:
            value = float(text)
        except ValueError:
            self._health.failed(f"{self.name} {name}", f"answer {text!r}")
            return None
        if not math.isfinite(value) or not valid[0] <= value <= valid[1]:
            self._health.failed(f"{self.name} {name}", f"implausible {value!r}")
            return None
        self._health.ok(f"{self.name} {name}")
        return value

    def _flag(self, answers: dict[str, str], name: str) -> bool | None:
        text = answers.get(name, "")
        if text not in ("true", "false"):
            self._health.failed(f"{self.name} {name}", f"answer {text!r}")
            return None
        self._health.ok(f"{self.name} {name}")
        return text == "true"


def _answers(lines: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.strip().partition(": ")
        if sep and name in COMMANDS:
            out[name] = value.strip()
    return out


def _has_all(lines: list[str]) -> bool:
    return _answers(lines).keys() >= set(COMMANDS)
