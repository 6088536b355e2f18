"""argparse's help formatter without ``shutil``, for the board's commands.

argparse builds a ``HelpFormatter`` on every ``add_argument`` and its ``__init__`` imports
``shutil`` (with ``bz2``, ``lzma`` and their libraries: about 0.4 MiB resident) only to read
the terminal's width. ``HelpFormatter`` here reads it the same way, without that import.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys


def terminal_columns(fallback: int = 80) -> int:
    """The terminal's width as ``shutil.get_terminal_size().columns`` gives it: ``COLUMNS``
    if set and positive, else stdout's terminal, else ``fallback``."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    try:
        lines = int(os.environ["LINES"])
    except (KeyError, ValueError):
        lines = 0
    if columns <= 0 or lines <= 0:
        size = os.terminal_size((fallback, 24))
        stdout = sys.__stdout__
        if stdout is not None:
            with contextlib.suppress(AttributeError, ValueError, OSError):
                size = os.get_terminal_size(stdout.fileno())
        if columns <= 0:
            columns = size.columns or fallback
    return columns


class HelpFormatter(argparse.HelpFormatter):
    """``argparse.HelpFormatter`` with the same default width, found without ``shutil``."""

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        if width is None:
            width = terminal_columns() - 2
        super().__init__(prog, indent_increment, max_help_position, width)
