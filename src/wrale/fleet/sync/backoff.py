"""Reconnect delays (exponential backoff with full jitter, capped) and send pacing (a token
bucket), so that thousands of devices coming back at once neither reconnect nor drain
their backlogs at the same moment.

Pure: the random source and the time are passed in. Full jitter draws a delay uniformly
between zero and the exponential ceiling.
"""

from __future__ import annotations

import random

import msgspec

MAX_EXPONENT = 62  # 2**62 times any sane base is past every cap; avoids float overflow


def ceiling(attempt: int, base_s: float, cap_s: float) -> float:
    """The largest delay of attempt ``attempt`` (0-based): ``min(cap, base * 2**attempt)``."""
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    return min(cap_s, base_s * 2.0 ** min(attempt, MAX_EXPONENT))


def full_jitter(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """A delay drawn uniformly from ``[0, ceiling(attempt)]``."""
    return rng.uniform(0.0, ceiling(attempt, base_s, cap_s))


class Backoff(msgspec.Struct):
    """Successive delays of one reconnect loop; ``reset()`` after a good session."""

    base_s: float = 1.0
    cap_s: float = 60.0
    rng: random.Random = msgspec.field(default_factory=random.Random)
    attempt: int = 0

    def __post_init__(self) -> None:
        if not (self.base_s > 0 and self.cap_s >= self.base_s):
            raise ValueError("need 0 < base_s <= cap_s")

    def next_delay(self) -> float:
        delay = full_jitter(self.attempt, self.base_s, self.cap_s, self.rng)
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0


class TokenBucket(msgspec.Struct):
    """At most ``burst`` sends at once and ``rate_per_s`` on average. Pure: ``now`` is any
    monotonic time in seconds, given by the caller."""

    rate_per_s: float
    burst: float
    tokens: float = -1.0  # full at the first use
    at: float | None = None

    def __post_init__(self) -> None:
        if not (self.rate_per_s > 0 and self.burst >= 1):
            raise ValueError("need rate_per_s > 0 and burst >= 1")
        if self.tokens < 0:
            self.tokens = self.burst

    def _refill(self, now: float) -> None:
        if self.at is not None and now > self.at:
            self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate_per_s)
        if self.at is None or now > self.at:
            self.at = now

    def wait_s(self, now: float) -> float:
        """How long until one send is allowed (0: now)."""
        self._refill(now)
        return max(0.0, (1.0 - self.tokens) / self.rate_per_s)

    def take(self, now: float) -> bool:
        """Spend one send if allowed now."""
        self._refill(now)
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True
