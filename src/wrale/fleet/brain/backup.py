"""Backing up and restoring the central's SQLite database with SQLite's online backup API:
a consistent copy taken while the central runs (its writers are not blocked), checked before
it is trusted. Plain ``sqlite3`` for a command-line tool: never called on the event loop."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from wrale.shared.errors import ConfigError, InvalidRequestError

SQLITE_MAGIC = b"SQLite format 3\x00"
COUNTED = ("tenants", "users", "devices", "racks", "alerts", "telemetry_raw", "audit_log")


@dataclass(frozen=True)
class Summary:
    """What a backup file holds: enough to tell an operator it is the right one."""

    path: Path
    size_bytes: int
    revision: str | None
    rows: dict[str, int]
    seconds: float


def sqlite_path(database_url: str) -> Path:
    """The file of a ``sqlite+aiosqlite:///PATH`` URL; any other database is refused."""
    prefix = "sqlite+aiosqlite:///"
    if not database_url.startswith(prefix) or database_url == prefix:
        raise ConfigError(
            "wrale central backup/restore copy a SQLite database; for PostgreSQL use "
            "pg_dump and pg_restore (docs/central/operations.md, 'Backup and restore')"
        )
    path = database_url.removeprefix(prefix).split("?", 1)[0]
    if path == ":memory:":
        raise ConfigError("an in-memory database has nothing to back up")
    return Path(path)


@contextlib.contextmanager
def _open(path: Path, *, read_only: bool) -> Iterator[sqlite3.Connection]:
    mode = "ro" if read_only else "rwc"
    conn = sqlite3.connect(f"file:{path}?mode={mode}", uri=True, timeout=30.0)
    try:
        yield conn
    finally:
        conn.close()


def backup(source: Path, dest: Path, *, overwrite: bool = False) -> Summary:
    """Copy the live database ``source`` to ``dest`` as one self-contained file.

    The copy is one read transaction of the source (WAL: writers go on meanwhile), written
    to a temporary file beside ``dest``, checked, synced and then renamed into place, so a
    failed backup never leaves a half-written file under the name asked for."""
    started = time.monotonic()
    if not source.is_file():
        raise InvalidRequestError(f"no database at {source}")
    if dest.exists() and not overwrite:
        raise InvalidRequestError(f"{dest} exists; choose another name or pass --force")
    if dest.resolve() == source.resolve():
        raise InvalidRequestError("the backup cannot be written over the database itself")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    partial.unlink(missing_ok=True)
    try:
        with _open(source, read_only=False) as src, _open(partial, read_only=False) as dst:
            src.backup(dst)  # all pages in one step: one consistent snapshot
            dst.execute("PRAGMA journal_mode=DELETE")  # one file, no -wal beside it
        summary = inspect(partial)
        with partial.open("rb") as f:
            os.fsync(f.fileno())
        partial.replace(dest)
    finally:
        partial.unlink(missing_ok=True)
    return Summary(dest, summary.size_bytes, summary.revision, summary.rows, _since(started))


def inspect(path: Path) -> Summary:
    """Check that ``path`` is a whole central database and say what it holds.

    Refuses (``InvalidRequestError``) a file that is not SQLite, fails SQLite's quick
    check, or has no schema revision (not a central's database)."""
    started = time.monotonic()
    if not path.is_file():
        raise InvalidRequestError(f"no file at {path}")
    with path.open("rb") as f:
        if f.read(len(SQLITE_MAGIC)) != SQLITE_MAGIC:
            raise InvalidRequestError(f"{path} is not a SQLite database")
    try:
        with _open(path, read_only=True) as conn:
            check = [r[0] for r in conn.execute("PRAGMA quick_check")]
            if check != ["ok"]:
                raise InvalidRequestError(f"{path} is damaged: {'; '.join(check[:3])}")
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            if "alembic_version" not in tables:
                raise InvalidRequestError(f"{path} is not a Wrale central database")
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            rows = {
                # t is one of COUNTED's fixed names, never input
                t: int(conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0])  # noqa: S608
                for t in COUNTED
                if t in tables
            }
    except sqlite3.DatabaseError as exc:
        raise InvalidRequestError(f"{path} cannot be read as a database: {exc}") from None
    revision = str(row[0]) if row else None
    return Summary(path, path.stat().st_size, revision, rows, _since(started))


def restore(backup_file: Path, target: Path) -> Path | None:
    """Write the checked ``backup_file`` over the database ``target``.

    The database it replaces is first copied to ``<target>.before-restore-<time>`` (returned;
    None when there was none). The copy goes through the backup API into the target, so a
    reader of the target sees either the old database or the restored one, never a mix."""
    inspect(backup_file)
    if target.exists() and backup_file.resolve() == target.resolve():
        raise InvalidRequestError("the backup is the database itself: nothing to restore")
    kept: Path | None = None
    if target.exists():
        stamp = time.strftime("%Y%m%d-%H%M%S")
        kept = backup(target, target.with_name(f"{target.name}.before-restore-{stamp}")).path
    target.parent.mkdir(parents=True, exist_ok=True)
    with _open(backup_file, read_only=True) as src, _open(target, read_only=False) as dst:
        src.backup(dst)
    return kept


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)
