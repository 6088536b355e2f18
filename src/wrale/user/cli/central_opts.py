"""The options and settings every ``wrale central`` command shares (the server, ``migrate``,
``backup``, ``restore``): a config file, the database and the data directory, layered as
defaults < TOML < WRALE_* environment < flags."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from wrale.shared.central_settings import CentralSettings
from wrale.shared.config import load_settings
from wrale.shared.errors import ConfigError

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="TOML file, e.g. /etc/wrale/central.toml")
]
DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        help="sqlite+aiosqlite:///PATH (default ./wrale-data/central.db) or "
        "postgresql+asyncpg://USER@HOST/DB"
    ),
]
DataDirOpt = Annotated[Path | None, typer.Option(help="where the SQLite file and key live")]


def central_settings(config: Path | None, **flags: Any) -> CentralSettings:
    try:
        settings = load_settings(CentralSettings, config_file=config, flags=flags)
        if "database_url" not in settings.model_fields_set:
            # no database chosen: the SQLite file lives in the data directory
            url = f"sqlite+aiosqlite:///{Path(settings.data_dir) / 'central.db'}"
            settings = settings.model_copy(update={"database_url": url})
    except ConfigError as exc:
        typer.echo(f"wrale central: {exc.message}", err=True)
        raise typer.Exit(2) from None
    return settings


async def migrate_schema(settings: CentralSettings) -> str | None:
    from wrale.fleet.brain import schema
    from wrale.fleet.brain.db import Database

    db = Database(settings.database_url)
    try:
        await schema.upgrade(db)
        return await schema.current_revision(db)
    finally:
        await db.dispose()


def sub_settings(
    ctx: typer.Context, config: Path | None, database_url: str | None, data_dir: Path | None
) -> CentralSettings:
    """The settings of a ``wrale central`` subcommand: its own flags over the parent's."""
    parent: tuple[Path | None, dict[str, Any]] = ctx.obj or (None, {})
    flags = dict(parent[1])
    flags["database_url"] = database_url or flags.get("database_url")
    flags["data_dir"] = data_dir or flags.get("data_dir")
    return central_settings(config or parent[0], **flags)
