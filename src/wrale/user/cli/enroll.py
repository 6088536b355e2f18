"""``wrale enroll`` (a board trades an enrollment token for its own credential, written to
``<state-dir>/credentials.json`` with mode 0600), and the Typer entries of ``wrale edge``
and ``wrale device``. All three run without Typer from ``main.py`` (the board's install has
no CLI framework); these entries list them in ``wrale --help`` and share their code."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from wrale.user.cli.board_enroll import DEFAULT_STATE_DIR, EnrollRequest, run_enroll


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
    code = run_enroll(
        EnrollRequest(
            central=central,
            token=token,
            state_dir=state_dir,
            name=name,
            model=model,
            capabilities=tuple(capability or ()),
            ca_file=ca_file,
            insecure=insecure,
            force=force,
        )
    )
    if code:
        raise typer.Exit(code)


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
