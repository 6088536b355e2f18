"""``wrale metald``: the hardware daemon of one board (entry point; wires the pieces).

Kept free of the CLI framework so that the daemon stays lean in memory on the board.
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

from wrale.metal.core.engine import MetalCore
from wrale.metal.core.request_parser import HttpLimits
from wrale.metal.core.server import create_metald_server
from wrale.metal.core.store import DeviceStore
from wrale.metal.diag import DiagnosticsService
from wrale.metal.hw.base import Board
from wrale.metal.hw.registry import create_board, resolve_backend
from wrale.metal.service import follow_sampler, grant_hardware, release_hardware
from wrale.shared.clock import Clock, ScaledClock, SystemClock
from wrale.shared.config import BackendName, MetalSettings, load_settings
from wrale.shared.errors import ConfigError
from wrale.shared.lean_argparse import HelpFormatter
from wrale.shared.logging import setup_logging
from wrale.shared.sdnotify import Notifier

log = logging.getLogger("wrale.metald")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="wrale metald",
        formatter_class=HelpFormatter,
        description="Hardware daemon of one board: safety loops, local HTTP API, diagnostics. "
        "Settings: defaults < --config TOML < WRALE_METAL_* environment < these flags.",
    )
    p.add_argument("--config", type=Path, help="TOML file, e.g. /etc/wrale/metald.toml")
    p.add_argument("--backend", choices=[b.value for b in BackendName])
    p.add_argument("--listen", help="HOST:PORT (default 127.0.0.1:8431)")
    p.add_argument(
        "--dev",
        action="store_true",
        default=None,
        help="development mode: accepts the default API key",
    )
    add_listen_options(p)
    p.add_argument("--data-dir", type=Path, help="where the board's SQLite store lives")
    p.add_argument("--device-name")
    p.add_argument("--sample-interval", type=float, dest="sample_interval_s")
    p.add_argument("--sim-speed", type=float, help="simulated seconds per real second")
    p.add_argument("--sim-seed", type=int)
    p.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    unit = p.add_mutually_exclusive_group()
    unit.add_argument(
        "--release-hardware",
        action="store_true",
        help="hand the fan back to the kernel and lift the CPU cap, then exit (ExecStopPost=)",
    )
    unit.add_argument(
        "--grant-hardware",
        metavar="GROUP",
        help="as root: let GROUP write the sysfs files metald drives, then exit (ExecStartPre=+)",
    )
    return p


def add_listen_options(p: argparse.ArgumentParser) -> None:
    """TLS and the escape hatch for plain HTTP beyond loopback (metald and device run)."""
    p.add_argument("--tls-cert", type=Path, dest="tls_cert_file", help="PEM certificate")
    p.add_argument("--tls-key", type=Path, dest="tls_key_file", help="PEM private key")
    p.add_argument(
        "--insecure-listen",
        action="store_true",
        default=None,
        help="allow plain HTTP on a non-loopback --listen address (logs a warning)",
    )
    p.add_argument("--max-connections", type=int, help="open API connections at once (default 32)")


def listen_flags(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "tls_cert_file": args.tls_cert_file,
        "tls_key_file": args.tls_key_file,
        "insecure_listen": args.insecure_listen,
        "max_connections": args.max_connections,
    }


def http_limits(settings: MetalSettings) -> HttpLimits:
    return HttpLimits(
        max_connections=settings.max_connections,
        max_connections_per_client=max(1, settings.max_connections // 2),
    )


def settings_from_args(args: argparse.Namespace) -> MetalSettings:
    sim: dict[str, Any] = {}
    if args.sim_speed is not None:
        sim["speed"] = args.sim_speed
    if args.sim_seed is not None:
        sim["seed"] = args.sim_seed
    flags: dict[str, Any] = {
        "backend": args.backend,
        "listen": args.listen,
        "dev": args.dev,
        "data_dir": args.data_dir,
        "device_name": args.device_name,
        "sample_interval_s": args.sample_interval_s,
        "log_level": args.log_level,
        "sim": sim or None,
        **listen_flags(args),
    }
    return load_settings(MetalSettings, config_file=args.config, flags=flags)


class MetalParts(msgspec.Struct, frozen=True):
    """One board's metal side, wired: what ``wrale metald`` and ``wrale device run`` run."""

    clock: Clock
    board: Board
    store: DeviceStore
    core: MetalCore
    diagnostics: DiagnosticsService


def build_metal(settings: MetalSettings) -> MetalParts:
    """Board, store, core and diagnostics from settings whose backend is already resolved."""
    clock: Clock = SystemClock()
    if settings.backend is BackendName.SIM and settings.sim.speed != 1.0:
        clock = ScaledClock(settings.sim.speed)
    board = create_board(settings, clock)
    store = DeviceStore(
        settings.data_dir / "metald.db",
        event_retention=settings.event_retention,
        diag_retention=settings.diag_retention,
    )
    core = MetalCore(
        board,
        store=store,
        clock=clock,
        thermal=settings.thermal,
        power=settings.power,
        security=settings.security,
        gpio_lines=settings.gpio,
        sample_interval_s=settings.sample_interval_s,
        device_name=settings.device_name,
    )
    return MetalParts(clock, board, store, core, DiagnosticsService(core))


async def serve(
    settings: MetalSettings,
    api_key: str,
    *,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[str, int], None] | None = None,
) -> None:
    """Run metald until ``stop`` is set (or SIGINT / SIGTERM)."""
    backend = resolve_backend(settings)
    parts = build_metal(msgspec.structs.replace(settings, backend=backend))
    board, store, core, diagnostics = parts.board, parts.store, parts.core, parts.diagnostics
    server = create_metald_server(
        core,
        api_key=api_key,
        diagnostics=diagnostics,
        limits=http_limits(settings),
        tls=settings.listen_tls(),
    )
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(sig, stop.set)
    notifier = Notifier.from_environ()
    follower: asyncio.Task[None] | None = None
    try:
        await core.start()
        host, port = await server.start(
            *settings.listen_address(), insecure_listen=settings.insecure_listen
        )
        log.info(
            "metald %s on %s (%s backend) listening on %s://%s:%d",
            settings.device_name,
            board.model,
            board.backend,
            "http" if server.http.tls is None else "https",
            host,
            port,
        )
        notifier.ready(
            f"sampling every {settings.sample_interval_s:g} s on {board.model}; "
            f"API on {host}:{port}"
        )
        follower = asyncio.create_task(follow_sampler(core, notifier))
        if on_ready:
            on_ready(host, port)
        await core.run(stop)
    finally:
        notifier.stopping()
        if follower is not None:
            follower.cancel()
        await server.close()
        board.close()
        store.close()


def unit_step(args: argparse.Namespace) -> int:
    """``--release-hardware`` / ``--grant-hardware``: one step of the unit, then exit."""
    try:
        settings = settings_from_args(args)
    except ConfigError as exc:
        print(f"wrale metald: {exc.message}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level)
    if settings.backend is BackendName.SIM:
        print("wrale metald: the simulated board has no hardware to hand over")
        return 0
    if args.grant_hardware is not None:
        try:
            done = grant_hardware(settings.linux, args.grant_hardware)
        except LookupError as exc:
            print(f"wrale metald: {exc}", file=sys.stderr)
            return 2
        print(f"wrale metald: group {args.grant_hardware} may write {len(done)} file(s)")
    else:
        done = release_hardware(settings.linux, settings.data_dir)
        print("wrale metald: " + ("; ".join(done) if done else "nothing to hand back"))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.release_hardware or args.grant_hardware is not None:
        return unit_step(args)
    try:
        settings = settings_from_args(args)
        api_key = settings.effective_api_key()
        settings.listen_tls()  # refuses plain HTTP beyond loopback before anything starts
    except ConfigError as exc:
        print(f"wrale metald: {exc.message}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level)
    try:
        asyncio.run(serve(settings, api_key))
    except OSError as exc:
        print(f"wrale metald: cannot listen on {settings.listen}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # pragma: no cover
        pass
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
