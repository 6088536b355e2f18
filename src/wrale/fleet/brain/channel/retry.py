"""Trying a database transaction again when it failed for a passing reason: a busy SQLite,
a lost PostgreSQL connection, a serialisation conflict or deadlock. Anything else is
raised at once: a loop serving many devices must not retry a bug."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

from sqlalchemy.exc import DBAPIError

log = logging.getLogger("wrale.central.channel")

T = TypeVar("T")

RETRIES: Final = (0.2, 1.0, 3.0)  # a transaction that fails is tried again after these
TRANSIENT: Final = ("locked", "busy", "connection", "serializ", "deadlock", "timeout")


def transient(exc: DBAPIError) -> bool:
    """A database error that trying again can cure."""
    if exc.connection_invalidated:
        return True
    text = str(exc.orig).lower()
    return any(w in text for w in TRANSIENT)


async def retrying(fn: Callable[[], Awaitable[T]], what: str = "database") -> T:
    """``await fn()``, again after each of ``RETRIES`` while it fails transiently."""
    for delay in (*RETRIES, None):
        try:
            return await fn()
        except DBAPIError as exc:
            if delay is None or not transient(exc):
                raise
            log.warning("%s: database busy (%s); trying again in %.1f s", what, exc.orig, delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")
