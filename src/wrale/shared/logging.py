"""Logging setup shared by every process: one line per record, key=value friendly.

The device side keeps to the standard library here to stay lean in memory.
"""

from __future__ import annotations

import logging
import sys


def setup_logging(level: str = "INFO", *, json_lines: bool = False) -> None:
    """Configure the root logger once for a process."""
    fmt = (
        '{"at":"%(asctime)s","level":"%(levelname)s","logger":"%(name)s","msg":"%(message)s"}'
        if json_lines
        else "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
