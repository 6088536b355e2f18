"""EdgeStore's write-behind telemetry: an online board writes no telemetry, an offline one
writes it once it has waited ``persist_after_s``, and a power cut (SIGKILL) loses at most
that, never reusing a seq."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

from wrale.fleet.edge.store import EdgeStore
from wrale.shared.clock import FakeClock

T0 = 1_700_000_000.0
ROW = [["cpu_temp_c", T0, 40.0]]


def commits_by_others(watch: sqlite3.Connection) -> int:
    """SQLite's data_version: changes when another connection commits to the file."""
    return int(watch.execute("PRAGMA data_version").fetchone()[0])


def test_an_online_board_writes_no_telemetry(tmp_path: Path) -> None:
    clock = FakeClock()
    store = EdgeStore(tmp_path / "edge.db", persist_after_s=60, monotonic=clock.monotonic)
    store.append("telemetry", ROW)  # the first row reserves a block of seqs: one commit
    store.ack("telemetry", 1)
    watch = sqlite3.connect(tmp_path / "edge.db")
    before = commits_by_others(watch)
    for seq in range(2, 300):  # ~50 minutes of 10 s reports, each acked within a second
        clock.advance(10)
        assert store.append("telemetry", ROW) == seq
        clock.advance(1)
        store.ack("telemetry", seq)
    assert commits_by_others(watch) == before
    assert store.depth("telemetry") == 0
    assert store.acked("telemetry") == 299


def test_unacknowledged_rows_are_written_together_after_persist_after_s(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "edge.db"
    store = EdgeStore(path, persist_after_s=60, monotonic=clock.monotonic)
    watch = sqlite3.connect(path)
    store.append("telemetry", ROW)

    def on_disk() -> int:
        return int(watch.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    before = commits_by_others(watch)
    for _ in range(5):  # the link is down: nothing is acknowledged
        clock.advance(10)
        store.append("telemetry", ROW)
    assert (on_disk(), store.held(), commits_by_others(watch)) == (0, 6, before)
    clock.advance(10)
    store.append("telemetry", ROW)  # the first row has waited 60 s: all seven, one commit
    assert (on_disk(), store.held(), commits_by_others(watch)) == (7, 0, before + 1)
    assert [r.seq for r in store.rows_after("telemetry", 0, 100)] == list(range(1, 8))
    clock.advance(10)
    store.append("telemetry", ROW)
    assert [r.seq for r in store.rows_after("telemetry", 3, 100)] == [4, 5, 6, 7, 8]
    assert store.depth("telemetry") == 8
    assert store.ack("telemetry", 8) == 8  # written and held rows alike
    assert store.depth("telemetry") == 0


def test_a_clean_close_writes_what_is_held_and_seqs_carry_on(tmp_path: Path) -> None:
    path = tmp_path / "edge.db"
    store = EdgeStore(path, persist_after_s=60)
    for _ in range(3):
        store.append("telemetry", ROW, sampled=[9, T0])
    store.ack("telemetry", 1)
    store.close()
    again = EdgeStore(path, persist_after_s=60)
    assert [r.seq for r in again.rows_after("telemetry", 0, 100)] == [2, 3]
    assert (again.acked("telemetry"), again.sampled()) == (1, [9, T0])
    assert again.append("telemetry", ROW) == 4  # no gap after a clean stop


def test_a_reset_store_renumbers_its_held_rows_too() -> None:
    store = EdgeStore(":memory:", persist_after_s=60)
    for _ in range(3):
        store.append("telemetry", ROW)
    store.welcome("telemetry", 5000)  # the server is past every seq this store reserved
    assert [r.seq for r in store.rows_after("telemetry", 5000, 100)] == [5001, 5002, 5003]
    assert store.append("telemetry", ROW) == 5004


CHILD = textwrap.dedent(
    """
    import sys, time
    from wrale.fleet.edge.store import EdgeStore
    store = EdgeStore(sys.argv[1], persist_after_s=float(sys.argv[2]), seq_block=16)
    while True:
        seq = store.append("telemetry", [["cpu_temp_c", time.time(), 40.0]])
        print(seq, time.monotonic(), flush=True)
        time.sleep(0.02)
    """
)


def test_a_power_cut_loses_at_most_persist_after_s_and_reuses_no_seq(tmp_path: Path) -> None:
    """The child appends a row every 20 ms and is killed with SIGKILL (no flush, no close):
    every row older than ``persist_after_s`` plus one append interval is on disk."""
    path, persist_s, rows = tmp_path / "edge.db", 0.3, 60
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(persist_s)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert child.stdout is not None
    made: list[tuple[int, float]] = []
    while len(made) < rows:
        seq, mono = child.stdout.readline().split()
        made.append((int(seq), float(mono)))
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    last_mono = made[-1][1]
    store = EdgeStore(path, persist_after_s=persist_s)
    kept = {r.seq for r in store.rows_after("telemetry", 0, 10**6)}
    must = {s for s, m in made if m <= last_mono - persist_s - 0.1}
    assert must, "the child ran long enough for rows to be written"
    assert must <= kept
    assert len(kept) < len(made)  # the youngest were only in memory: the stated loss
    assert store.append("telemetry", ROW) > made[-1][0]  # never a seq the server may have seen
