"""The board's SQLite store keeps events and state across a restart."""

from __future__ import annotations

from pathlib import Path

from wrale.metal.core.events import Event, EventType, Severity
from wrale.metal.core.store import DeviceStore


def ev(i: int, sev: Severity = Severity.INFO) -> Event:
    return Event(EventType.TAMPER, sev, float(i), f"event {i}", {"i": i})


def test_events_survive_reopen_and_filter(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    store = DeviceStore(path)
    stored = store.append_events([ev(1), ev(2, Severity.CRITICAL), ev(3, Severity.WARNING)])
    assert [e.id for e in stored] == [1, 2, 3]
    store.set_state("security", {"lockdown": True})
    store.close()
    store = DeviceStore(path)
    assert [e.message for e in store.events()] == ["event 1", "event 2", "event 3"]
    assert [e.id for e in store.events(since_id=1)] == [2, 3]
    assert [e.id for e in store.events(limit=2)] == [2, 3]
    assert [e.id for e in store.events(min_severity=Severity.WARNING)] == [2, 3]
    assert store.events(types=["LOCKDOWN"]) == []
    assert store.get_state("security") == {"lockdown": True}
    assert store.get_state("missing") is None
    assert store.events()[0].data == {"i": 1}


def test_retention_bounds_the_event_table() -> None:
    store = DeviceStore(":memory:", event_retention=100)
    for i in range(5):
        store.append_events([ev(j) for j in range(i * 100, i * 100 + 100)])
    assert len(store.events(limit=1000)) <= 200


def test_diag_history_newest_first() -> None:
    store = DeviceStore(":memory:", diag_retention=10)
    store.add_diag_results([{"name": f"t{i}", "timestamp": i} for i in range(15)])
    hist = store.diag_history(limit=100)
    assert len(hist) == 10
    assert hist[0]["name"] == "t14"
