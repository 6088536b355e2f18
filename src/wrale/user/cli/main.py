"""The ``wrale`` command. The board's commands (``metald``, ``edge``, ``device``, ``enroll``,
``--version``) start without loading the CLI framework, so that they stay lean and run on a
device install, which has no Typer or Rich; everything else is a Typer app."""

from __future__ import annotations

import sys
from collections.abc import Callable

LEAN_COMMANDS = {"metald", "edge", "device", "enroll"}


def _lean(name: str) -> Callable[[list[str]], int]:
    _import_msgspec_lean()
    if name == "edge":
        from wrale.user.cli.edge import main as edge_main

        return edge_main
    if name == "device":
        from wrale.user.cli.device import main as device_main

        return device_main
    if name == "enroll":
        from wrale.user.cli.board_enroll import main as enroll_main

        return enroll_main
    from wrale.metal.daemon import main as metald_main

    return metald_main


def _import_msgspec_lean() -> None:
    """msgspec without ``typing_extensions`` (0.4 MiB): msgspec then takes ``get_type_hints``,
    ``Required`` and ``NotRequired`` from ``typing``, which on Python >= 3.11 give what
    ``typing_extensions`` gives it (the board's structs use nothing else from it)."""
    from wrale.shared.lean_import import without_modules

    with without_modules("typing_extensions"):
        import msgspec  # noqa: F401


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in LEAN_COMMANDS:
        sys.exit(_lean(args[0])(args[1:]))
    if args[:1] in (["--version"], ["-V"]):
        from wrale import __version__

        print(f"wrale {__version__}")
        sys.exit(0)
    try:
        from wrale.user.cli.app import app
    except ModuleNotFoundError as exc:  # a device install: the admin CLI is an extra
        if exc.name not in {"typer", "rich", "click"}:
            raise
        print(
            f"wrale: this install has the board's commands only ({', '.join(sorted(LEAN_COMMANDS))}"
            ", --version); the admin CLI needs its extra: pip install 'wrale-fleet[cli]'",
            file=sys.stderr,
        )
        sys.exit(2)
    app(args=args, prog_name="wrale")


if __name__ == "__main__":  # pragma: no cover
    main()
