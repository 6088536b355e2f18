"""A ``Gpio`` wrapper that lets the tamper reader count edges on its own lines.

Every edge still reaches whoever drains the board's GPIO events; the wrapper only keeps
a per-line count for watched lines and a bounded buffer of edges not yet drained.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Iterable

from wrale.metal.hw.base import EdgeEvent, Gpio, LineConfig, LineState

PENDING_EDGES = 4096  # edges kept for the next drain; the oldest go first


class EdgeTap:
    """Delegates to ``inner``; ``take_edge_counts`` reports watched lines' edges once."""

    def __init__(self, inner: Gpio, *, keep: int = PENDING_EDGES) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self._pending: deque[EdgeEvent] = deque(maxlen=keep)
        self._counts: Counter[int] = Counter()
        self._watched: set[int] = set()

    def watch(self, lines: Iterable[int]) -> None:
        with self._lock:
            self._watched.update(lines)

    def take_edge_counts(self) -> dict[int, int]:
        """Edges per watched line since the previous call."""
        with self._lock:
            self._pull()
            counts = dict(self._counts)
            self._counts.clear()
            return counts

    def configure_line(self, line: int, config: LineConfig) -> None:
        self.inner.configure_line(line, config)

    def read_line(self, line: int) -> int:
        return self.inner.read_line(line)

    def write_line(self, line: int, value: int) -> None:
        self.inner.write_line(line, value)

    def set_pwm(self, line: int, frequency_hz: float, duty_pct: float) -> None:
        self.inner.set_pwm(line, frequency_hz, duty_pct)

    def lines(self) -> list[LineState]:
        return self.inner.lines()

    def drain_edge_events(self) -> list[EdgeEvent]:
        with self._lock:
            self._pull()
            events = list(self._pending)
            self._pending.clear()
            return events

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if callable(close):
            close()

    def _pull(self) -> None:
        events = self.inner.drain_edge_events()
        self._pending.extend(events)
        self._counts.update(e.line for e in events if e.line in self._watched)
