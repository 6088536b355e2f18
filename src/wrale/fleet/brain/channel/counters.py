"""What the device channel refused or dropped in this process (bad frames, over-rate frames,
points and events outside physical bounds, refused sockets), and a log gate that says so
once per device per interval. Counters only go up; ``/metrics`` renders them.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from dataclasses import dataclass, field

LOG_EVERY_S = 60.0  # one log line per device and kind of trouble per this long
LOG_KEYS_MAX = 10_000  # devices remembered by the log gate (oldest forgotten first)

# name → help text of each counter; the names end up as wrale_channel_<name>_total
HELP: dict[str, str] = {
    "bad_frames": "Device frames dropped as malformed (not a valid protocol message).",
    "rate_limited_frames": "Device frames dropped because the session sent over its rate.",
    "refused_points": "Telemetry points refused at ingest (timestamp or value out of bounds).",
    "refused_events": "Device events whose timestamp was out of bounds (stored at receive time).",
    "refused_reported": "Reported twin documents refused (not storable, too big or too deep).",
    "refused_sockets": "Device WebSockets refused before accepting them (auth, limits).",
    "bridge_restarts": "Times the MQTT bridge's receive loop died and was restarted.",
}


@dataclass
class ChannelCounters:
    """This process's channel counters by name and transport (``ws`` / ``mqtt``)."""

    values: dict[tuple[str, str], int] = field(default_factory=dict)

    def inc(self, name: str, transport: str, amount: int = 1) -> None:
        if name not in HELP:
            raise KeyError(f"unknown channel counter {name!r}")
        if amount > 0:
            key = (name, transport)
            self.values[key] = self.values.get(key, 0) + amount

    def get(self, name: str, transport: str | None = None) -> int:
        return sum(v for (n, t), v in self.values.items() if n == name and transport in (None, t))

    def prometheus(self) -> list[str]:
        """The counters in the Prometheus text format (every name, zero when unseen)."""
        lines: list[str] = []
        for name, help_text in HELP.items():
            metric = f"wrale_channel_{name}_total"
            lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} counter"]
            seen = sorted((t, v) for (n, t), v in self.values.items() if n == name)
            for transport, v in seen or [("ws", 0)]:
                lines.append(f'{metric}{{transport="{transport}"}} {v}')
        return lines


class LogGate:
    """``ok(key)`` is true at most once per ``every_s`` for each key (a device and a kind
    of trouble), so a board that floods bad frames cannot flood the log too."""

    def __init__(
        self, every_s: float = LOG_EVERY_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.every_s = every_s
        self.clock = clock
        self._last: collections.OrderedDict[str, float] = collections.OrderedDict()

    def ok(self, key: str) -> bool:
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.every_s:
            return False
        self._last[key] = now
        self._last.move_to_end(key)
        while len(self._last) > LOG_KEYS_MAX:
            self._last.popitem(last=False)
        return True
