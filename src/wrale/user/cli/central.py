"""``wrale central``: the central server (migrate, then serve with uvicorn),
``wrale central migrate`` (bring the schema to the newest revision and stop), ``backup`` and
``restore`` (central_backup.py) and ``tenants``.

An entry point: it wires settings, database and app together and holds no logic of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from wrale.shared.central_settings import CentralSettings
from wrale.user.cli import central_backup
from wrale.user.cli.central_opts import (
    ConfigOpt,
    DatabaseOpt,
    DataDirOpt,
    central_settings,
    migrate_schema,
    sub_settings,
)

GRACEFUL_SHUTDOWN_S = 3  # open connections (dashboards' event streams) then are cut

central_app = typer.Typer(
    help="The central server: brain + API. Settings: defaults < --config TOML < WRALE_* "
    "environment < flags.",
    invoke_without_command=True,
    no_args_is_help=False,
)


def _display_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


async def _serve(settings: CentralSettings) -> None:
    import uvicorn

    from wrale.shared.logging import setup_logging
    from wrale.shared.redact import redact_access_logs
    from wrale.user.api.app import create_app, settle_heap
    from wrale.user.api.edge_wire import use_edge_wire
    from wrale.user.api.routes.edge import WS_MAX_SIZE
    from wrale.user.simfleet.digital_copy import DigitalCopy

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            """SIGINT / SIGTERM stop the server gracefully and the process exits 0 (as
            metald does), rather than uvicorn's re-raising the signal once it has stopped."""
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            sigs = (signal.SIGINT, signal.SIGTERM)
            originals = {sig: signal.signal(sig, self.handle_exit) for sig in sigs}
            try:
                yield
            finally:
                for sig, handler in originals.items():
                    signal.signal(sig, handler)

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:  # the real port, even when --port 0 picked one
                port = self.servers[0].sockets[0].getsockname()[1]
                url = f"http://{_display_host(settings.host)}:{port}"
                typer.echo(
                    f"Wrale Fleet central (schema {revision}) on {url}\n"
                    f"  API docs: {url}/docs   ready: {url}/readyz   metrics: {url}/metrics"
                )

    setup_logging(settings.log_level)
    redact_access_logs()  # ?token= of browser WebSockets never reaches the log
    revision = await migrate_schema(settings)
    app = create_app(settings, migrate=False, dry_runner=DigitalCopy())
    settle_heap()
    server = Server(
        use_edge_wire(
            uvicorn.Config(
                app,
                host=settings.host,
                port=settings.port,
                log_level=settings.log_level.lower(),
                lifespan="on",
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
                log_config=None,  # the process's logging setup, not uvicorn's own
                ws_max_size=WS_MAX_SIZE,  # no WebSocket message bigger than a protocol frame
            ),
            app.state.hub,  # the device channel's sockets on their own protocol (edge_wire)
        )
    )
    await server.serve()
    if not server.started:
        raise typer.Exit(1)


@central_app.callback()
def central(
    ctx: typer.Context,
    config: ConfigOpt = None,
    database_url: DatabaseOpt = None,
    host: Annotated[str | None, typer.Option(help="address to listen on (127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="port (8080; 0 picks a free one)")] = None,
    data_dir: DataDirOpt = None,
    dev: Annotated[
        bool | None, typer.Option("--dev", help="development mode", show_default=False)
    ] = None,
    log_level: Annotated[str | None, typer.Option(help="DEBUG, INFO, WARNING or ERROR")] = None,
    mqtt_url: Annotated[
        str | None,
        typer.Option(
            help="also serve devices over this MQTT broker, e.g. mqtts://USER:PASS@HOST:8883"
            " (optional /TOPIC-ROOT, ?ca_file=PATH, ?client_id=ID)"
        ),
    ] = None,
    public_url: Annotated[
        str | None,
        typer.Option(
            help="the address boards and people reach this server at (behind a proxy, its "
            "https://… address): the dashboard's printed commands use it"
        ),
    ] = None,
) -> None:
    """Run the central server: upgrade the schema, then serve the API and dashboard."""
    flags = {
        "database_url": database_url,
        "host": host,
        "port": port,
        "data_dir": data_dir,
        "dev": dev,
        "log_level": log_level.upper() if log_level else None,
        "mqtt_url": mqtt_url,
        "public_url": public_url,
    }
    if ctx.invoked_subcommand is not None:
        ctx.obj = (config, flags)
        return
    settings = central_settings(config, **flags)
    asyncio.run(_serve(settings))


@central_app.command()
def migrate(
    ctx: typer.Context,
    config: ConfigOpt = None,
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Bring the database schema to the newest revision, print it, and stop."""
    settings = sub_settings(ctx, config, database_url, data_dir)
    revision = asyncio.run(migrate_schema(settings))
    typer.echo(f"database schema at revision {revision}")


# ----------------------------------------------------------------------------- backup

central_app.command("backup")(central_backup.backup)
central_app.command("restore")(central_backup.restore)

# ----------------------------------------------------------------------------- tenants

tenants_app = typer.Typer(
    help="Organisations on this central server (the platform operator's, on the server: "
    "there is no cross-organisation role in the API).",
    no_args_is_help=True,
)
central_app.add_typer(tenants_app, name="tenants")


def _tenant_settings(ctx: typer.Context) -> CentralSettings:
    parent: tuple[Path | None, dict[str, Any]] = ctx.obj or (None, {})
    return central_settings(parent[0], **parent[1])


def _run_db(ctx: typer.Context, fn: Any) -> Any:
    """Run ``fn(session)`` in one transaction against the configured database."""
    from wrale.fleet.brain.db import Database
    from wrale.shared.errors import WraleError

    settings = _tenant_settings(ctx)

    async def go() -> Any:
        db = Database(settings.database_url)
        try:
            async with db.session() as session:
                return await fn(session)
        finally:
            await db.dispose()

    try:
        return asyncio.run(go())
    except WraleError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None


@tenants_app.command("list")
def tenants_list(ctx: typer.Context) -> None:
    """Every organisation with its status, quotas and usage."""
    from wrale.fleet.brain.services import tenants

    async def go(session: Any) -> list[dict[str, Any]]:
        return [await tenants.view(session, t) for t in await tenants.list_all(session)]

    for t in _run_db(ctx, go):
        typer.echo(
            f"{t['name']:<24} {t['status']:<10} devices {t['usage']['devices']}/"
            f"{t['quotas']['devices']}  users {t['usage']['users']}/{t['quotas']['users']}"
        )


@tenants_app.command("create")
def tenants_create(
    ctx: typer.Context,
    name: str,
    admin: Annotated[str, typer.Option(help="username of its first admin")],
    max_devices: Annotated[int, typer.Option(help="device quota")] = 10_000,
    max_users: Annotated[int, typer.Option(help="user quota")] = 100,
) -> None:
    """Create an organisation and its first admin (the password is printed once)."""
    from wrale.fleet.brain.services import tenants

    async def go(session: Any) -> str:
        _, password = await tenants.create(
            session, name, admin, max_devices=max_devices, max_users=max_users
        )
        return password

    password = _run_db(ctx, go)
    typer.echo(f"organisation {name!r} created; admin {admin!r} password: {password}")


@tenants_app.command("suspend")
def tenants_suspend(ctx: typer.Context, name: str) -> None:
    """Suspend an organisation: its users, tokens and devices are refused until activated."""
    _set_status(ctx, name, "suspended")


@tenants_app.command("activate")
def tenants_activate(ctx: typer.Context, name: str) -> None:
    """Lift a suspension."""
    _set_status(ctx, name, "active")


def _set_status(ctx: typer.Context, name: str, status: str) -> None:
    from wrale.fleet.brain.services import tenants

    async def go(session: Any) -> None:
        await tenants.set_status(session, await tenants.find(session, name), status)

    _run_db(ctx, go)
    typer.echo(f"organisation {name!r} is {status}")


@tenants_app.command("quota")
def tenants_quota(
    ctx: typer.Context,
    name: str,
    devices: Annotated[int | None, typer.Option(help="device quota")] = None,
    users: Annotated[int | None, typer.Option(help="user quota")] = None,
) -> None:
    """Change an organisation's quotas."""
    from wrale.fleet.brain.services import tenants

    async def go(session: Any) -> None:
        tenant = await tenants.find(session, name)
        await tenants.set_quotas(session, tenant, max_devices=devices, max_users=users)

    _run_db(ctx, go)
    typer.echo(f"quotas of {name!r} updated")
