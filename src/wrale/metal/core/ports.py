"""Interfaces metal.core needs from the layers above it, injected at the entry point.

Diagnostics live in ``wrale.metal.diag`` (which builds on core), so the metald server
only knows this protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class Diagnostics(Protocol):
    """Runs the board's diagnostics and keeps their history."""

    def names(self) -> list[str]:
        """Names of every test this board can run."""
        ...

    async def run(self, names: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Run the named tests (all when ``None``); ``NotFoundError`` for an unknown name.

        Each result is a dict with ``type`` (GPIO / POWER / THERMAL / SECURITY), ``name``,
        ``component``, ``status`` (PASS / WARNING / FAIL / SKIPPED), ``reading``,
        ``expected``, ``message`` and ``timestamp`` (seconds since the epoch).
        """
        ...

    async def history(self, limit: int = 100) -> list[dict[str, Any]]:
        """Past results, newest first."""
        ...
