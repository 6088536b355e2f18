"""``wrale sim``: a fleet of N simulated boards (sim backend + metal core + edge agent each)
in one process, connecting to a remote central server.

Boards without a credential enroll first with ``--enrollment-token`` (a multi-use token;
a token with a target rack puts them in that rack). Their state (credentials, outboxes,
metald stores) lives under ``--state-dir``, so a re-run is the same fleet, already enrolled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from wrale.user.simfleet.fleet import SimFleet

STATUS_EVERY_S = 30.0
NOISY = ("wrale.metal",)


def sim(
    central: Annotated[
        str, typer.Option(help="the central server, e.g. https://central.example:8443")
    ],
    devices: Annotated[int, typer.Option(min=1, max=100_000, help="simulated boards")] = 10,
    enrollment_token: Annotated[
        str | None,
        typer.Option(
            envvar="WRALE_ENROLLMENT_TOKEN",
            help="multi-use enrollment token for boards not enrolled yet",
        ),
    ] = None,
    state_dir: Annotated[Path, typer.Option(help="the fleet's state")] = Path("./wrale-data/sim"),
    speed: Annotated[
        float, typer.Option(min=0.1, max=3600, help="simulated physics seconds per real second")
    ] = 1.0,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="allow plain ws:// to a non-loopback host")
    ] = False,
    ca_file: Annotated[Path | None, typer.Option(help="CA bundle of a private fleet")] = None,
    mqtt_url: Annotated[
        str | None, typer.Option(help="use MQTT (mqtt[s]://HOST:PORT) instead of the WebSocket")
    ] = None,
    name_prefix: Annotated[
        str | None, typer.Option(help="board names start with this (default: sim-<random>)")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="varies hardware, places and loads")] = None,
    boards_per_rack: Annotated[int, typer.Option(min=1, max=39)] = 16,
    racks_per_room: Annotated[int, typer.Option(min=1, max=1000)] = 4,
    enroll_concurrency: Annotated[int, typer.Option(min=1, max=256)] = 8,
    ramp_s: Annotated[
        float,
        typer.Option(
            "--ramp-s", min=0, max=3600, help="spread the first connections over this long"
        ),
    ] = 0.0,
    metal_sample_s: Annotated[
        float,
        typer.Option(
            "--metal-sample-s",
            min=0.05,
            max=60,
            help="each board's metal core samples and runs its safety loops this often "
            "(metald's sample_interval_s); the agents' telemetry sampling is the fleet's "
            "sampling policy",
        ),
    ] = 1.0,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR")] = "WARNING",
) -> None:
    """Run N simulated boards, each with its own agent, against a central server."""
    from wrale.shared.logging import setup_logging

    setup_logging(log_level.upper())
    for name in NOISY:  # every board's own chatter: the central server has the events
        logging.getLogger(name).setLevel(max(logging.ERROR, logging.getLogger().level))
    code = asyncio.run(
        run_sim(
            central=central,
            devices=devices,
            token=enrollment_token,
            state_dir=state_dir,
            speed=speed,
            insecure=insecure,
            ca_file=ca_file,
            mqtt_url=mqtt_url,
            prefix=name_prefix,
            seed=seed,
            boards_per_rack=boards_per_rack,
            racks_per_room=racks_per_room,
            enroll_concurrency=enroll_concurrency,
            ramp_s=ramp_s,
            metal_sample_s=metal_sample_s,
        )
    )
    raise typer.Exit(code)


async def run_sim(
    *,
    central: str,
    devices: int,
    token: str | None,
    state_dir: Path,
    speed: float = 1.0,
    insecure: bool = False,
    ca_file: Path | None = None,
    mqtt_url: str | None = None,
    prefix: str | None = None,
    seed: int | None = None,
    boards_per_rack: int = 16,
    racks_per_room: int = 4,
    enroll_concurrency: int = 8,
    ramp_s: float = 0.0,
    metal_sample_s: float = 1.0,
) -> int:
    from wrale.fleet.sync.transport.base import require_secure
    from wrale.shared.errors import WraleError
    from wrale.user.simfleet.fleet import SimFleet
    from wrale.user.simfleet.plan import Layout

    try:  # refuse a plain-text URL to another machine before building anything
        require_secure(central, insecure=insecure)
    except WraleError as exc:
        typer.echo(f"wrale sim: {exc.message}", err=True)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    layout = Layout(boards_per_rack=boards_per_rack, racks_per_room=racks_per_room)
    fleet = SimFleet.planned(
        devices,
        state_dir,
        prefix=prefix,
        seed=seed,
        layout=layout,
        speed=speed,
        sample_interval_s=metal_sample_s,
    )
    try:
        await fleet.start()
        typer.echo(f"wrale sim: {len(fleet.devices)} simulated boards built in {state_dir}")
        missing = len(fleet.unenrolled())
        if missing:
            typer.echo(f"wrale sim: enrolling {missing} board(s) at {central} …")
        enrolled = await fleet.enroll(
            central, token, insecure=insecure, ca_file=ca_file, concurrency=enroll_concurrency
        )
        if missing:
            typer.echo(f"wrale sim: {enrolled} of {missing} enrolled")
        factory = fleet.edge_agents(central, insecure=insecure, ca_file=ca_file, mqtt_url=mqtt_url)
        agents = await fleet.attach_agents(factory)
        if not agents:
            typer.echo("wrale sim: no board is enrolled; nothing to run", err=True)
            return 1
        typer.echo(f"wrale sim: {agents} agents connecting to {central}; Ctrl-C stops them")
        if stop.is_set():
            return 0
        status = asyncio.create_task(_report(fleet, stop))
        await fleet.run(stop, ramp_s=ramp_s)
        status.cancel()
    except WraleError as exc:
        typer.echo(f"wrale sim: {exc.message}", err=True)
        return 1
    finally:
        await fleet.close()
    typer.echo("wrale sim: stopped")
    return 0


async def _report(fleet: SimFleet, stop: asyncio.Event) -> None:
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), STATUS_EVERY_S)
        if not stop.is_set():
            s = fleet.stats()
            typer.echo(
                f"wrale sim: {s['connected']}/{s['agents']} agents connected, "
                f"{s['boards']} boards, up {s['uptime_s']:.0f} s"
            )
