"""The pure side of jobs: desired entries read into work or refused with a reason, the
allow-list's exact prefix match, the plan from running work to desired placements, the
bounded output tail; malformed entries through the runner (its loop survives them); the
``job_allow`` setting; and the twin's planner leaving the ``jobs`` section alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.fleet.edge.jobkit import ALLOW, PY, Driven, fake_metal, py, sim
from wrale.fleet.brain.decisions.capping import MIN_QUOTA_PCT
from wrale.fleet.edge.jobproc import Launch, OutputTail
from wrale.fleet.edge.jobspec import (
    MAX_PLACEMENTS,
    Fail,
    Forget,
    JobSpec,
    Known,
    ProcessWork,
    Refused,
    SetQuota,
    SimLoadWork,
    Start,
    Stop,
    allowed,
    plan,
    read_entry,
)
from wrale.fleet.edge.reconcile import plan as plan_twin
from wrale.fleet.edge.runner import JobRunner
from wrale.fleet.edge.settings import EdgeSettings
from wrale.shared.config import load_settings
from wrale.shared.errors import ConfigError


def test_allowed_is_an_exact_prefix_element_by_element() -> None:
    allow = [["/usr/bin/stress-ng"], ["/usr/bin/python3", "/opt/work/run.py"]]
    assert allowed(["/usr/bin/stress-ng", "--cpu", "1"], allow)
    assert allowed(["/usr/bin/python3", "/opt/work/run.py", "--fast"], allow)
    assert not allowed(["/usr/bin/python3", "/opt/work/run.py2"], allow)
    assert not allowed(["/usr/bin/python3"], allow)
    assert not allowed(["/usr/bin/stress-ng2"], allow)
    assert not allowed(["stress-ng"], allow)
    assert not allowed(["/usr/bin/stress-ng"], [])
    assert not allowed(["/usr/bin/stress-ng"], [[]])  # an empty prefix allows nothing


@pytest.mark.parametrize(
    ("placement", "entry", "reason"),
    [
        ("p1", "nope", "a placement must be an object"),
        ("p1", {}, "workload must be an object"),
        ("p1", {"workload": {"kind": "teleport"}}, "workload.kind must be"),
        ("p1", {"workload": {"kind": "process", "argv": "ls"}}, "workload.argv must be"),
        ("p1", {"workload": {"kind": "process", "argv": []}}, "workload.argv must be"),
        ("p1", {"workload": {"kind": "process", "argv": [PY, 3]}}, "workload.argv must be"),
        ("p1", {"workload": {"kind": "process", "argv": [PY, "a\x00"]}}, "workload.argv"),
        ("p1", {**py("1"), "duration_s": -1}, "duration_s must be null or a number"),
        ("p1", {**py("1"), "duration_s": True}, "duration_s must be null or a number"),
        ("p1", {**py("1"), "cpu_quota_pct": "50"}, "cpu_quota_pct must be null or a number"),
        ("p1", {**py("1"), "cpu_quota_pct": 0}, "cpu_quota_pct must be null or a number"),
        ("p1", sim(500), "workload.cpu_pct must be a number from 0 to 100"),
        ("p1", sim(float("nan")), "workload.cpu_pct"),
        ("bad id!", py("1"), "a placement id is"),
        ("x" * 101, py("1"), "a placement id is"),
        ("p1", {"workload": {"kind": "process", "argv": [PY, "-c", "1"], "env": []}}, "env"),
        (
            "p1",
            {"workload": {"kind": "process", "argv": [PY, "-c", "1"], "env": {"A": 1}}},
            "env.A",
        ),
        (
            "p1",
            {"workload": {"kind": "process", "argv": [PY, "-c", "1"], "env": {"1A": "x"}}},
            "env",
        ),
    ],
)
def test_a_malformed_entry_is_refused_with_a_reason(
    placement: str, entry: Any, reason: str
) -> None:
    got = read_entry(placement, entry, ALLOW)
    assert isinstance(got, Refused)
    assert reason in got.reason
    assert len(got.reason) <= 200


def test_a_good_entry_reads_into_work() -> None:
    entry = py("print(1)", duration_s=5, cpu_quota_pct=50)
    entry["workload"]["env"] = {"B": "2", "A": "1"}
    spec = read_entry("p_01", entry, ALLOW)
    assert spec == JobSpec(ProcessWork((PY, "-c", "print(1)"), (("A", "1"), ("B", "2"))), 5.0, 50.0)
    assert read_entry("p_02", sim(40), ()) == JobSpec(SimLoadWork(40.0))


def test_the_least_quota_the_brains_capping_sets_is_one_the_board_takes() -> None:
    """Capping's last resort puts quotas at MIN_QUOTA_PCT; a board refuses 0 (as systemd's
    CPUQuota= does), so the brain must never send it."""
    spec = read_entry("p_01", py("1", cpu_quota_pct=MIN_QUOTA_PCT), ALLOW)
    assert isinstance(spec, JobSpec)
    assert spec.cpu_quota_pct == MIN_QUOTA_PCT


def _spec(quota: float | None = None) -> JobSpec:
    return JobSpec(SimLoadWork(10.0), None, quota)


def test_plan_starts_stops_requotas_forgets_and_fails() -> None:
    known = {
        "run": Known("running", _spec()),
        "gone": Known("running", _spec()),
        "done": Known("succeeded"),
        "done_gone": Known("failed"),
        "stopped_again": Known("stopped"),
        "stopped_gone": Known("stopped"),
    }
    desired = {
        "run": sim(10, cpu_quota_pct=30),
        "done": sim(10),
        "stopped_again": sim(10),
        "new": sim(20),
        "bad": {"workload": 1},
    }
    steps, problem = plan(known, desired, ())
    assert problem is None
    assert steps == [
        Fail("bad", "workload must be an object"),
        Start("new", JobSpec(SimLoadWork(20.0))),
        SetQuota("run", 30.0),
        Start("stopped_again", JobSpec(SimLoadWork(10.0))),
        Forget("done_gone"),
        Stop("gone"),
    ]


def test_plan_without_changes_is_empty_and_a_bad_section_stops_everything() -> None:
    known = {"run": Known("running", _spec(30.0))}
    assert plan(known, {"run": sim(10, cpu_quota_pct=30)}, ()) == ([], None)
    steps, problem = plan(known, ["not", "an", "object"], ())
    assert steps == [Stop("run")]
    assert problem == "jobs must be an object of placements"
    assert plan(known, None, ()) == ([Stop("run")], None)


def test_plan_refuses_placements_past_the_boards_limit() -> None:
    desired = {f"p{n:03d}": sim(1) for n in range(MAX_PLACEMENTS + 3)}
    steps, _ = plan({}, desired, ())
    assert sum(isinstance(s, Start) for s in steps) == MAX_PLACEMENTS
    assert [s for s in steps if isinstance(s, Fail)] == [
        Fail(f"p{n:03d}", f"this board runs at most {MAX_PLACEMENTS} jobs")
        for n in range(MAX_PLACEMENTS, MAX_PLACEMENTS + 3)
    ]


def test_the_output_tail_keeps_the_last_bytes_as_storable_text() -> None:
    tail = OutputTail(16)
    tail.feed(b"0123456789")
    tail.feed(b"abcdefghij")
    assert tail.text() == "456789abcdefghij"
    tail.feed("xx\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9".encode())  # 2-byte characters
    assert tail.text(5) == "\u00e9\u00e9"  # a character cut in front is dropped
    tail.feed(b"\x00\x1b[0m\tok\n\xff")
    assert tail.text().endswith("\ufffd\ufffd[0m\tok\n\ufffd")
    assert "\x00" not in tail.text()
    big = OutputTail()
    big.feed(b"y" * 10_000)
    assert len(big.text()) == 4096


async def test_malformed_entries_fail_and_the_loop_keeps_going() -> None:
    runner = JobRunner(fake_metal(), allow=ALLOW, launch=Launch(), report_every_s=0.05)
    async with Driven(runner) as d:
        assert d.runner.want("nope") == "jobs must be an object"
        d.runner.want(
            {
                "p1": "nope",
                "p2": {"workload": {"kind": "teleport"}},
                "bad id!": py("print(1)"),
                "p4": py("print(1)", duration_s=-1),
                "p5": sim(500),
                "p6": py("print('still here')"),
            }
        )
        ok = await d.until("p6", "succeeded")
        assert "still here" in ok["output_tail"]
        last = d.reports[-1]
        for p in ("p1", "p2", "bad id!", "p4", "p5"):
            assert last[p]["state"] == "failed", p
            assert last[p]["reason"], p
            assert last[p]["exit_code"] is None


def test_the_twin_planner_leaves_the_jobs_section_to_the_runner() -> None:
    assert plan_twin({"jobs": {}}, {"jobs": {"p1": py("1")}, "bogus": 1}) == []
    assert plan_twin({}, {"jobs": "not even an object"}) == []


def test_job_allow_from_toml_and_environment(tmp_path: Path) -> None:
    toml = tmp_path / "edge.toml"
    toml.write_text(
        'job_allow = [["/usr/bin/stress-ng"], ["/usr/bin/python3", "/opt/work/run.py"]]\n'
        'job_scope = "user"\n'
    )
    s = load_settings(EdgeSettings, config_file=toml, environ={})
    assert s.job_allow == (("/usr/bin/stress-ng",), ("/usr/bin/python3", "/opt/work/run.py"))
    assert s.job_scope == "user"
    env = {"WRALE_EDGE_JOB_ALLOW": '[["/bin/true"]]'}
    assert load_settings(EdgeSettings, environ=env).job_allow == (("/bin/true",),)
    assert EdgeSettings().job_allow == ()
    with pytest.raises(ConfigError, match="job_allow"):
        load_settings(EdgeSettings, environ={"WRALE_EDGE_JOB_ALLOW": '[["/bin/true"], []]'})
