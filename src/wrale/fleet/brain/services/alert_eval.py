"""Alert rule evaluation as a pure function: samples + the previous per-key state in,
decisions and the next state out. Deduplication (one active alert per key) and flap
suppression live here; the runner in ``alert_runner`` does the I/O."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from wrale.fleet.brain.services.alert_rules import OPS

FRESH_S = 120.0  # a key whose newest sample is older than this has no data: nothing changes

Sample = tuple[float, float]  # (unix seconds, value)


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """What evaluation needs of a rule; ``threshold`` None takes it from ``thresholds``."""

    op: str
    threshold: float | None
    for_s: float = 0.0
    flap_window_s: float = 600.0
    flap_threshold: int = 3


@dataclass(frozen=True, slots=True)
class KeyState:
    """The memory of one (rule, key) between evaluations (stored in alert_rule_states)."""

    active: bool = False
    alert_id: str | None = None
    pending_since: float | None = None
    last_cleared_at: float | None = None
    flap_count: int = 0
    flap_window_start: float | None = None
    flapping: bool = False
    last_change_at: float | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """A key whose state changed. ``action`` is "raise" (a new alert), "reopen" (the
    cleared alert fires again within the flap window), "clear", "stable" (flapping ended)
    or None (only the stored state moved, e.g. a condition started pending)."""

    key: str
    action: str | None
    state: KeyState
    value: float | None = None
    threshold: float | None = None
    notify: bool = False


def evaluate(
    rule: RuleSpec,
    samples_by_key: Mapping[str, Sequence[Sample]],
    now: float,
    previous: Mapping[str, KeyState],
    thresholds: Mapping[str, float] | None = None,
) -> list[Decision]:
    """Decide, for every key with samples or state, whether its alert fires or clears.

    A key fires when its condition has held at every sample for the whole ``for_s`` window
    — all samples in [now - for_s, now] satisfy it, the newest is fresh (≤ ``FRESH_S`` old)
    and the run of satisfying samples (remembered across evaluations as ``pending_since``)
    began at or before now - for_s. It clears when the newest sample no longer satisfies
    it. Without fresh data nothing changes (an offline device keeps its alert).
    """
    decisions: list[Decision] = []
    for key in sorted(set(samples_by_key) | set(previous)):
        prev = previous.get(key, KeyState())
        threshold = rule.threshold if rule.threshold is not None else (thresholds or {}).get(key)
        samples = sorted(
            (float(t), float(v))
            for t, v in samples_by_key.get(key, ())
            if t <= now and math.isfinite(v) and math.isfinite(t)
        )
        decision = None
        if threshold is not None and samples and samples[-1][0] >= now - FRESH_S:
            decision = _step(rule, threshold, samples, now, prev, key)
        if decision is None or decision.action is None:
            decision = _stability(rule, now, decision.state if decision else prev, key) or decision
        if decision is not None:
            decisions.append(decision)
    return decisions


def _step(
    rule: RuleSpec, threshold: float, samples: list[Sample], now: float, prev: KeyState, key: str
) -> Decision | None:
    holds = OPS[rule.op]
    # at one timestamp a failing sample sorts last: the condition holds at a time only if
    # every sample of that time satisfies it
    samples = sorted(samples, key=lambda s: (s[0], not holds(s[1], threshold)))
    value = samples[-1][1]
    if not holds(value, threshold):
        if prev.active:
            state = replace(
                prev, active=False, pending_since=None, last_cleared_at=now, last_change_at=now
            )
            return Decision(key, "clear", state, value, threshold, notify=not prev.flapping)
        if prev.pending_since is not None:
            return Decision(key, None, replace(prev, pending_since=None), value, threshold)
        return None
    run_start, covered_all = samples[-1][0], True
    for t, v in reversed(samples):
        if not holds(v, threshold):
            covered_all = False
            break
        run_start = t
    if covered_all and prev.pending_since is not None:
        run_start = min(run_start, prev.pending_since)
    if prev.active or now - run_start < rule.for_s:
        if run_start != prev.pending_since:
            return Decision(key, None, replace(prev, pending_since=run_start), value, threshold)
        return None
    reopen = (
        prev.alert_id is not None
        and prev.last_cleared_at is not None
        and now - prev.last_cleared_at < rule.flap_window_s
    )
    if not reopen:
        state = KeyState(active=True, pending_since=run_start, last_change_at=now)
        return Decision(key, "raise", state, value, threshold, notify=True)
    in_window = prev.flap_window_start is not None and now - prev.flap_window_start <= (
        rule.flap_window_s
    )
    flaps = prev.flap_count + 1 if in_window else 1
    flapping = prev.flapping or flaps >= rule.flap_threshold
    state = replace(
        prev,
        active=True,
        pending_since=run_start,
        flap_count=flaps,
        flap_window_start=prev.flap_window_start if in_window else now,
        flapping=flapping,
        last_change_at=now,
    )
    return Decision(key, "reopen", state, value, threshold, notify=not flapping)


def _stability(rule: RuleSpec, now: float, prev: KeyState, key: str) -> Decision | None:
    """A flapping key that has not changed for a whole flap window is stable again."""
    if not prev.flapping or prev.last_change_at is None:
        return None
    if now <= prev.last_change_at or now - prev.last_change_at < rule.flap_window_s:
        return None
    state = replace(prev, flapping=False, flap_count=0, flap_window_start=None)
    return Decision(key, "stable", state, notify=True)
