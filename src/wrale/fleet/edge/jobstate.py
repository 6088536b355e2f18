"""One placement as the board runs it (``Placement``): its state, times, CPU seconds,
output tail and the handles of its process, and its entry in the reported ``jobs``
section (docs/jobs.md), also read back from a stored report after a restart.
No I/O here: the runner drives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from wrale.fleet.edge.jobproc import TAIL_BYTES, OutputTail
from wrale.fleet.edge.jobspec import ACTIVE, JobSpec, Json, ProcessWork, SimLoadWork, State


@dataclass(eq=False)
class Placement:
    """One placement as the board runs it."""

    id: str
    spec: JobSpec | None
    state: State = "starting"
    reason: str | None = None
    exit_code: int | None = None
    started_at: float | None = None
    ended_at: float | None = None
    cpu_s: float = 0.0
    quota: float | None = None
    quota_note: str | None = None  # why the quota is not in force
    tail: OutputTail = field(default_factory=OutputTail)
    proc: asyncio.subprocess.Process | None = None
    ticks: int | None = None  # the process's start time (see jobproc.start_ticks)
    watcher: asyncio.Task[None] | None = None
    stopper: asyncio.Task[None] | None = None
    deadline: float | None = None  # monotonic time its duration_s is reached
    end_as: tuple[State, str | None] | None = None  # set when the runner ends it
    sim_pct: float = 0.0  # the share of the simulated job load it has
    sim_since: float | None = None  # monotonic time its CPU seconds were counted to

    @property
    def work(self) -> ProcessWork | SimLoadWork | None:
        return self.spec.work if self.spec is not None else None

    def entry(self, tail_bytes: int) -> Json:
        """Its entry in the reported ``jobs`` section (the tail cut to ``tail_bytes``)."""
        reason = self.reason
        if reason is None and self.state in ACTIVE:
            reason = self.quota_note
        return {
            "state": self.state,
            "reason": reason,
            "exit_code": self.exit_code,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "cpu_s": round(self.cpu_s, 2),
            "cpu_quota_pct": self.quota,
            "output_tail": self.tail.text(tail_bytes),
        }

    @classmethod
    def ended_from(cls, placement: str, e: Any) -> Placement | None:
        """A placement from a stored reported entry if it ended for good: it ran and
        succeeded or failed, or it was stopped (and may not have been reported yet).
        A refusal is not kept: it is decided again, maybe under a new allow-list."""
        if not isinstance(e, Mapping):
            return None
        state, code, reason = e.get("state"), e.get("exit_code"), e.get("reason")
        ran = isinstance(code, int) and not isinstance(code, bool)
        if state not in ("succeeded", "stopped") and not (state == "failed" and ran):
            return None
        pl = cls(placement, None, state)
        pl.reason = reason if isinstance(reason, str) else None
        pl.exit_code = code if ran else None
        pl.started_at = _num(e.get("started_at"))
        pl.ended_at = _num(e.get("ended_at"))
        pl.cpu_s = _num(e.get("cpu_s")) or 0.0
        pl.quota = _num(e.get("cpu_quota_pct"))
        tail = e.get("output_tail")
        if isinstance(tail, str):
            pl.tail.feed(tail.encode("utf-8", "replace")[-TAIL_BYTES:])
        return pl


def exit_reason(code: int) -> str | None:
    """Why a process that exited with ``code`` (negative: by a signal) failed."""
    if code == 0:
        return None
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None
