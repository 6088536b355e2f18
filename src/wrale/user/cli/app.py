"""The ``wrale`` Typer application: one sub-app per area."""

from __future__ import annotations

import typer

from wrale import __version__
from wrale.user.cli.central import central_app
from wrale.user.cli.commands import commands_app
from wrale.user.cli.demo import demo
from wrale.user.cli.enroll import register as register_device_commands
from wrale.user.cli.fleet_commands import register as register_fleet_commands
from wrale.user.cli.fleet_common import FleetCommand
from wrale.user.cli.metal import metal_app
from wrale.user.cli.sim import sim
from wrale.user.cli.templates import templates_app
from wrale.user.cli.twin import twin_app
from wrale.user.cli.watch import watch

app = typer.Typer(
    help="Wrale Fleet: physical-first management of fleets of Raspberry Pi-class boards.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish)
)
app.add_typer(metal_app, name="metal")
app.add_typer(central_app, name="central")
register_fleet_commands(app)
register_device_commands(app)
app.add_typer(twin_app, name="twin")
app.add_typer(commands_app, name="commands")
app.add_typer(templates_app, name="templates")
app.command("watch", cls=FleetCommand)(watch)
app.command(help="Run the demo: a central server, a simulated fleet in racks, scripted incidents.")(
    demo
)
app.command(help="Run N simulated boards (sim board + metal core + edge agent each).")(sim)


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
