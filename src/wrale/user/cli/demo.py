"""``wrale demo``: the main job on a fresh machine. For now: a simulated board's metald."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def demo(
    port: Annotated[int, typer.Option(help="metald port")] = 8421,
    data_dir: Annotated[Path, typer.Option(help="where state is kept")] = Path("./wrale-data"),
    sim_speed: Annotated[float, typer.Option(help="simulated seconds per second")] = 1.0,
) -> None:
    """Run a simulated board's metald in development mode and say how to use it."""
    from wrale.metal.daemon import main as metald_main

    url = f"http://127.0.0.1:{port}"
    typer.echo(
        "\nWrale Fleet demo: a simulated Raspberry Pi 5 with its hardware daemon (metald).\n"
        f"  API:      {url}/v1/state   (Authorization: Bearer wrale-dev-key)\n"
        f"  metrics:  {url}/metrics\n"
        "  try, in another terminal:\n"
        "    .venv/bin/wrale metal status\n"
        "    .venv/bin/wrale metal sim load 100 && .venv/bin/wrale metal sim fault fan_failure\n"
        "    .venv/bin/wrale metal events --follow\n"
        "    .venv/bin/wrale metal diag\n"
        "  Ctrl-C stops it.\n"
    )
    raise typer.Exit(
        metald_main(
            [
                "--backend",
                "sim",
                "--dev",
                "--listen",
                f"127.0.0.1:{port}",
                "--data-dir",
                str(data_dir / "metald"),
                "--sim-speed",
                str(sim_speed),
            ]
        )
    )
