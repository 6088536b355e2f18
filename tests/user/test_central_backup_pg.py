"""The PostgreSQL backup that docs/central/operations.md documents — ``pg_dump --format=custom``
of a central's database while it runs, ``pg_restore`` into an empty database, ``wrale central
migrate`` — run for real: every row of every table (partitions included) comes back."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import PG_ADMIN_DSN, _pg_or_skip, run_sync
from tests.user.metald_proc import WRALE
from tests.user.test_central_backup import populate
from tests.user.test_central_process import CentralProcess, clean_env

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


async def _admin(*sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        for statement in sql:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _dump(dsn: str) -> dict[str, list[str]]:
    """Every row of every table (the telemetry partitions' schema too), as text, sorted."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        names = [
            (r["nspname"], r["relname"])
            for r in await conn.fetch(
                "SELECT n.nspname, c.relname FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname IN ('public', 'telemetry_parts') AND c.relkind IN ('r', 'p')"
            )
        ]
        out: dict[str, list[str]] = {}
        for schema, name in names:
            rows = await conn.fetch(f'SELECT t::text AS row FROM ONLY "{schema}"."{name}" t')
            out[name if schema == "public" else f"{schema}.{name}"] = sorted(r["row"] for r in rows)
        return out
    finally:
        await conn.close()


def _dsn(name: str) -> str:
    return f"{PG_ADMIN_DSN.rsplit('/', 1)[0]}/{name}"


def test_pg_dump_and_pg_restore_lose_nothing(tmp_path: Path) -> None:
    _pg_or_skip()
    if not (shutil.which("pg_dump") and shutil.which("pg_restore")):
        pytest.fail("pg_dump and pg_restore come with PostgreSQL's client package")
    source, target = f"wrale_bk_{os.getpid()}", f"wrale_rs_{os.getpid()}"
    drop = [f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)' for n in (source, target)]
    run_sync(_admin(*drop, f'CREATE DATABASE "{source}"', f'CREATE DATABASE "{target}"'))
    url = _dsn(source).replace("postgresql://", "postgresql+asyncpg://")
    env = clean_env(
        WRALE_ADMIN_PASSWORD="admin-password-1", WRALE_SECRET_KEY="k" * 40, WRALE_DATABASE_URL=url
    )
    central = CentralProcess(tmp_path / "data", env)
    central.start()
    try:
        admin = central.login("admin", "admin-password-1")
        for tag in ("a", "b"):
            populate(central, admin, tag)
        dump_file = tmp_path / "central.dump"
        taken = subprocess.run(
            ["pg_dump", "--format=custom", f"--file={dump_file}", _dsn(source)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert taken.returncode == 0, taken.stderr
        assert httpx.get(f"{central.url}/readyz", timeout=10).status_code == 200
    finally:
        assert central.stop() == 0
    try:
        before = run_sync(_dump(_dsn(source)))
        restored = subprocess.run(
            ["pg_restore", "--no-owner", "--exit-on-error", f"--dbname={_dsn(target)}", dump_file],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert restored.returncode == 0, restored.stderr
        migrate = subprocess.run(
            [WRALE, "central", "migrate"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**env, "WRALE_DATABASE_URL": url.replace(source, target)},
            check=False,
        )
        assert migrate.returncode == 0, migrate.stderr
        after = run_sync(_dump(_dsn(target)))
        # the background jobs' leases: held by the running central when pg_dump read it,
        # released when it stopped (before was read after that); a restored one lapses
        # within its few seconds. Every other row must come back as it was.
        after.pop("leases")
        assert before.pop("leases") == []  # the stopped central let every lease go
        assert after == before
        assert len(after["users"]) == 3  # admin, user-a, user-b
        assert len(after["racks"]) == 6
        assert len(after["audit_log"]) >= 12
        assert any(n.startswith("telemetry_parts.telemetry_raw_") for n in after)  # partitions
    finally:
        run_sync(_admin(*drop))
