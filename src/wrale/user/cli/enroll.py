"""``wrale enroll`` (a board trades an enrollment token for its own credential, written to
``<state-dir>/credentials.json`` with mode 0600), and the Typer entries of ``wrale edge``
and ``wrale device`` (whose code runs without Typer, see ``main.py``)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from wrale.shared.errors import WraleError

DEFAULT_STATE_DIR = Path("./wrale-data/device")


def enroll(
    central: Annotated[str, typer.Option(help="central server URL, e.g. https://fleet.example")],
    token: Annotated[str, typer.Option(help="enrollment token (wet_…)", envvar="WRALE_TOKEN")],
    name: Annotated[
        str | None, typer.Option(help="device name (default: given by the server)")
    ] = None,
    state_dir: Annotated[
        Path, typer.Option(help="where the credential is written (the agent's state dir)")
    ] = DEFAULT_STATE_DIR,
    model: Annotated[str | None, typer.Option(help="hardware model")] = None,
    capability: Annotated[
        list[str] | None, typer.Option(help="a capability, e.g. sim (repeatable)")
    ] = None,
    ca_file: Annotated[Path | None, typer.Option(help="CA bundle of a private fleet")] = None,
    insecure: Annotated[
        bool, typer.Option(help="allow plain http:// to another machine (logs a warning)")
    ] = False,
    force: Annotated[bool, typer.Option(help="replace an existing credential")] = False,
) -> None:
    """Enroll this board with the central server and store its credential (mode 0600)."""
    from wrale.fleet.edge.credentials import enroll as enroll_device
    from wrale.fleet.edge.settings import CREDENTIALS_FILE

    path = state_dir / CREDENTIALS_FILE
    if path.exists() and not force:
        typer.echo(
            f"wrale enroll: {path} already exists (this board is enrolled); --force replaces it",
            err=True,
        )
        raise typer.Exit(2)
    try:
        creds = asyncio.run(
            enroll_device(
                central,
                token,
                name=name,
                model=model,
                capabilities=capability or None,
                insecure=insecure,
                ca_file=ca_file,
            )
        )
        creds.save(path)
    except WraleError as exc:
        typer.echo(f"wrale enroll: {exc.message}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"enrolled as {creds.name or creds.device_id} (device {creds.device_id})")
    typer.echo(f"credential written to {path} (mode 0600)")
    typer.echo(f"next: wrale device run --state-dir {state_dir}")


_PASSTHROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


def edge(ctx: typer.Context) -> None:
    """Run the edge agent beside a running metald (see `wrale edge --help`)."""
    from wrale.user.cli.edge import main as edge_main

    raise typer.Exit(edge_main(list(ctx.args)))


def device(ctx: typer.Context) -> None:
    """Run metald and the edge agent in one process: `wrale device run --help`."""
    from wrale.user.cli.device import main as device_main

    raise typer.Exit(device_main(list(ctx.args)))


def register(app: typer.Typer) -> None:
    """Add ``enroll``, ``edge`` and ``device`` to the ``wrale`` app."""
    app.command(help="Enroll this board with a central server (writes its credential).")(enroll)
    app.command(context_settings=_PASSTHROUGH, add_help_option=False)(edge)
    app.command(context_settings=_PASSTHROUGH, add_help_option=False)(device)
