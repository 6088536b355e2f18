"""The agent's durable memory (SQLite, WAL): the outbox of telemetry and event rows, what
the server acknowledged, and (``records.Records``) the twins, the mode and command results.
The file's schema and the SQL on the outbox table are in ``outboxdb``; the bookkeeping
(seqs, bounds, rows held in memory, counters) is here.

Outbox rows carry a per-stream ``seq``; a row leaves only when the server acknowledged it,
or when the outbox is over its bounds: ``max_rows`` per stream (oldest first) and
``max_age_s`` measured on the monotonic clock, summed over the store's running time (never
the wall clock, which jumps on a board without an RTC), counted in ``dropped``.

Events, twins, mode and results commit with ``synchronous=FULL`` before the agent acts on
them. With ``persist_after_s``, telemetry rows are *held* in memory and written only when
one has waited that long for its ack (the link is down), in one transaction, and at
``flush``/``close``: a board that is online writes no telemetry at all. Seqs are reserved
``seq_block`` at a time, durably, so a seq the server may have seen is never handed out
twice even after a power cut. Calls block; the agent runs them in a thread.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wrale.fleet.edge import outboxdb
from wrale.fleet.edge.records import Records, Twin, kv_get, kv_put
from wrale.fleet.sync.protocol import STREAMS

__all__ = ["EdgeStore", "Row", "Twin"]

AGE_PRUNE_CHUNK = 1000
HELD_STREAM = "telemetry"  # the stream that may wait in memory (events are always durable)


@dataclass(frozen=True, slots=True)
class Row:
    """One outbox row: a report's telemetry points, or one event. ``at``: the store's age
    clock when it was appended (seconds of the store's running time)."""

    seq: int
    at: float
    items: list[Any]


class EdgeStore(Records):
    """One SQLite file per agent (``<state_dir>/edge.db``); ``":memory:"`` in tests that
    need no restart. ``monotonic`` is the clock ages are measured on."""

    def __init__(
        self,
        path: Path | str,
        *,
        max_rows: int = 50_000,
        max_age_s: float = 7 * 86_400.0,
        synchronous: str = "FULL",
        persist_after_s: float | None = None,
        seq_block: int = 360,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(path, Path):
            path.parent.mkdir(parents=True, exist_ok=True)
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError("synchronous must be FULL or NORMAL")
        if persist_after_s is not None and persist_after_s < 0:
            raise ValueError("persist_after_s must be >= 0")
        if seq_block < 1:
            raise ValueError("seq_block must be >= 1")
        self.path = path
        self.max_rows = max_rows
        self.max_age_s = max_age_s
        self.persist_after_s = persist_after_s
        self.seq_block = seq_block
        self._monotonic = monotonic
        self._lock = threading.RLock()
        self._db = outboxdb.connect(path, synchronous)
        self._held: deque[tuple[Row, list[Any] | None]] = deque()  # (row, sampled)
        self._dirty = False  # counters in memory newer than on disk
        with self._txn() as db:
            age = kv_get(db, "age_clock")
            if age is None:  # rows written with wall-clock times: their age starts now
                outboxdb.zero_ages(db)
                age = 0.0
                kv_put(db, "age_clock", age)
            self._age0, self._mono0 = float(age), self._monotonic()
            self._disk = dict.fromkeys(STREAMS, 0)
            for stream, n in outboxdb.counts(db):
                self._disk[stream] = n
            self._dropped = {s: int(kv_get(db, f"dropped.{s}", 0)) for s in STREAMS}
            self._appended = {s: int(kv_get(db, f"appended.{s}", 0)) for s in STREAMS}
            self._acked = {s: int(kv_get(db, f"acked.{s}", 0)) for s in STREAMS}
            # after a power cut, carry on past every seq that may have been handed out
            self._last = {
                s: max(int(kv_get(db, f"seq.{s}", 0)), int(kv_get(db, f"seqres.{s}", 0)))
                for s in STREAMS
            }
            self._reserved = dict(self._last)
            sampled = kv_get(db, "sampled")
            self._sampled = list(sampled) if isinstance(sampled, list) else None
            since = kv_get(db, "events_since")
            self._events_since = None if since is None else int(since)

    def age_now(self) -> float:
        """The store's age clock: seconds it has been open, over all its runs."""
        return self._age0 + (self._monotonic() - self._mono0)

    def close(self) -> None:
        """Write what is held in memory, then close (a clean stop loses nothing)."""
        with self._lock:
            self.flush(release=True)
            self._db.close()

    # -------------------------------------------------------------------- outbox

    def append(
        self,
        stream: str,
        items: list[Any],
        *,
        events_since: int | None = None,
        sampled: list[Any] | None = None,
    ) -> int:
        """Store one row of ``items`` under the next seq of ``stream``; returns that seq.

        With it: ``events_since`` (the metald event id forwarded last) or ``sampled`` (what
        identifies the newest reading in the row), so that nothing is lost or sent twice
        across restarts; then the bounds. A held row is written with the others once the
        oldest held one has waited ``persist_after_s``.
        """
        _check(stream)
        body = json.dumps(items, separators=(",", ":"), allow_nan=False)
        held = self._holds(stream)
        with self._lock:
            seq = self._last[stream] + 1
            row = Row(seq, self.age_now(), json.loads(body) if held else items)
            if held and seq <= self._reserved[stream] and not self._excess(stream, 1, disk=True):
                self._held.append((row, sampled))
                self._last[stream] = seq
                self._appended[stream] += len(items)
                self._sampled = sampled if sampled is not None else self._sampled
                self._dirty = True
                self._bound_held(stream)
                if self.persist_due():
                    self.flush()
                return seq
            with self._txn() as db:
                if held:
                    self._held.append((row, sampled))
                else:
                    outboxdb.insert(db, stream, [(seq, row.at, len(items), body)])
                    self._disk[stream] += 1
                self._last[stream] = seq
                self._appended[stream] += len(items)
                if events_since is not None:
                    self._events_since = events_since
                if sampled is not None:
                    self._sampled = sampled
                if held:
                    self._reserved[stream] = max(self._reserved[stream], seq + self.seq_block - 1)
                    kv_put(db, f"seqres.{stream}", self._reserved[stream])
                self._write_counters(db, stream)
                self._bound_disk(db, stream)
                if held:
                    self._bound_held(stream)
        return seq

    def _holds(self, stream: str) -> bool:
        return stream == HELD_STREAM and self.persist_after_s is not None

    def persist_due(self) -> bool:
        """A held row has waited ``persist_after_s`` for its ack (no I/O)."""
        with self._lock:
            return (
                bool(self._held)
                and self.persist_after_s is not None
                and self.age_now() - self._held[0][0].at >= self.persist_after_s
            )

    def flush(self, *, release: bool = False) -> int:
        """Write the held rows and the counters kept in memory, in one transaction;
        returns how many rows. ``release``: give back the unused reserved seqs (a clean
        stop: the next run carries on without a gap)."""
        with self._lock:
            if not self._held and not self._dirty and not release:
                return 0
            rows = list(self._held)
            with self._txn() as db:
                outboxdb.insert(
                    db,
                    HELD_STREAM,
                    [(r.seq, r.at, len(r.items), json.dumps(r.items)) for r, _ in rows],
                )
                self._disk[HELD_STREAM] += len(rows)
                self._held.clear()
                for stream in STREAMS:
                    if release:
                        self._reserved[stream] = self._last[stream]
                        kv_put(db, f"seqres.{stream}", self._last[stream])
                    self._write_counters(db, stream)
                    self._bound_disk(db, stream)
                self._dirty = False
            return len(rows)

    def _write_counters(self, db: sqlite3.Connection, stream: str) -> None:
        kv_put(db, f"seq.{stream}", self._last[stream])
        kv_put(db, f"acked.{stream}", self._acked[stream])
        kv_put(db, f"appended.{stream}", self._appended[stream])
        kv_put(db, f"dropped.{stream}", self._dropped[stream])
        kv_put(db, "age_clock", self.age_now())
        if self._sampled is not None:
            kv_put(db, "sampled", self._sampled)
        if self._events_since is not None:
            kv_put(db, "events_since", self._events_since)

    def _excess(self, stream: str, adding: int, *, disk: bool) -> bool:
        """Adding rows would take the stream past ``max_rows`` with rows on disk to drop,
        or disk rows are old enough to go (both need a transaction)."""
        if not disk or self._disk[stream] == 0:
            return False
        held = len(self._held) if stream == HELD_STREAM else 0
        return self._disk[stream] + held + adding > self.max_rows

    def _bound_held(self, stream: str) -> None:
        while self._held and self._disk[stream] + len(self._held) > self.max_rows:
            self._held.popleft()
            self._dropped[stream] += 1

    def _bound_disk(self, db: sqlite3.Connection, stream: str) -> None:
        dropped = 0
        cutoff = self.age_now() - self.max_age_s
        oldest = outboxdb.oldest_at(db, stream)
        if oldest is not None and oldest < cutoff:
            dropped += outboxdb.delete_older(db, stream, cutoff, AGE_PRUNE_CHUNK)
        held = len(self._held) if stream == HELD_STREAM else 0
        excess = min(
            self._disk[stream] - dropped, self._disk[stream] - dropped + held - self.max_rows
        )
        if excess > 0:
            dropped += outboxdb.delete_oldest(db, stream, excess)
        if dropped:
            self._disk[stream] -= dropped
            self._dropped[stream] += dropped
            kv_put(db, f"dropped.{stream}", self._dropped[stream])

    def rows_after(
        self, stream: str, after: int, max_items: int, max_rows: int = 1000
    ) -> list[Row]:
        """Rows with ``seq > after``, oldest first (written ones, then held ones), up to
        ``max_items`` items in all (at least one row, whatever its size)."""
        _check(stream)
        out: list[Row] = []
        total = 0
        with self._lock:
            if self._disk[stream]:
                for seq, at, n, body in outboxdb.after(self._db, stream, after, max_rows):
                    if out and total + n > max_items:
                        return out
                    out.append(Row(seq, at, json.loads(body)))
                    total += n
            if stream == HELD_STREAM:
                for row, _ in self._held:
                    if row.seq <= after:
                        continue
                    if len(out) >= max_rows or (out and total + len(row.items) > max_items):
                        break
                    out.append(row)
                    total += len(row.items)
        return out

    def ack(self, stream: str, seq: int) -> int:
        """The server stored everything up to ``seq``: drop those rows; returns how many.
        Only held rows acknowledged: no I/O (the mark is written with the next write)."""
        _check(stream)
        with self._lock:
            gone = self._drop_held(stream, seq)
            self._acked[stream] = max(self._acked[stream], seq)
            if (
                self._disk[stream] == 0
                and stream == HELD_STREAM
                and self.persist_after_s is not None
            ):
                self._dirty = True
                return gone
            with self._txn() as db:
                deleted = outboxdb.delete_through(db, stream, seq)
                self._disk[stream] -= deleted
                kv_put(db, f"acked.{stream}", self._acked[stream])
        return gone + deleted

    def _drop_held(self, stream: str, seq: int) -> int:
        gone = 0
        if stream == HELD_STREAM:
            while self._held and self._held[0][0].seq <= seq:
                self._held.popleft()
                gone += 1
        return gone

    def welcome(self, stream: str, server_acked: int) -> int:
        """Adopt the server's last stored seq at the start of a session; returns it.

        Rows up to it leave the outbox. A server ahead of every seq this store ever handed
        out (or reserved) means the store was reset (a reinstalled board): the waiting rows
        are renumbered after the server's seq, so none of them is mistaken for a duplicate.
        """
        _check(stream)
        with self._lock, self._txn() as db:
            last = max(self._last[stream], self._reserved[stream])
            if server_acked > last:
                outboxdb.renumber(db, stream, server_acked)
                if stream == HELD_STREAM:
                    self._held = deque(
                        (Row(r.seq + server_acked, r.at, r.items), s) for r, s in self._held
                    )
                self._last[stream] += server_acked
                self._reserved[stream] = max(self._reserved[stream], self._last[stream])
                kv_put(db, f"seqres.{stream}", self._reserved[stream])
            else:
                self._drop_held(stream, server_acked)
                self._disk[stream] -= outboxdb.delete_through(db, stream, server_acked)
            self._acked[stream] = server_acked
            self._write_counters(db, stream)
        return server_acked

    def acked(self, stream: str) -> int:
        return self._acked[_check(stream)]

    def last_seq(self, stream: str) -> int:
        """The highest seq handed out in ``stream`` (kept in memory: no I/O)."""
        return self._last[_check(stream)]

    def head(self, stream: str) -> int:
        """The highest seq handed out in ``stream`` (no I/O): the sender reads the outbox
        only when this is beyond what it has sent."""
        return self._last[_check(stream)]

    def depth(self, stream: str) -> int:
        """Rows waiting in the outbox, written or held (kept in memory: no I/O)."""
        held = len(self._held) if _check(stream) == HELD_STREAM else 0
        return self._disk[stream] + held

    def held(self) -> int:
        """Telemetry rows held in memory, not yet written (no I/O)."""
        return len(self._held)

    def dropped(self, stream: str) -> int:
        """Rows dropped because the outbox was full or too old, since the store was made
        (kept in memory: no I/O)."""
        return self._dropped[_check(stream)]

    def sampled(self) -> list[Any] | None:
        """What identifies the newest reading appended to the telemetry outbox (ever)."""
        return None if self._sampled is None else list(self._sampled)

    def events_since(self) -> int | None:
        return self._events_since


def _check(stream: str) -> str:
    if stream not in STREAMS:
        raise ValueError(f"unknown stream {stream!r}")
    return stream
