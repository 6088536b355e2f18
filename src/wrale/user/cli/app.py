"""The ``wrale`` Typer application: one sub-app per area."""

from __future__ import annotations

import typer

from wrale import __version__
from wrale.user.cli.central import central_app
from wrale.user.cli.demo import demo
from wrale.user.cli.fleet_commands import register as register_fleet_commands
from wrale.user.cli.metal import metal_app

app = typer.Typer(
    help="Wrale Fleet: physical-first management of fleets of Raspberry Pi-class boards.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(metal_app, name="metal")
app.add_typer(central_app, name="central")
register_fleet_commands(app)
app.command(help="Run a demo: a simulated board with metald (later: central + fleet).")(demo)


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
    help="Run the hardware daemon of this board (see `wrale metald --help`).",
)
def metald(ctx: typer.Context) -> None:
    from wrale.metal.daemon import main as metald_main

    raise typer.Exit(metald_main(list(ctx.args)))


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)
