"""The agent's durable records beside the outbox: the desired and reported twins, the mode
and the results of commands. Each write commits at once (rare, and acted upon); a mixin of
``EdgeStore``, which owns the SQLite connection, its lock and its transactions."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

import msgspec

Json = dict[str, Any]
COMMAND_RESULTS_KEPT = 1000


class Twin(msgspec.Struct, frozen=True):
    """A stored twin document with its version (reported: also what it answers)."""

    version: int
    doc: Json
    applied_desired_version: int = 0
    rejected: dict[str, str] = msgspec.field(default_factory=dict)


def kv_get(db: sqlite3.Connection, key: str, default: Any = None) -> Any:
    row = db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
    return default if row is None else json.loads(row[0])


def kv_put(db: sqlite3.Connection, key: str, value: Any) -> None:
    db.execute(
        "INSERT INTO kv (key, value) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, json.dumps(value, separators=(",", ":"))),
    )


class Records:
    """Twins, mode and command results over the store's connection (see ``EdgeStore``)."""

    _db: sqlite3.Connection
    _lock: threading.RLock

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

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            return kv_get(self._db, key, default)

    def put(self, key: str, value: Any) -> None:
        with self._txn() as db:
            kv_put(db, key, value)

    # -------------------------------------------------------------------- twins

    def save_desired(self, version: int, doc: Json) -> None:
        """Store the desired document (one transaction, durable before anything acts)."""
        with self._txn() as db:
            kv_put(db, "desired", {"version": version, "doc": doc})

    def desired(self) -> Twin | None:
        raw = self.get("desired")
        return None if raw is None else Twin(int(raw["version"]), dict(raw["doc"]))

    def save_reported(self, twin: Twin) -> None:
        with self._txn() as db:
            kv_put(
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
