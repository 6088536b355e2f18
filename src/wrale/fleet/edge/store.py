"""The agent's durable memory (SQLite, WAL): the outbox of telemetry and event rows, what
the server acknowledged, the desired and reported twins, the mode, and command results.

Outbox rows carry a per-stream ``seq``; a row leaves only when the server acknowledged it,
or when the outbox is full (oldest first, counted in ``dropped``). Every write commits
with ``synchronous=FULL`` before the agent acts on it or sends it: a seq the server may
have seen is never handed out twice, even after a power cut. Calls block; the agent runs
them in a thread (on its event loop with ``store_inline``, as the simulated fleet does).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wrale.fleet.sync.protocol import STREAMS

Json = dict[str, Any]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    stream TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at REAL NOT NULL,
    n INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (stream, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS command_results (
    id TEXT PRIMARY KEY,
    at REAL NOT NULL,
    body TEXT NOT NULL,
    sent INTEGER NOT NULL DEFAULT 0
);
"""
AGE_PRUNE_CHUNK = 1000
COMMAND_RESULTS_KEPT = 1000


@dataclass(frozen=True, slots=True)
class Row:
    """One outbox row: a report's telemetry points, or one event."""

    seq: int
    at: float
    items: list[Any]


@dataclass(frozen=True, slots=True)
class Twin:
    """A stored twin document with its version (reported: also what it answers)."""

    version: int
    doc: Json
    applied_desired_version: int = 0
    rejected: dict[str, str] = field(default_factory=dict)


class EdgeStore:
    """One SQLite file per agent (``<state_dir>/edge.db``); ``":memory:"`` in tests that
    need no restart. Bounds: ``max_rows`` per stream and ``max_age_s`` (wall seconds)."""

    def __init__(
        self,
        path: Path | str,
        *,
        max_rows: int = 50_000,
        max_age_s: float = 7 * 86_400.0,
        synchronous: str = "FULL",
    ) -> None:
        if isinstance(path, Path):
            path.parent.mkdir(parents=True, exist_ok=True)
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError("synchronous must be FULL or NORMAL")
        self.path = path
        self.max_rows = max_rows
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.execute("PRAGMA cache_size=-256")  # KiB: the board has little memory
        self._db.executescript(_SCHEMA)
        self._count = dict.fromkeys(STREAMS, 0)
        for stream, n in self._db.execute("SELECT stream, COUNT(*) FROM outbox GROUP BY stream"):
            self._count[stream] = n
        self._dropped = {s: int(self._get(self._db, f"dropped.{s}", 0)) for s in STREAMS}
        self._head = {s: int(self._get(self._db, f"seq.{s}", 0)) for s in STREAMS}

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def _txn(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -------------------------------------------------------------------- key / value

    @staticmethod
    def _get(db: sqlite3.Connection, key: str, default: Any = None) -> Any:
        row = db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    @staticmethod
    def _put(db: sqlite3.Connection, key: str, value: Any) -> None:
        db.execute(
            "INSERT INTO kv (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value, separators=(",", ":"))),
        )

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            return self._get(self._db, key, default)

    def put(self, key: str, value: Any) -> None:
        with self._txn() as db:
            self._put(db, key, value)

    # -------------------------------------------------------------------- outbox

    def append(
        self,
        stream: str,
        items: list[Any],
        now: float,
        *,
        events_since: int | None = None,
        sampled: list[Any] | None = None,
    ) -> int:
        """Store one row of ``items`` under the next seq of ``stream``; returns that seq.

        In the same transaction: ``events_since`` (the metald event id forwarded last) or
        ``sampled`` (what identifies the newest reading in the row), so that nothing is
        lost or sent twice across restarts, and the bounds (rows older than ``max_age_s``,
        then the oldest beyond ``max_rows``, counted in ``dropped``).
        """
        _check(stream)
        body = json.dumps(items, separators=(",", ":"), allow_nan=False)
        with self._txn() as db:
            seq = int(self._get(db, f"seq.{stream}", 0)) + 1
            self._put(db, f"seq.{stream}", seq)
            db.execute(
                "INSERT INTO outbox (stream, seq, at, n, body) VALUES (?, ?, ?, ?, ?)",
                (stream, seq, now, len(items), body),
            )
            if events_since is not None:
                self._put(db, "events_since", events_since)
            # items ever appended: what end-to-end tests and operators reconcile against
            self._put(
                db, f"appended.{stream}", int(self._get(db, f"appended.{stream}", 0)) + len(items)
            )
            if sampled is not None:
                self._put(db, "sampled", sampled)
            self._count[stream] += 1
            self._bound(db, stream, now)
        self._head[stream] = seq  # committed
        return seq

    def _bound(self, db: sqlite3.Connection, stream: str, now: float) -> None:
        dropped = 0
        cutoff = now - self.max_age_s
        oldest = db.execute(
            "SELECT at FROM outbox WHERE stream = ? ORDER BY seq LIMIT 1", (stream,)
        ).fetchone()
        if oldest is not None and oldest[0] < cutoff:
            dropped += db.execute(
                "DELETE FROM outbox WHERE stream = ? AND seq IN (SELECT seq FROM outbox "
                "WHERE stream = ? ORDER BY seq LIMIT ?) AND at < ?",
                (stream, stream, AGE_PRUNE_CHUNK, cutoff),
            ).rowcount
        excess = self._count[stream] - dropped - self.max_rows
        if excess > 0:
            dropped += db.execute(
                "DELETE FROM outbox WHERE stream = ? AND seq IN "
                "(SELECT seq FROM outbox WHERE stream = ? ORDER BY seq LIMIT ?)",
                (stream, stream, excess),
            ).rowcount
        if dropped:
            self._count[stream] -= dropped
            self._dropped[stream] += dropped
            self._put(db, f"dropped.{stream}", self._dropped[stream])

    def rows_after(
        self, stream: str, after: int, max_items: int, max_rows: int = 1000
    ) -> list[Row]:
        """Rows with ``seq > after``, oldest first, up to ``max_items`` items in all (at
        least one row, whatever its size)."""
        _check(stream)
        out: list[Row] = []
        total = 0
        with self._lock:
            cur = self._db.execute(
                "SELECT seq, at, n, body FROM outbox WHERE stream = ? AND seq > ? "
                "ORDER BY seq LIMIT ?",
                (stream, after, max_rows),
            )
            for seq, at, n, body in cur:
                if out and total + n > max_items:
                    break
                out.append(Row(seq, at, json.loads(body)))
                total += n
        return out

    def ack(self, stream: str, seq: int) -> int:
        """The server stored everything up to ``seq``: drop those rows; returns how many."""
        _check(stream)
        with self._txn() as db:
            gone = db.execute(
                "DELETE FROM outbox WHERE stream = ? AND seq <= ?", (stream, seq)
            ).rowcount
            self._count[stream] -= gone
            if seq > int(self._get(db, f"acked.{stream}", 0)):
                self._put(db, f"acked.{stream}", seq)
        return gone

    def welcome(self, stream: str, server_acked: int) -> int:
        """Adopt the server's last stored seq at the start of a session; returns it.

        Rows up to it leave the outbox. A server ahead of every seq this store ever handed
        out means the store was reset (a reinstalled board): the waiting rows are
        renumbered after the server's seq, so none of them is mistaken for a duplicate.
        """
        _check(stream)
        renumbered: int | None = None
        with self._txn() as db:
            last = int(self._get(db, f"seq.{stream}", 0))
            if server_acked > last:
                rows = db.execute(
                    "SELECT seq FROM outbox WHERE stream = ? ORDER BY seq DESC", (stream,)
                ).fetchall()
                for (seq,) in rows:  # highest first: no key is ever taken twice
                    db.execute(
                        "UPDATE outbox SET seq = ? WHERE stream = ? AND seq = ?",
                        (seq + server_acked, stream, seq),
                    )
                self._put(db, f"seq.{stream}", last + server_acked)
                renumbered = last + server_acked
            else:
                gone = db.execute(
                    "DELETE FROM outbox WHERE stream = ? AND seq <= ?", (stream, server_acked)
                ).rowcount
                self._count[stream] -= gone
            self._put(db, f"acked.{stream}", server_acked)
        if renumbered is not None:
            self._head[stream] = renumbered  # committed
        return server_acked

    def acked(self, stream: str) -> int:
        return int(self.get(f"acked.{_check(stream)}", 0))

    def last_seq(self, stream: str) -> int:
        return int(self.get(f"seq.{_check(stream)}", 0))

    def head(self, stream: str) -> int:
        """The highest seq handed out in ``stream`` (kept in memory: no I/O): the sender
        reads the outbox only when this is beyond what it has sent."""
        return self._head[_check(stream)]

    def depth(self, stream: str) -> int:
        """Rows waiting in the outbox (kept in memory: no I/O)."""
        return self._count[_check(stream)]

    def dropped(self, stream: str) -> int:
        """Rows dropped because the outbox was full or too old, since the store was made
        (kept in memory: no I/O)."""
        return self._dropped[_check(stream)]

    def sampled(self) -> list[Any] | None:
        """What identifies the newest reading stored in the telemetry outbox (ever)."""
        value = self.get("sampled")
        return list(value) if isinstance(value, list) else None

    def events_since(self) -> int | None:
        value = self.get("events_since")
        return None if value is None else int(value)

    # -------------------------------------------------------------------- twins

    def save_desired(self, version: int, doc: Json) -> None:
        """Store the desired document (one transaction, durable before anything acts)."""
        with self._txn() as db:
            self._put(db, "desired", {"version": version, "doc": doc})

    def desired(self) -> Twin | None:
        raw = self.get("desired")
        return None if raw is None else Twin(int(raw["version"]), dict(raw["doc"]))

    def save_reported(self, twin: Twin) -> None:
        with self._txn() as db:
            self._put(
                db,
                "reported",
                {
                    "version": twin.version,
                    "doc": twin.doc,
                    "applied_desired_version": twin.applied_desired_version,
                    "rejected": twin.rejected,
                },
            )

    def reported(self) -> Twin | None:
        raw = self.get("reported")
        if raw is None:
            return None
        return Twin(
            int(raw["version"]),
            dict(raw["doc"]),
            int(raw.get("applied_desired_version", 0)),
            dict(raw.get("rejected", {})),
        )

    # -------------------------------------------------------------------- mode

    def mode(self, default: str = "normal") -> str:
        return str(self.get("mode", default))

    def set_mode(self, mode: str) -> None:
        self.put("mode", mode)

    # -------------------------------------------------------------------- commands

    def command_result(self, command_id: str) -> Json | None:
        """The stored result of a command this agent already ran (to answer a redelivery)."""
        with self._lock:
            row = self._db.execute(
                "SELECT body FROM command_results WHERE id = ?", (command_id,)
            ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def save_command_result(self, command_id: str, result: Json, now: float) -> None:
        """Keep a result (unsent) until ``mark_sent``; only the newest ones are kept."""
        with self._txn() as db:
            db.execute(
                "INSERT INTO command_results (id, at, body, sent) VALUES (?, ?, ?, 0) "
                "ON CONFLICT(id) DO UPDATE SET body = excluded.body, sent = 0",
                (command_id, now, json.dumps(result, separators=(",", ":"))),
            )
            db.execute(
                "DELETE FROM command_results WHERE id NOT IN "
                "(SELECT id FROM command_results ORDER BY at DESC LIMIT ?) AND sent = 1",
                (COMMAND_RESULTS_KEPT,),
            )

    def results_to_send(self, since: float) -> list[tuple[str, Json]]:
        """Results never sent, and those saved after ``since`` (sent, but perhaps lost
        with the link; the server ignores a result it already has)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, body FROM command_results WHERE sent = 0 OR at >= ? ORDER BY at",
                (since,),
            ).fetchall()
        return [(i, dict(json.loads(b))) for i, b in rows]

    def mark_sent(self, command_id: str) -> None:
        with self._txn() as db:
            db.execute("UPDATE command_results SET sent = 1 WHERE id = ?", (command_id,))


def _check(stream: str) -> str:
    if stream not in STREAMS:
        raise ValueError(f"unknown stream {stream!r}")
    return stream
