"""The ``wrale`` command. Daemons (``metald``, ``edge``, ``device``) start without loading
the CLI framework, so that they stay lean on a board; everything else is a Typer app."""

from __future__ import annotations

import sys
from collections.abc import Callable

LEAN_COMMANDS = {"metald", "edge", "device"}


def _lean(name: str) -> Callable[[list[str]], int]:
    if name == "edge":
        from wrale.user.cli.edge import main as edge_main

        return edge_main
    if name == "device":
        from wrale.user.cli.device import main as device_main

        return device_main
    from wrale.metal.daemon import main as metald_main

    return metald_main


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in LEAN_COMMANDS:
        sys.exit(_lean(args[0])(args[1:]))
    from wrale.user.cli.app import app

    app(args=args, prog_name="wrale")


if __name__ == "__main__":  # pragma: no cover
    main()
