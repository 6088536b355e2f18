"""The device page's twin table shows the ``jobs`` section one row per placement: what the
brain asks for and the state the board reports, not the section's leaves (its shapes differ
each way, so leaf by leaf every placement would read "pending" for ever)."""

from __future__ import annotations

from wrale.fleet.brain.models.twin import DeviceTwin
from wrale.user.ui.pages.device_twin import twin_rows

ASKED = {
    "job": "j1",
    "name": "render",
    "workload": {"kind": "sim_load", "cpu_pct": 40},
    "duration_s": None,
    "cpu_quota_pct": None,
}


def twin(reported_jobs: dict[str, object], rejected: dict[str, str] | None = None) -> DeviceTwin:
    return DeviceTwin(
        desired={"sampling": {"interval_s": 1.0}, "jobs": {"p1": ASKED, "p2": ASKED}},
        reported={"sampling": {"interval_s": 1.0}, "jobs": reported_jobs},
        rejected=rejected or {},
    )


def test_one_row_per_placement_with_the_boards_state() -> None:
    rows = twin_rows(twin({"p1": {"state": "running", "reason": None}}))
    jobs = {r["path"]: r for r in rows if r["section"] == "jobs"}
    assert set(jobs) == {"jobs.p1", "jobs.p2"}
    assert jobs["jobs.p1"]["desired"] == "render (sim_load)"
    assert (jobs["jobs.p1"]["reported"], jobs["jobs.p1"]["state"]) == ("running", "in-sync")
    assert (jobs["jobs.p2"]["reported"], jobs["jobs.p2"]["state"]) == ("not reported", "pending")
    assert not any(r["path"].startswith("jobs.p1.") for r in rows)  # no leaf rows
    sampling = next(r for r in rows if r["path"] == "sampling.interval_s")
    assert sampling["state"] == "in-sync"


def test_a_refused_placement_shows_the_boards_reason() -> None:
    refused = {"state": "failed", "reason": "argv not allowed by this board: /bin/sh"}
    rows = twin_rows(twin({"p1": refused, "p2": {"state": "running"}}))
    p1 = next(r for r in rows if r["path"] == "jobs.p1")
    assert p1["reported"] == "failed"
    assert p1["reason"] == "argv not allowed by this board: /bin/sh"


def test_malformed_sections_do_not_break_the_page() -> None:
    t = DeviceTwin(desired={"jobs": {"p1": "junk"}}, reported={"jobs": ["junk"]}, rejected={})
    (row,) = twin_rows(t)
    assert (row["desired"], row["reported"], row["state"]) == ("? (?)", "not reported", "pending")
