"""`wrale central backup` / `restore` (the CLI in this process) against a real central process
on SQLite: a backup taken while the API writes, a restore that loses nothing (every row of
every table compared), and the refusals (not a database, a newer schema, PostgreSQL)."""

from __future__ import annotations

import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.user.test_central_process import CentralProcess, clean_env
from wrale.fleet.brain import schema
from wrale.user.cli.app import app

pytestmark = pytest.mark.slow
ENV = clean_env(WRALE_ADMIN_PASSWORD="admin-password-1", WRALE_SECRET_KEY="k" * 40)


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


def wrale(*args: str, stdin: str | None = None) -> Ran:
    """``wrale central ARGS`` as the console script runs it, in this process (the central it
    backs up, where there is one, is a real process)."""
    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("WRALE_")}
    env = unset | {k: v for k, v in ENV.items() if k.startswith("WRALE_")}
    result = CliRunner().invoke(app, ["central", *args], input=stdin, env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a crash, not an answer: the test shows its traceback
    return Ran(result.exit_code, result.stdout, result.stderr)


def dump(db: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table, sorted: two databases holding the same data dump equal."""
    with sqlite3.connect(db) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return {n: sorted(conn.execute(f'SELECT * FROM "{n}"').fetchall(), key=repr) for n in names}


def populate(central: CentralProcess, admin: dict[str, str], tag: str) -> None:
    """A little of everything the API writes: users, topology, groups (and their audit)."""
    url = f"{central.url}/api/v1"
    site = httpx.post(f"{url}/sites", headers=admin, json={"name": f"site-{tag}"}, timeout=10)
    assert site.status_code == 201, site.text
    room = httpx.post(
        f"{url}/rooms", headers=admin, json={"site_id": site.json()["id"], "name": "hall"}
    )
    assert room.status_code == 201, room.text
    for i in range(3):
        rack = httpx.post(
            f"{url}/racks",
            headers=admin,
            json={"room_id": room.json()["id"], "name": f"rack-{tag}-{i}", "units": 42},
        )
        assert rack.status_code == 201, rack.text
    group = httpx.post(f"{url}/groups", headers=admin, json={"name": f"group-{tag}"})
    assert group.status_code == 201, group.text
    user = httpx.post(
        f"{url}/users",
        headers=admin,
        json={"username": f"user-{tag}", "password": "password-123", "role": "viewer"},
        timeout=10,
    )
    assert user.status_code == 201, user.text


def usernames(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {r[0] for r in conn.execute("SELECT username FROM users")}


def test_backup_while_writing_then_restore_loses_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    central = CentralProcess(data, ENV)
    central.start()
    try:
        admin = central.login("admin", "admin-password-1")
        populate(central, admin, "before")

        # a backup taken while the API keeps writing is a consistent snapshot
        stop = threading.Event()
        written: list[str] = []

        def keep_writing() -> None:
            n = 0
            while not stop.is_set():
                populate(central, admin, f"during-{n}")
                written.append(f"user-during-{n}")
                n += 1

        writer = threading.Thread(target=keep_writing)
        writer.start()
        try:
            while len(written) < 2:
                stop.wait(0.05)
            online = wrale("backup", str(tmp_path / "online.db"), "--data-dir", str(data))
        finally:
            stop.set()
            writer.join(60)
        assert online.returncode == 0, online.stderr
        assert f"schema {schema.head_revision()}" in online.stdout
        with sqlite3.connect(tmp_path / "online.db") as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        in_backup = usernames(tmp_path / "online.db")
        assert {"admin", "user-before", *written[:2]} <= in_backup
        assert in_backup <= usernames(data / "central.db")
        assert not list(tmp_path.glob(".online.db.partial-*"))

        # quiet now: a backup holds exactly what the live database holds
        quiet = wrale("backup", str(tmp_path / "quiet.db"), "--data-dir", str(data))
        assert quiet.returncode == 0, quiet.stderr
        live = dump(data / "central.db")
        again = wrale("backup", str(tmp_path / "quiet.db"), "--data-dir", str(data))
        assert again.returncode == 1
        assert "exists" in again.stderr
    finally:
        assert central.stop() == 0

    # restored into a new data directory: every table, every row; the central serves it
    fresh = tmp_path / "fresh"
    restored = wrale("restore", str(tmp_path / "quiet.db"), "--data-dir", str(fresh), "--yes")
    assert restored.returncode == 0, restored.stderr
    assert f"schema at revision {schema.head_revision()}" in restored.stdout
    assert dump(fresh / "central.db") == live
    assert sum(len(rows) for rows in live.values()) > 50
    central = CentralProcess(fresh, ENV)
    central.start()
    try:
        central.login("user-before", "password-123")
        central.login(written[-1], "password-123")
        racks = httpx.get(
            f"{central.url}/api/v1/racks",
            headers=central.login("admin", "admin-password-1"),
            params={"limit": 500},
        )
        assert racks.status_code == 200, racks.text
        assert {"rack-before-0", "rack-before-2"} <= {r["name"] for r in racks.json()["items"]}
    finally:
        assert central.stop() == 0


def test_restore_over_a_database_keeps_the_one_it_replaces(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    for d in (old, new):
        assert wrale("migrate", "--data-dir", str(d)).returncode == 0
    with sqlite3.connect(new / "central.db") as conn:
        conn.execute("CREATE TABLE marker (x)")
        conn.execute("INSERT INTO marker VALUES ('new')")
    assert wrale("backup", str(tmp_path / "new.db"), "--data-dir", str(new)).returncode == 0
    before = dump(old / "central.db")

    asked = wrale("restore", str(tmp_path / "new.db"), "--data-dir", str(old), stdin="n\n")
    assert asked.returncode == 1  # the operator said no: nothing replaced
    assert dump(old / "central.db") == before

    done = wrale("restore", str(tmp_path / "new.db"), "--data-dir", str(old), stdin="y\n")
    assert done.returncode == 0, done.stderr
    kept = list(old.glob("central.db.before-restore-*"))
    assert len(kept) == 1
    assert f"kept as {kept[0]}" in done.stdout
    assert dump(kept[0]) == before
    assert dump(old / "central.db")["marker"] == [("new",)]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a database at all\n", "is not a SQLite database"),
        (None, "is not a Wrale central database"),
        (b"SQLite format 3\x00" + b"\xff" * 200, "cannot be read as a database"),
    ],
)
def test_restore_refuses_what_is_not_a_central_backup(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    bad = tmp_path / "bad.db"
    if content is None:
        with sqlite3.connect(bad) as conn:
            conn.execute("CREATE TABLE devices (id)")
    else:
        bad.write_bytes(content)
    out = wrale("restore", str(bad), "--data-dir", str(tmp_path / "d"), "--yes")
    assert out.returncode == 1
    assert message in out.stderr
    assert not (tmp_path / "d" / "central.db").exists()


def test_restore_refuses_a_schema_newer_than_this_release(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert wrale("migrate", "--data-dir", str(data)).returncode == 0
    assert wrale("backup", str(tmp_path / "b.db"), "--data-dir", str(data)).returncode == 0
    with sqlite3.connect(tmp_path / "b.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")
    out = wrale("restore", str(tmp_path / "b.db"), "--data-dir", str(data), "--yes")
    assert out.returncode == 1
    assert "ffffffffffff" in out.stderr
    assert "does not know" in out.stderr


def test_postgresql_is_pointed_at_pg_dump(tmp_path: Path) -> None:
    url = "postgresql+asyncpg://postgres@127.0.0.1/wrale"
    for args in (("backup", str(tmp_path / "x.db")), ("restore", str(tmp_path / "x.db"), "-y")):
        out = wrale("--database-url", url, *args)
        assert out.returncode == 2, out.stderr
        assert "pg_dump" in out.stderr
        assert not (tmp_path / "x.db").exists()


def test_backup_of_a_missing_database_says_so(tmp_path: Path) -> None:
    out = wrale("backup", str(tmp_path / "x.db"), "--data-dir", str(tmp_path / "none"))
    assert out.returncode == 1
    assert "no database at" in out.stderr
