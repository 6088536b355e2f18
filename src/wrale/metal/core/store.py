"""The board's own durable memory (SQLite): events, security state, diagnostics history.

Events are committed with ``synchronous=FULL`` before anyone is told about them, so a
power cut right after a tamper loses nothing. Calls block; the engine runs them in a thread.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from wrale.metal.core.events import Event, EventType, Severity

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    type TEXT NOT NULL,
    severity TEXT NOT NULL,
    message TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS diag_results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    body TEXT NOT NULL
);
"""


class DeviceStore:
    """One SQLite file per board; ``":memory:"`` for tests that need no restart."""

    def __init__(
        self, path: Path | str, *, event_retention: int = 10_000, diag_retention: int = 1_000
    ) -> None:
        if isinstance(path, Path):
            path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.event_retention = event_retention
        self.diag_retention = diag_retention
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA cache_size=-512")  # KiB: the board has little memory
        self._db.executescript(_SCHEMA)
        self._appended = 0

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -------------------------------------------------------------------- events

    def append_events(self, events: Iterable[Event]) -> list[Event]:
        """Store events in one transaction; return them with their ids."""
        stored: list[Event] = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for e in events:
                    cur = self._db.execute(
                        "INSERT INTO events (at, type, severity, message, data) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (e.at, e.type.value, e.severity.value, e.message, json.dumps(e.data)),
                    )
                    stored.append(
                        Event(e.type, e.severity, e.at, e.message, e.data, id=cur.lastrowid)
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._appended += len(stored)
            if self._appended >= 100:
                self._appended = 0
                self._db.execute(
                    "DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - ?",
                    (self.event_retention,),
                )
        return stored

    def events(
        self,
        *,
        since_id: int | None = None,
        limit: int = 100,
        types: Iterable[str] | None = None,
        min_severity: Severity | None = None,
    ) -> list[Event]:
        """Events after ``since_id`` (oldest first), or else the latest ``limit``."""
        where: list[str] = []
        args: list[object] = []
        if since_id is not None:
            where.append("id > ?")
            args.append(since_id)
        type_list = list(types or [])
        if type_list:
            where.append(f"type IN ({','.join('?' * len(type_list))})")
            args.extend(type_list)
        if min_severity is not None:
            allowed = [s.value for s in Severity][list(Severity).index(min_severity) :]
            where.append(f"severity IN ({','.join('?' * len(allowed))})")
            args.extend(allowed)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        order = "ASC" if since_id is not None else "DESC"
        sql = f"SELECT id, at, type, severity, message, data FROM events {clause} "  # noqa: S608
        sql += f"ORDER BY id {order} LIMIT ?"
        with self._lock:
            rows = self._db.execute(sql, [*args, limit]).fetchall()
        if order == "DESC":
            rows.reverse()
        return [
            Event(EventType(t), Severity(s), at, msg, json.loads(data), id=i)
            for i, at, t, s, msg, data in rows
        ]

    # -------------------------------------------------------------------- state

    def get_state(self, key: str) -> Any:
        with self._lock:
            row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_state(self, key: str, value: Any) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO kv (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value)),
            )

    # -------------------------------------------------------------------- diagnostics

    def add_diag_results(self, results: Iterable[dict[str, Any]]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            for r in results:
                self._db.execute(
                    "INSERT INTO diag_results (at, body) VALUES (?, ?)",
                    (float(r.get("timestamp", 0.0)), json.dumps(r)),
                )
            self._db.execute(
                "DELETE FROM diag_results WHERE id <= (SELECT MAX(id) FROM diag_results) - ?",
                (self.diag_retention,),
            )
            self._db.execute("COMMIT")

    def diag_history(self, limit: int = 100) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT body FROM diag_results ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
        return [json.loads(body) for (body,) in rows]
