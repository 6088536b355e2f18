"""What the boards connected to this process say of their own backlog (outbox depth and rows
dropped, from their status heartbeats) and how late their telemetry arrives (ingest lag).
Kept in memory for ``/metrics`` only; nothing here is state another replica needs.

Over MQTT with several replicas the broker shares a board's heartbeats between them, so
more than one replica may count the same board (docs/central/deploy.md).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from wrale.fleet.sync.protocol import STREAMS

# ingest lag buckets: a live board is seconds behind, one back from an outage hours
LAG_BUCKETS_S = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0)
ROWS_MAX = 1_000_000_000  # a board's figure above this is not believed (clamped)
SEEN_MAX = 100_000  # boards whose last drop count is remembered (oldest forgotten first)


def _rows(values: Mapping[str, object]) -> dict[str, int]:
    """The known streams' non-negative counts of a board's report (the rest is ignored:
    a board chooses these numbers, so they never become labels or negative counts)."""
    out: dict[str, int] = {}
    for stream in STREAMS:
        v = values.get(stream)
        if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
            out[stream] = min(v, ROWS_MAX)
    return out


@dataclass
class BoardStats:
    """Per process: the latest outbox depth of each board with a session here, the rows
    boards dropped from their outboxes since this process first heard from them, and a
    histogram of the age of each stored batch's newest point. A board's depth counts while
    its last status is recent (``prometheus(max_age_s)``): a session that ends without a
    close here (an MQTT board gone silent) does not stay counted."""

    clock: Callable[[], float] = time.monotonic
    # device id → (session id, when its last status came, rows by stream)
    outbox: dict[str, tuple[str, float, dict[str, int]]] = field(default_factory=dict)
    dropped_total: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STREAMS, 0))
    lag_buckets: list[int] = field(default_factory=lambda: [0] * len(LAG_BUCKETS_S))
    lag_sum_s: float = 0.0
    lag_count: int = 0
    _seen: collections.OrderedDict[str, dict[str, int]] = field(
        default_factory=collections.OrderedDict
    )

    def status(
        self,
        device_id: str,
        session_id: str,
        outbox: Mapping[str, object],
        dropped: Mapping[str, object],
    ) -> None:
        """A status heartbeat: its outbox depth replaces the board's last one; what its
        drop counts grew by since the last one this process saw is added to the total
        (the first one is only the baseline: drops of before are not ours to count)."""
        self.outbox[device_id] = (session_id, self.clock(), _rows(outbox))
        now = _rows(dropped)
        before = self._seen.get(device_id)
        if before is not None:
            for stream, n in now.items():
                self.dropped_total[stream] += max(0, n - before.get(stream, n))
        self._seen[device_id] = {**(before or {}), **now}
        self._seen.move_to_end(device_id)
        while len(self._seen) > SEEN_MAX:
            self._seen.popitem(last=False)

    def forget(self, device_id: str, session_id: str) -> None:
        """The session ended: its board's backlog is no longer this process's to report
        (unless a newer session of the board has reported since)."""
        held = self.outbox.get(device_id)
        if held is not None and held[0] == session_id:
            del self.outbox[device_id]

    def lag(self, seconds: float) -> None:
        """A stored batch's newest point was this old when stored."""
        seconds = max(0.0, seconds)
        for i, bound in enumerate(LAG_BUCKETS_S):
            if seconds <= bound:
                self.lag_buckets[i] += 1
        self.lag_sum_s += seconds
        self.lag_count += 1

    def prometheus(self, max_age_s: float) -> list[str]:
        """The figures in the Prometheus text format (every name, zero when unseen); boards
        whose last status is older than ``max_age_s`` are forgotten first."""
        oldest = self.clock() - max_age_s
        for device_id in [d for d, (_, at, _) in self.outbox.items() if at < oldest]:
            del self.outbox[device_id]
        depth = {s: [rows.get(s, 0) for _, _, rows in self.outbox.values()] for s in STREAMS}
        lines: list[str] = []

        def family(name: str, kind: str, help_text: str) -> None:
            lines.extend((f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"))

        family(
            "wrale_board_outbox_rows",
            "gauge",
            "Rows waiting in the outboxes of the boards connected here (their last status).",
        )
        lines += [f'wrale_board_outbox_rows{{stream="{s}"}} {sum(depth[s])}' for s in STREAMS]
        family(
            "wrale_board_outbox_rows_max",
            "gauge",
            "The largest outbox of one board connected here (its last status).",
        )
        lines += [
            f'wrale_board_outbox_rows_max{{stream="{s}"}} {max(depth[s], default=0)}'
            for s in STREAMS
        ]
        family(
            "wrale_board_dropped_rows_total",
            "counter",
            "Rows boards reported dropping from their outboxes (full or too old) since "
            "this process first heard from them.",
        )
        lines += [
            f'wrale_board_dropped_rows_total{{stream="{s}"}} {self.dropped_total[s]}'
            for s in STREAMS
        ]
        hist = "wrale_telemetry_ingest_lag_seconds"
        family(hist, "histogram", "Age of each stored telemetry batch's newest point.")
        for bound, n in zip(LAG_BUCKETS_S, self.lag_buckets, strict=True):
            lines.append(f'{hist}_bucket{{le="{bound!r}"}} {n}')
        lines.append(f'{hist}_bucket{{le="+Inf"}} {self.lag_count}')
        lines.append(f"{hist}_sum {self.lag_sum_s!r}")
        lines.append(f"{hist}_count {self.lag_count}")
        return lines
