"""The edge store on disk: its SQLite file (pragmas, schema) and the statements on the
outbox table. Each function runs its statements on the connection it is given and returns
what SQLite says; no locking, no transactions, no counters: ``EdgeStore`` decides when.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

SCHEMA = """
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

# (seq, at, n, body): one outbox row as stored; ``n`` items in the JSON ``body``
StoredRow = tuple[int, float, int, str]


def connect(path: Path | str, synchronous: str) -> sqlite3.Connection:
    """Open (or create) the store's file, in WAL mode with the given ``synchronous``."""
    db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.execute("PRAGMA cache_size=-256")  # KiB: the board has little memory
    db.executescript(SCHEMA)
    return db


def counts(db: sqlite3.Connection) -> Iterator[tuple[str, int]]:
    """(stream, rows) of every stream with rows in the outbox."""
    return db.execute("SELECT stream, COUNT(*) FROM outbox GROUP BY stream")


def zero_ages(db: sqlite3.Connection) -> None:
    """Every row's ``at`` to 0 (rows written with wall-clock times, before the age clock)."""
    db.execute("UPDATE outbox SET at = 0")


def insert(db: sqlite3.Connection, stream: str, rows: Iterable[StoredRow]) -> None:
    db.executemany(
        "INSERT INTO outbox (stream, seq, at, n, body) VALUES (?, ?, ?, ?, ?)",
        [(stream, *row) for row in rows],
    )


def after(db: sqlite3.Connection, stream: str, seq: int, limit: int) -> Iterator[StoredRow]:
    """Rows with a seq above ``seq``, oldest first, ``limit`` at most (read as iterated)."""
    return db.execute(
        "SELECT seq, at, n, body FROM outbox WHERE stream = ? AND seq > ? ORDER BY seq LIMIT ?",
        (stream, seq, limit),
    )


def delete_through(db: sqlite3.Connection, stream: str, seq: int) -> int:
    """Delete the rows up to ``seq``; returns how many."""
    return db.execute("DELETE FROM outbox WHERE stream = ? AND seq <= ?", (stream, seq)).rowcount


def oldest_at(db: sqlite3.Connection, stream: str) -> float | None:
    """The age (``at``) of the stream's oldest row; ``None`` when it has none."""
    row = db.execute(
        "SELECT at FROM outbox WHERE stream = ? ORDER BY seq LIMIT 1", (stream,)
    ).fetchone()
    return None if row is None else float(row[0])


def delete_older(db: sqlite3.Connection, stream: str, cutoff: float, limit: int) -> int:
    """Delete rows older than ``cutoff`` among the ``limit`` oldest; returns how many."""
    return db.execute(
        "DELETE FROM outbox WHERE stream = ? AND seq IN (SELECT seq FROM outbox "
        "WHERE stream = ? ORDER BY seq LIMIT ?) AND at < ?",
        (stream, stream, limit, cutoff),
    ).rowcount


def delete_oldest(db: sqlite3.Connection, stream: str, n: int) -> int:
    """Delete the ``n`` oldest rows; returns how many."""
    return db.execute(
        "DELETE FROM outbox WHERE stream = ? AND seq IN "
        "(SELECT seq FROM outbox WHERE stream = ? ORDER BY seq LIMIT ?)",
        (stream, stream, n),
    ).rowcount


def renumber(db: sqlite3.Connection, stream: str, by: int) -> None:
    """Add ``by`` to the seq of every row of the stream."""
    rows = db.execute(
        "SELECT seq FROM outbox WHERE stream = ? ORDER BY seq DESC", (stream,)
    ).fetchall()
    for (seq,) in rows:  # highest first: no key is ever taken twice
        db.execute(
            "UPDATE outbox SET seq = ? WHERE stream = ? AND seq = ?", (seq + by, stream, seq)
        )
