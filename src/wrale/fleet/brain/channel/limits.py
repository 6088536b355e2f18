"""Per-session limits of the device channel: a token bucket on frames (a board over its
rate gets frames dropped and counted, never a server stall) and the checks a reported
twin document passes before it is stored (like a command result: JSON, finite, bounded).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, Final

from wrale.fleet.brain.services.twin import check_json
from wrale.shared.errors import InvalidRequestError

MAX_REPORTED_BYTES: Final = 64 * 1024  # a reported document this big is refused


class TokenBucket:
    """``take()`` is true while the average rate stays within ``rate`` per second, with
    bursts of up to ``burst`` frames."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate, self.burst, self.clock = rate, float(burst), clock
        self.tokens = float(burst)
        self.at = clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def reported_problem(doc: Any, rejected: Any) -> str | None:
    """Why a reported document may not be stored (None: it may)."""
    try:
        check_json(doc, "reported")
        check_json(rejected, "rejected")
        size = len(json.dumps([doc, rejected], allow_nan=False))
    except InvalidRequestError as exc:
        return exc.message
    except (TypeError, ValueError, RecursionError) as exc:
        return f"not storable JSON ({type(exc).__name__})"
    if size > MAX_REPORTED_BYTES:
        return f"{size} bytes exceed {MAX_REPORTED_BYTES}"
    return None
