"""``wrale central backup`` and ``wrale central restore``: the SQLite database copied while the
central runs, and put back with the schema brought up to date. PostgreSQL is backed up with
its own tools (pg_dump / pg_restore), which these commands name when asked."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer

from wrale.shared.errors import WraleError
from wrale.user.cli.central_opts import (
    ConfigOpt,
    DatabaseOpt,
    DataDirOpt,
    migrate_schema,
    sub_settings,
)

ForceOpt = Annotated[bool, typer.Option("--force", help="overwrite an existing backup file")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="do not ask before replacing")]


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _describe(summary: Any) -> str:
    rows = ", ".join(f"{n} {t}" for t, n in summary.rows.items())
    mib = summary.size_bytes / 2**20
    return f"{summary.path}: {mib:.1f} MiB, schema {summary.revision}, {rows}"


def backup(
    ctx: typer.Context,
    out: Annotated[
        Path, typer.Argument(help="the backup file to write, e.g. central-$(date +%F).db")
    ],
    force: ForceOpt = False,
    config: ConfigOpt = None,
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Copy the SQLite database to OUT while the central runs (SQLite's online backup)."""
    from wrale.fleet.brain import backup as store

    settings = sub_settings(ctx, config, database_url, data_dir)
    try:
        source = store.sqlite_path(settings.database_url)
        summary = store.backup(source, out, overwrite=force)
    except WraleError as exc:
        raise _fail(exc.message, 2 if exc.code == "config_error" else 1) from None
    typer.echo(f"backed up {source} in {summary.seconds:.2f} s")
    typer.echo(_describe(summary))
    key = Path(settings.data_dir) / "secret.key"
    if settings.secret_key is None and key.exists():
        typer.echo(
            f"keep {key} with it (or set WRALE_SECRET_KEY): without that key a restored "
            "central signs everyone out; no data depends on it"
        )


def restore(
    ctx: typer.Context,
    backup_file: Annotated[Path, typer.Argument(help="a file written by `wrale central backup`")],
    yes: YesOpt = False,
    config: ConfigOpt = None,
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Replace the SQLite database with BACKUP_FILE, then bring its schema up to date.

    Stop the central (every process using the database) first. The database replaced is kept
    beside it as ``central.db.before-restore-<time>``."""
    from wrale.fleet.brain import backup as store
    from wrale.fleet.brain import schema

    settings = sub_settings(ctx, config, database_url, data_dir)
    try:
        target = store.sqlite_path(settings.database_url)
        summary = store.inspect(backup_file)
    except WraleError as exc:
        raise _fail(exc.message, 2 if exc.code == "config_error" else 1) from None
    if summary.revision is None or not schema.is_known(summary.revision):
        raise _fail(
            f"{backup_file} has schema {summary.revision}, which this version of Wrale does "
            "not know (a newer release wrote it): restore it with that release"
        )
    typer.echo(f"backup {_describe(summary)}")
    if not yes and not typer.confirm(f"replace {target} with it?", default=False):
        raise typer.Exit(1)
    try:
        kept = store.restore(backup_file, target)
    except WraleError as exc:
        raise _fail(exc.message) from None
    if kept is not None:
        typer.echo(f"the database it replaced is kept as {kept}")
    revision = asyncio.run(migrate_schema(settings))
    typer.echo(f"restored {target}; schema at revision {revision}")
