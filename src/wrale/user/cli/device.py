"""``wrale device run``: the whole device in one process — the board's metal core (safety
loops), metald's local HTTP API, and the edge agent talking to it in-process.

The lean default on a board: no CLI framework, no httpx; one Python process for what would
otherwise be ``wrale metald`` + ``wrale edge``. With the sim backend, a ``reboot`` command
restarts the device in-process and ``shutdown`` stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from wrale.fleet.edge.agent import EdgeAgent
from wrale.fleet.edge.commands import InProcessPower, PowerActions
from wrale.fleet.edge.credentials import Credentials
from wrale.fleet.edge.settings import EdgeSettings
from wrale.fleet.edge.wiring import make_dialer, open_store
from wrale.metal.core.client import InProcessMetalClient
from wrale.metal.core.server import create_metald_server
from wrale.metal.daemon import add_listen_options, build_metal, http_limits, listen_flags
from wrale.metal.hw.registry import resolve_backend
from wrale.metal.service import follow_sampler
from wrale.shared.config import BackendName, MetalSettings, load_settings
from wrale.shared.errors import ConfigError
from wrale.shared.lean_argparse import HelpFormatter
from wrale.shared.logging import setup_logging
from wrale.shared.sdnotify import Notifier

log = logging.getLogger("wrale.device")

DEFAULT_STATE_DIR = Path("./wrale-data/device")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="wrale device run",
        formatter_class=HelpFormatter,
        description="Run this board's metald and edge agent in one process. Settings: "
        "defaults < TOML files < WRALE_METAL_* / WRALE_EDGE_* environment < these flags. "
        "Enroll first: wrale enroll --central URL --token T --state-dir DIR.",
    )
    p.add_argument("--state-dir", type=Path, help=f"default {DEFAULT_STATE_DIR}")
    p.add_argument("--config", type=Path, help="metald TOML (policies, GPIO lines, sim …)")
    p.add_argument("--edge-config", type=Path, help="edge agent TOML")
    p.add_argument("--backend", choices=[b.value for b in BackendName])
    p.add_argument("--central", help="central server URL (default: the enrolled one)")
    p.add_argument("--mqtt-url", help="use MQTT (mqtts://BROKER[:PORT]) instead of WebSocket")
    p.add_argument("--ca-file", type=Path, help="CA bundle of a private fleet")
    p.add_argument(
        "--insecure",
        action="store_true",
        default=None,
        help="allow plain ws:// / mqtt:// to another machine (logs a warning)",
    )
    p.add_argument("--listen", help="metald API HOST:PORT (default 127.0.0.1:8431)")
    add_listen_options(p)
    p.add_argument("--no-api", action="store_true", help="do not serve metald's local HTTP API")
    p.add_argument(
        "--dev", action="store_true", default=None, help="metald API accepts the default key"
    )
    p.add_argument("--device-name")
    p.add_argument("--sample-interval", type=float, dest="sample_interval_s")
    p.add_argument("--sim-speed", type=float, help="simulated seconds per real second")
    p.add_argument("--sim-seed", type=int)
    p.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def settings_from_args(args: argparse.Namespace) -> tuple[MetalSettings, EdgeSettings]:
    state_dir: Path | None = args.state_dir
    sim: dict[str, Any] = {}
    if args.sim_speed is not None:
        sim["speed"] = args.sim_speed
    if args.sim_seed is not None:
        sim["seed"] = args.sim_seed
    edge = load_settings(
        EdgeSettings,
        config_file=args.edge_config,
        defaults={"state_dir": DEFAULT_STATE_DIR},
        flags={
            "state_dir": state_dir,
            "central_url": args.central,
            "mqtt_url": args.mqtt_url,
            "ca_file": args.ca_file,
            "insecure": args.insecure,
            "log_level": args.log_level,
        },
    )
    metal = load_settings(
        MetalSettings,
        config_file=args.config,
        defaults={"data_dir": edge.state_dir / "metald"},
        flags={
            "backend": args.backend,
            "listen": args.listen,
            "dev": args.dev,
            "data_dir": None if state_dir is None else state_dir / "metald",
            "device_name": args.device_name,
            "sample_interval_s": args.sample_interval_s,
            "log_level": args.log_level,
            "sim": sim or None,
            **listen_flags(args),
        },
    )
    return metal, edge


async def run_device(
    metal: MetalSettings,
    edge: EdgeSettings,
    *,
    api_key: str | None,
    stop: asyncio.Event,
    on_ready: Callable[[EdgeAgent, tuple[str, int] | None], None] | None = None,
) -> None:
    """Run the device until ``stop`` is set (or a simulated shutdown); a simulated reboot
    tears everything down and boots it again from the stored state."""
    creds = Credentials.load(edge.credentials_path())
    dialer = make_dialer(edge, creds)  # refuses an insecure URL before anything starts
    backend = resolve_backend(metal)
    metal = msgspec.structs.replace(metal, backend=backend)
    notifier = Notifier.from_environ()  # systemd: READY / WATCHDOG / STOPPING
    boots = 0
    try:
        while not stop.is_set():
            boots += 1
            reboot = await _boot(metal, edge, creds, dialer, api_key, stop, on_ready, notifier)
            if not reboot:
                return
            log.warning("simulated reboot (boot %d)", boots + 1)
    finally:
        notifier.stopping()


async def _boot(
    metal: MetalSettings,
    edge: EdgeSettings,
    creds: Credentials,
    dialer: Any,
    api_key: str | None,
    stop: asyncio.Event,
    on_ready: Callable[[EdgeAgent, tuple[str, int] | None], None] | None,
    notifier: Notifier,
) -> bool:
    """One boot of the device; returns whether it should boot again."""
    parts = build_metal(metal)
    clock, board, dstore, core, diagnostics = (
        parts.clock,
        parts.board,
        parts.store,
        parts.core,
        parts.diagnostics,
    )
    server = (
        create_metald_server(
            core,
            api_key=api_key,
            diagnostics=diagnostics,
            limits=http_limits(metal),
            tls=metal.listen_tls(),
        )
        if api_key is not None
        else None
    )
    halt = asyncio.Event()
    reboot = False

    def power_off() -> None:
        halt.set()

    def restart() -> None:
        nonlocal reboot
        reboot = True
        halt.set()

    power: PowerActions | None = None
    if metal.backend is BackendName.SIM:
        power = InProcessPower(clock, on_reboot=restart, on_shutdown=power_off)
    estore = open_store(edge)
    agent = EdgeAgent(
        edge,
        InProcessMetalClient(core, diagnostics),
        estore,
        dialer,
        power=power,
        device_id=creds.device_id,
    )
    watcher = asyncio.create_task(_relay(stop, halt))
    tasks: list[asyncio.Task[None]] = []
    follower: asyncio.Task[None] | None = None
    try:
        await core.start()
        address = (
            await server.start(*metal.listen_address(), insecure_listen=metal.insecure_listen)
            if server is not None
            else None
        )
        scheme = "https" if server is not None and server.http.tls is not None else "http"
        log.info(
            "device %s (%s, %s backend) up%s; central %s",
            creds.device_id,
            board.model,
            board.backend,
            f", metald API on {scheme}://{address[0]}:{address[1]}" if address else "",
            edge.mqtt_url or edge.central_url or creds.central_url,
        )
        tasks = [asyncio.create_task(core.run(halt)), asyncio.create_task(agent.run(halt))]
        api = f"; API on {address[0]}:{address[1]}" if address else ""
        notifier.ready(f"sampling every {metal.sample_interval_s:g} s on {board.model}{api}")
        follower = asyncio.create_task(follow_sampler(core, notifier))
        if on_ready is not None:
            on_ready(agent, address)
        await asyncio.gather(*tasks)
    finally:
        halt.set()
        watcher.cancel()
        if follower is not None:
            follower.cancel()
        for t in tasks:
            with contextlib.suppress(Exception):
                await t
        if server is not None:
            await server.close()
        board.close()
        estore.close()
        dstore.close()
    return reboot and not stop.is_set()


async def _relay(stop: asyncio.Event, halt: asyncio.Event) -> None:
    await stop.wait()
    halt.set()


def main(argv: list[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or args_list[0] != "run":
        print("usage: wrale device run [options]   (see wrale device run --help)", file=sys.stderr)
        return 2
    args = build_parser().parse_args(args_list[1:])
    try:
        metal, edge = settings_from_args(args)
        api_key = None if args.no_api else metal.effective_api_key()
        if api_key is not None:
            metal.listen_tls()  # refuses plain HTTP beyond loopback before anything starts
        Credentials.load(edge.credentials_path())
    except ConfigError as exc:
        print(f"wrale device run: {exc.message}", file=sys.stderr)
        return 2
    setup_logging(edge.log_level)

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        await run_device(metal, edge, api_key=api_key, stop=stop)

    try:
        asyncio.run(go())
    except ConfigError as exc:
        print(f"wrale device run: {exc.message}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"wrale device run: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # pragma: no cover
        pass
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
