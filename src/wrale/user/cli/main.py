"""The ``wrale`` command. Daemons (``metald``) start without loading the CLI framework,
so that they stay lean on a board; everything else is a Typer app."""

from __future__ import annotations

import sys

LEAN_COMMANDS = {"metald"}


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in LEAN_COMMANDS:
        from wrale.metal.daemon import main as metald_main

        sys.exit(metald_main(args[1:]))
    from wrale.user.cli.app import app

    app(args=args, prog_name="wrale")


if __name__ == "__main__":  # pragma: no cover
    main()
