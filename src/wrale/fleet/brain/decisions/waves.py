"""A rollout's waves, planned from the boards a selector names and their racks. Pure.

Wave sizes come from explicit steps — ``{"count": n}`` adds ``n`` boards, ``{"percent": p}``
brings the total reached to ``ceil(p% of all boards)`` (cumulative) — and every board not
reached by the last step gets a final wave. Topology: the boards are taken rack by rack in
turn (racks by id, boards by id), so early waves spread over racks; ``one_per_rack_first``
lets the first wave take at most one board of a rack, ``max_per_rack`` caps every wave's
boards per rack and ``max_per_feed`` its boards per power feed (the circuit racks share:
their restarts' inrush adds up on it; boards whose rack names no feed are not capped by
it). A board a wave could not take (its rack or feed is full in that wave) waits for the
next one, and the waves go on until every board is in one. Boards without a rack are
each a rack of their own. The same input always gives the same waves.

An exponential **rate** (as AWS IoT Jobs' exponential rollout) plans one wave per minute:
the first takes ``base_per_minute`` boards, and each time ``after_succeeded`` more boards
have succeeded (the boards of the waves before it, each wave passing its gate before the
next starts) the rate is multiplied by ``increment_factor``, up to ``max_per_minute``. The
same rack rules apply.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

MAX_STEPS = 100
MAX_BOARDS = 10_000
MIN_FACTOR, MAX_FACTOR = 1.1, 5.0  # AWS IoT Jobs' bounds
RATE_KEYS = ("base_per_minute", "increment_factor", "after_succeeded", "max_per_minute")


class WaveSpecError(ValueError):
    """A malformed wave specification; the message names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True, slots=True)
class Step:
    """One wave's size: ``count`` more boards, or up to ``percent`` of all (cumulative)."""

    count: int | None = None
    percent: float | None = None


def parse_steps(raw: object) -> tuple[Step, ...]:
    """Clean steps from hostile input (``WaveSpecError`` naming the field otherwise)."""
    if not isinstance(raw, list) or not 0 < len(raw) <= MAX_STEPS:
        raise WaveSpecError("waves", f"a list of 1–{MAX_STEPS} steps")
    out: list[Step] = []
    for i, item in enumerate(raw):
        where = f"waves[{i}]"
        if not isinstance(item, dict) or len(item) != 1:
            raise WaveSpecError(where, 'one of {"count": n} or {"percent": p}')
        ((key, value),) = item.items()
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise WaveSpecError(f"{where}.{key}", "a number")
        if key == "count":
            if not isinstance(value, int) or not 1 <= value <= MAX_BOARDS:
                raise WaveSpecError(f"{where}.count", f"an integer from 1 to {MAX_BOARDS}")
            out.append(Step(count=value))
        elif key == "percent":
            if not math.isfinite(value) or not 0 < value <= 100:
                raise WaveSpecError(f"{where}.percent", "a number above 0, at most 100")
            out.append(Step(percent=float(value)))
        else:
            raise WaveSpecError(where, f"unknown key {str(key)[:20]!r}; use count or percent")
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Rate:
    """An exponential rate: ``base_per_minute`` boards first, multiplied by
    ``increment_factor`` each time ``after_succeeded`` more boards succeeded, at most
    ``max_per_minute`` (``None``: no cap)."""

    base_per_minute: int
    increment_factor: float
    after_succeeded: int
    max_per_minute: int | None = None

    def per_minute(self, succeeded: int) -> int:
        """The boards a minute's wave takes once ``succeeded`` boards have succeeded."""
        cap = MAX_BOARDS if self.max_per_minute is None else self.max_per_minute
        rate = float(self.base_per_minute)
        for _ in range(max(0, succeeded) // self.after_succeeded):
            rate *= self.increment_factor
            if rate >= cap:
                break
        return max(1, min(cap, math.floor(rate + 1e-9)))

    def as_dict(self) -> dict[str, int | float | None]:
        return {
            "base_per_minute": self.base_per_minute,
            "increment_factor": self.increment_factor,
            "after_succeeded": self.after_succeeded,
            "max_per_minute": self.max_per_minute,
        }


def _int_in(where: str, value: object, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise WaveSpecError(where, f"an integer from {lo} to {hi}")
    return value


def parse_rate(raw: object) -> Rate:
    """A clean rate from hostile input (``WaveSpecError`` naming the field otherwise)."""
    if not isinstance(raw, dict):
        raise WaveSpecError("waves.rate", "an object: " + ", ".join(RATE_KEYS))
    unknown = set(raw) - set(RATE_KEYS)
    if unknown:
        names = ", ".join(sorted(map(str, unknown)))[:80]
        raise WaveSpecError("waves.rate", f"unknown key(s) {names}; known: {', '.join(RATE_KEYS)}")
    for key in RATE_KEYS[:3]:
        if key not in raw:
            raise WaveSpecError(f"waves.rate.{key}", "required")
    base = _int_in("waves.rate.base_per_minute", raw["base_per_minute"], 1, MAX_BOARDS)
    factor = raw["increment_factor"]
    if (
        isinstance(factor, bool)
        or not isinstance(factor, int | float)
        or not math.isfinite(factor)
        or not MIN_FACTOR <= factor <= MAX_FACTOR
    ):
        raise WaveSpecError(
            "waves.rate.increment_factor", f"a number from {MIN_FACTOR:g} to {MAX_FACTOR:g}"
        )
    after = _int_in("waves.rate.after_succeeded", raw["after_succeeded"], 1, MAX_BOARDS)
    cap = raw.get("max_per_minute")
    if cap is not None:
        cap = _int_in("waves.rate.max_per_minute", cap, base, MAX_BOARDS)
    return Rate(base, float(factor), after, cap)


def targets(steps: Sequence[Step], total: int) -> list[int]:
    """The cumulative number of boards reached after each step (non-decreasing, ≤ total)."""
    out: list[int] = []
    reached = 0
    for step in steps:
        if step.count is not None:
            reached += step.count
        elif step.percent is not None:
            reached = max(reached, math.ceil(step.percent * total / 100 - 1e-9))
        reached = min(reached, total)
        out.append(reached)
    return out


def spread_order(boards: Mapping[str, str | None]) -> list[str]:
    """Board ids taken rack by rack in turn (racks by id, boards by id in each)."""
    by_rack: dict[str, list[str]] = {}
    for device_id in sorted(boards):
        rack = boards[device_id]
        by_rack.setdefault(f"r:{rack}" if rack is not None else f"d:{device_id}", []).append(
            device_id
        )
    queues = [by_rack[k] for k in sorted(by_rack)]
    out: list[str] = []
    depth = 0
    while len(out) < len(boards):
        for q in queues:
            if depth < len(q):
                out.append(q[depth])
        depth += 1
    return out


def plan_waves(
    boards: Mapping[str, str | None],
    steps: Sequence[Step],
    *,
    one_per_rack_first: bool = False,
    max_per_rack: int | None = None,
    feeds: Mapping[str, str] | None = None,
    max_per_feed: int | None = None,
) -> list[list[str]]:
    """The waves (lists of board ids) for ``boards`` (device id → rack id or ``None``);
    ``feeds``: device id → its rack's power feed (boards not in it have none)."""
    cap = _FeedCap(feeds or {}, max_per_feed)
    order = spread_order(boards)
    total = len(order)
    goals = targets(steps, total)
    waves: list[list[str]] = []
    remaining = list(order)
    reached = 0
    i = 0
    while remaining:
        goal = goals[i] if i < len(goals) else total
        want = goal - reached
        i += 1
        if want <= 0:
            continue
        limit = max_per_rack
        if not waves and one_per_rack_first:
            limit = 1 if limit is None else min(limit, 1)
        wave = _take(remaining, boards, want, limit, cap)  # ≥ 1 board: every limit is ≥ 1
        taken = set(wave)
        remaining = [d for d in remaining if d not in taken]
        reached += len(wave)
        waves.append(wave)
    return waves


def plan_rate_waves(
    boards: Mapping[str, str | None],
    rate: Rate,
    *,
    one_per_rack_first: bool = False,
    max_per_rack: int | None = None,
    feeds: Mapping[str, str] | None = None,
    max_per_feed: int | None = None,
) -> list[list[str]]:
    """One wave per minute for ``boards``, sized by ``rate`` from the boards of the waves
    before it (they succeeded: a wave passes its gate before the next starts)."""
    cap = _FeedCap(feeds or {}, max_per_feed)
    remaining = spread_order(boards)
    waves: list[list[str]] = []
    reached = 0
    while remaining:
        limit = max_per_rack
        if not waves and one_per_rack_first:
            limit = 1 if limit is None else min(limit, 1)
        wave = _take(remaining, boards, rate.per_minute(reached), limit, cap)
        taken = set(wave)
        remaining = [d for d in remaining if d not in taken]
        reached += len(wave)
        waves.append(wave)
    return waves


@dataclass(frozen=True, slots=True)
class _FeedCap:
    feeds: Mapping[str, str]
    limit: int | None


def _take(
    queue: Sequence[str],
    boards: Mapping[str, str | None],
    want: int,
    limit: int | None,
    feed_cap: _FeedCap,
) -> list[str]:
    per_rack: dict[str, int] = {}
    per_feed: dict[str, int] = {}
    wave: list[str] = []
    for device_id in queue:
        if len(wave) >= want:
            break
        rack = boards[device_id]
        key = f"r:{rack}" if rack is not None else f"d:{device_id}"
        if limit is not None and per_rack.get(key, 0) >= limit:
            continue
        feed = feed_cap.feeds.get(device_id)
        if feed is not None and feed_cap.limit is not None:
            if per_feed.get(feed, 0) >= feed_cap.limit:
                continue
            per_feed[feed] = per_feed.get(feed, 0) + 1
        per_rack[key] = per_rack.get(key, 0) + 1
        wave.append(device_id)
    return wave
