"""``wrale edge``: the edge agent alone, beside a separately running ``wrale metald`` that
it reaches over metald's HTTP API. Kept free of the CLI framework, like the daemons.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from wrale.fleet.edge.agent import EdgeAgent
from wrale.fleet.edge.credentials import Credentials
from wrale.fleet.edge.settings import EdgeSettings
from wrale.fleet.edge.wiring import make_dialer, open_store
from wrale.metal.core.client import HttpMetalClient
from wrale.shared.config import DEV_API_KEY, load_settings
from wrale.shared.errors import ConfigError
from wrale.shared.logging import setup_logging


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="wrale edge",
        description="Run the edge agent of this board against a running metald. Settings: "
        "defaults < --config TOML < WRALE_EDGE_* environment < these flags. The metald API key "
        "comes from WRALE_EDGE_METALD_API_KEY (or --dev for metald's development key).",
    )
    p.add_argument("--config", type=Path, help="TOML file, e.g. /etc/wrale/edge.toml")
    p.add_argument("--central", help="central server URL (default: the enrolled one)")
    p.add_argument("--metald", help="metald URL (default http://127.0.0.1:8431)")
    p.add_argument("--state-dir", type=Path, help="credential and agent store")
    p.add_argument("--mqtt-url", help="use MQTT (mqtts://BROKER[:PORT]) instead of WebSocket")
    p.add_argument("--ca-file", type=Path, help="CA bundle of a private fleet")
    p.add_argument(
        "--insecure",
        action="store_true",
        default=None,
        help="allow plain ws:// / mqtt:// to another machine (logs a warning)",
    )
    p.add_argument("--dev", action="store_true", help="use metald's development API key")
    p.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(
            EdgeSettings,
            config_file=args.config,
            flags={
                "central_url": args.central,
                "metald_url": args.metald,
                "state_dir": args.state_dir,
                "mqtt_url": args.mqtt_url,
                "ca_file": args.ca_file,
                "insecure": args.insecure,
                "log_level": args.log_level,
            },
        )
        key = settings.metald_api_key.get_secret_value() if settings.metald_api_key else None
        if key is None and args.dev:
            key = DEV_API_KEY
        if key is None:
            raise ConfigError(
                "setting 'metald_api_key' (env WRALE_EDGE_METALD_API_KEY) must be metald's "
                "API key (or pass --dev for a development metald)"
            )
        creds = Credentials.load(settings.credentials_path())
        dialer = make_dialer(settings, creds)
    except ConfigError as exc:
        print(f"wrale edge: {exc.message}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per metald call is noise

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        store = open_store(settings)
        try:
            async with HttpMetalClient(settings.metald_url, key) as metal:
                agent = EdgeAgent(settings, metal, store, dialer, device_id=creds.device_id)
                await agent.run(stop)
        finally:
            store.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(go())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
