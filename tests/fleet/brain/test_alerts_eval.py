"""The pure alert evaluator: window semantics, deduplication and flap suppression, with
hypothesis properties over arbitrary sample series."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from wrale.fleet.brain.services.alert_eval import (
    FRESH_S,
    Decision,
    KeyState,
    RuleSpec,
    evaluate,
)

NOW = 10_000.0
HOT = RuleSpec(">", 70.0, for_s=300.0, flap_window_s=600.0, flap_threshold=3)


def series(start: float, end: float, value: float, step: float = 10.0) -> list[tuple[float, float]]:
    out, t = [], start
    while t <= end:
        out.append((t, value))
        t += step
    return out


def run(rule: RuleSpec, samples: list[tuple[float, float]], now: float, prev: KeyState | None):
    return evaluate(rule, {"d1": samples}, now, {"d1": prev} if prev else {})


def test_fires_only_after_the_whole_window() -> None:
    # hot for 200 s only: pending, not firing; the pending start is remembered
    [d] = run(HOT, series(NOW - 200, NOW, 75), NOW, None)
    assert d.action is None
    assert d.state.pending_since == NOW - 200
    # 100 s later, still hot: 300 s in total, fires (only the last 100 s are re-read)
    [d2] = run(HOT, series(NOW - 50, NOW + 100, 75), NOW + 100, d.state)
    assert d2.action == "raise"
    assert d2.notify
    assert d2.value == 75


def test_one_cool_sample_in_the_window_holds_it_back() -> None:
    samples = [*series(NOW - 400, NOW - 151, 80), (NOW - 150, 60), *series(NOW - 140, NOW, 80)]
    [d] = run(HOT, samples, NOW, None)
    assert d.action is None
    assert d.state.pending_since == NOW - 140


def test_dedup_and_clear() -> None:
    [d] = run(HOT, series(NOW - 400, NOW, 80), NOW, None)
    assert d.action == "raise"
    active = d.state
    assert run(HOT, series(NOW - 400, NOW + 10, 80), NOW + 10, active) == []  # no second alert
    [c] = run(HOT, [(NOW + 20, 65)], NOW + 20, active)
    assert c.action == "clear"
    assert c.state.last_cleared_at == NOW + 20


def test_no_fresh_data_changes_nothing() -> None:
    [d] = run(HOT, series(NOW - 400, NOW, 80), NOW, None)
    later = NOW + FRESH_S + 1
    assert run(HOT, series(NOW - 400, NOW, 80), later, d.state) == []


def test_zero_duration_fires_on_the_first_sample() -> None:
    [d] = run(RuleSpec(">", 70.0), [(NOW - 1, 71)], NOW, None)
    assert d.action == "raise"


def test_budget_thresholds_per_key() -> None:
    rule = RuleSpec(">", None)
    out = evaluate(
        rule,
        {"r1": [(NOW, 900)], "r2": [(NOW, 900)], "r3": [(NOW, 1)]},
        NOW,
        {},
        {"r1": 800, "r2": 1000},
    )
    assert [(d.key, d.action, d.threshold) for d in out] == [("r1", "raise", 800)]


def test_flapping_reopens_then_suppresses_until_stable() -> None:
    rule = RuleSpec(">", 70.0, for_s=0, flap_window_s=600.0, flap_threshold=3)
    state = KeyState()
    t = NOW
    actions: list[Decision] = []
    for i in range(8):
        value = 80.0 if i % 2 == 0 else 60.0
        [d] = run(rule, [(t, value)], t, state)
        if d.action == "raise":
            state = d.state.__class__(**{**_fields(d.state), "alert_id": "a1"})
        else:
            state = d.state
        actions.append(d)
        t += 30
    assert [d.action for d in actions] == ["raise", "clear"] + ["reopen", "clear"] * 3
    reopens = [d for d in actions if d.action == "reopen"]
    assert [d.state.flap_count for d in reopens] == [1, 2, 3]
    assert [d.notify for d in reopens] == [True, True, False]  # the third flap is held
    assert not actions[-1].notify  # a flapping alert clears silently too
    assert state.flapping
    # quiet for a whole flap window: stable again, and told
    [s] = run(rule, [(t + 700, 60.0)], t + 700, state)
    assert s.action == "stable"
    assert s.notify
    assert not s.state.flapping
    # firing long after the last clear is a new alert, not a reopen
    [n] = run(rule, [(t + 2000, 80.0)], t + 2000, s.state)
    assert n.action == "raise"


def _fields(s: KeyState) -> dict[str, object]:
    return {f: getattr(s, f) for f in KeyState.__dataclass_fields__}


# ----------------------------------------------------------------------------- properties

values = st.floats(min_value=0, max_value=120, allow_nan=False)
offsets = st.floats(min_value=0, max_value=900, allow_nan=False)
samples_st = st.lists(st.tuples(offsets, values), max_size=40).map(
    lambda xs: [(NOW - o, v) for o, v in xs]
)
rules = st.builds(
    RuleSpec,
    op=st.sampled_from([">", ">=", "<", "<=", "==", "!="]),
    threshold=st.floats(min_value=0, max_value=120, allow_nan=False),
    for_s=st.sampled_from([0.0, 5.0, 60.0, 300.0]),
    flap_window_s=st.sampled_from([0.0, 60.0, 600.0]),
    flap_threshold=st.integers(min_value=2, max_value=5),
)
states = st.builds(
    KeyState,
    active=st.booleans(),
    alert_id=st.sampled_from([None, "a1"]),
    pending_since=st.sampled_from([None, NOW - 1000, NOW - 10]),
    last_cleared_at=st.sampled_from([None, NOW - 30, NOW - 5000]),
    flap_count=st.integers(0, 5),
    flap_window_start=st.sampled_from([None, NOW - 100]),
    flapping=st.booleans(),
    last_change_at=st.sampled_from([None, NOW - 30, NOW - 5000]),
)


@given(rules, samples_st, st.none() | states)
def test_firing_means_the_condition_held_over_the_window(
    rule: RuleSpec, samples: list[tuple[float, float]], prev: KeyState | None
) -> None:
    from wrale.fleet.brain.services.alert_rules import OPS

    for d in run(rule, samples, NOW, prev):
        assert d.key == "d1"
        if d.action in ("raise", "reopen"):
            assert rule.threshold is not None
            window = [v for t, v in samples if NOW - rule.for_s <= t <= NOW]
            newest = max(samples)
            assert newest[0] >= NOW - FRESH_S  # at least one fresh sample
            assert OPS[rule.op](newest[1], rule.threshold)
            assert all(OPS[rule.op](v, rule.threshold) for v in window)
            assert d.state.active
            assert d.state.pending_since is not None
            assert d.state.pending_since <= NOW - rule.for_s


@given(rules, samples_st, st.none() | states)
def test_dedup_one_alert_per_key(
    rule: RuleSpec, samples: list[tuple[float, float]], prev: KeyState | None
) -> None:
    decisions = run(rule, samples, NOW, prev)
    assert len(decisions) <= 1
    for d in decisions:
        if prev is not None and prev.active:
            assert d.action not in ("raise", "reopen")  # never a second alert for a key
        if d.action == "clear":
            assert prev is not None
            assert prev.active
            assert not d.state.active
        if d.action == "reopen":
            assert prev is not None
            assert prev.alert_id is not None
        assert (
            not d.state.flapping
            or d.state.flap_count >= rule.flap_threshold
            or (prev is not None and prev.flapping)
        )
        if d.state.flapping and d.action in ("reopen", "clear"):
            assert not d.notify  # flapping alerts are quiet


@given(rules, samples_st, st.none() | states)
def test_evaluation_is_idempotent(
    rule: RuleSpec, samples: list[tuple[float, float]], prev: KeyState | None
) -> None:
    first = run(rule, samples, NOW, prev)
    state = first[0].state if first else (prev or KeyState())
    if first and first[0].action == "raise":
        state = KeyState(**{**_fields(state), "alert_id": "a1"})
    again = run(rule, samples, NOW, state)
    assert all(d.action is None for d in again)
