"""EdgeStore: a durable outbox bounded by rows and age, acks, twins, modes, results."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from wrale.fleet.edge.store import EdgeStore, Twin
from wrale.shared.clock import FakeClock

T0 = 1_700_000_000.0


def test_rows_leave_only_when_acknowledged_and_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "edge.db"
    store = EdgeStore(path)
    seqs = [store.append("telemetry", [["cpu_temp_c", T0 + i, 40.0 + i]]) for i in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    assert store.ack("telemetry", 2) == 2
    store.close()

    store = EdgeStore(path)
    assert store.depth("telemetry") == 3
    assert store.acked("telemetry") == 2
    assert [r.seq for r in store.rows_after("telemetry", 2, 100)] == [3, 4, 5]
    assert store.append("telemetry", [["x", T0, 1.0]]) == 6  # seqs never reused
    assert store.depth("events") == 0
    assert (store.head("telemetry"), store.head("events")) == (6, 0)
    store.close()
    assert EdgeStore(path).head("telemetry") == 6  # what the sender compares with


def test_rows_after_fills_batches_by_items_but_always_takes_one_row() -> None:
    store = EdgeStore(":memory:")
    for n in (3, 3, 3, 10):
        store.append("telemetry", [["m", T0, 1.0]] * n)
    assert [r.seq for r in store.rows_after("telemetry", 0, 7)] == [1, 2]
    assert [r.seq for r in store.rows_after("telemetry", 2, 7)] == [3]
    assert [r.seq for r in store.rows_after("telemetry", 3, 7)] == [4]  # too big alone: sent
    assert store.rows_after("telemetry", 4, 7) == []


def test_a_full_outbox_drops_the_oldest_and_counts_them(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "edge.db", max_rows=3)
    for i in range(10):
        store.append("events", [{"ts": T0 + i}])
    assert store.depth("events") == 3
    assert store.dropped("events") == 7
    assert [r.items[0]["ts"] for r in store.rows_after("events", 0, 100)] == [
        T0 + 7,
        T0 + 8,
        T0 + 9,
    ]
    store.close()
    assert EdgeStore(tmp_path / "edge.db", max_rows=3).dropped("events") == 7


def test_rows_older_than_the_age_bound_are_dropped_by_the_monotonic_clock() -> None:
    clock = FakeClock()
    store = EdgeStore(":memory:", max_age_s=60, monotonic=clock.monotonic)
    store.append("telemetry", [["m", T0, 1.0]])
    clock.advance(30)
    store.append("telemetry", [["m", T0 + 30, 1.0]])
    clock.step_wall(-365 * 86_400)  # the wall clock means nothing to the age
    clock.advance(70)
    store.append("telemetry", [["m", T0 + 100, 1.0]])
    assert [r.seq for r in store.rows_after("telemetry", 0, 100)] == [3]
    assert store.dropped("telemetry") == 2


@settings(max_examples=50)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("append"), st.integers(1, 5)),
            st.tuples(st.just("ack"), st.integers(0, 40)),
        ),
        max_size=40,
    ),
    st.integers(1, 8),
)
def test_outbox_never_exceeds_its_bound_and_accounts_for_every_row(
    ops: list[tuple[str, int]], bound: int
) -> None:
    store = EdgeStore(":memory:", max_rows=bound)
    appended = acked_rows = 0
    for op, n in ops:
        if op == "append":
            store.append("telemetry", [["m", T0, 1.0]] * n)
            appended += 1
        else:
            acked_rows += store.ack("telemetry", min(n, store.last_seq("telemetry")))
        assert store.depth("telemetry") <= bound
        left = len(store.rows_after("telemetry", 0, 10**6))
        assert left == store.depth("telemetry")
        assert appended == left + acked_rows + store.dropped("telemetry")


def test_welcome_drops_what_the_server_has() -> None:
    store = EdgeStore(":memory:")
    for _ in range(5):
        store.append("telemetry", [["m", T0, 1.0]])
    assert store.welcome("telemetry", 3) == 3
    assert [r.seq for r in store.rows_after("telemetry", 0, 100)] == [4, 5]
    assert store.head("telemetry") == 5
    assert store.acked("telemetry") == 3


def test_a_reset_store_renumbers_after_what_the_server_stored() -> None:
    """A reinstalled board starts at seq 1 while the server has 500: nothing waiting may
    be taken for a duplicate."""
    store = EdgeStore(":memory:")
    for i in range(3):
        store.append("telemetry", [["m", T0 + i, 1.0]])
    store.welcome("telemetry", 500)
    assert store.head("telemetry") == 503  # the sender sees the renumbered rows
    assert [r.seq for r in store.rows_after("telemetry", 500, 100)] == [501, 502, 503]
    assert [r.items[0][1] for r in store.rows_after("telemetry", 500, 100)] == [T0, T0 + 1, T0 + 2]
    assert store.append("telemetry", [["m", T0, 1.0]]) == 504


def test_what_was_forwarded_last_is_stored_with_the_row(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "edge.db")
    assert store.events_since() is None
    assert store.sampled() is None
    store.append("events", [{"ts": T0, "type": "X"}], events_since=42)
    store.append("telemetry", [["m", T0, 1.0]], sampled=[7, T0])
    store.close()
    again = EdgeStore(tmp_path / "edge.db")
    assert again.events_since() == 42
    assert again.sampled() == [7, T0]


def test_twins_mode_and_results_persist(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "edge.db")
    store.save_desired(3, {"fan": {"override_pct": 50}})
    store.save_reported(Twin(7, {"mode": "safe"}, 3, {"fan.override_pct": "too low"}))
    store.set_mode("safe")
    store.save_command_result("c1", {"id": "c1", "status": "succeeded"}, T0)
    store.save_command_result("c2", {"id": "c2", "status": "failed"}, T0 + 1)
    store.mark_sent("c1")
    store.close()

    store = EdgeStore(tmp_path / "edge.db")
    assert store.desired() == Twin(3, {"fan": {"override_pct": 50}})
    assert store.reported() == Twin(7, {"mode": "safe"}, 3, {"fan.override_pct": "too low"})
    assert store.mode() == "safe"
    assert store.command_result("c1") == {"id": "c1", "status": "succeeded"}
    assert [i for i, _ in store.results_to_send(T0 + 10)] == ["c2"]
    assert [i for i, _ in store.results_to_send(T0)] == ["c1", "c2"]
    assert (tmp_path / "edge.db-wal").exists()  # WAL journal
