"""The job runner with real processes (Python one-liners allowed by a prefix): they run
and report running then their end with exit code and output, a refused argv reports the
board's reason, removal from desired stops them (SIGTERM, SIGKILL after the grace),
``duration_s`` ends them as succeeded, and their environment holds none of the agent's.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.fleet.edge.jobkit import ALLOW, PY, Driven, fake_metal, py
from tests.fleet.edge.kit import eventually
from wrale.fleet.edge.jobproc import Launch
from wrale.fleet.edge.runner import JobRunner

LONG = "import time; print('up', flush=True); time.sleep(120)"
STUBBORN = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(120)"
)


def runner(**over: Any) -> JobRunner:
    args: dict[str, Any] = {
        "allow": ALLOW,
        "launch": Launch(),
        "report_every_s": 0.05,
        "stop_grace_s": 5.0,
    }
    return JobRunner(fake_metal(), **(args | over))


async def test_a_process_runs_then_succeeds_with_its_output_and_exit_code() -> None:
    code = (
        "import sys, time; print('hello', flush=True); time.sleep(0.3); "
        "print('err', file=sys.stderr)"
    )
    async with Driven(runner()) as d:
        d.runner.want({"p1": py(code)})
        end = await d.until("p1", "succeeded")
    assert d.states("p1")[-2:] == ["running", "succeeded"]
    assert end["exit_code"] == 0
    assert end["reason"] is None
    assert "hello\n" in end["output_tail"]
    assert "err\n" in end["output_tail"]
    assert end["started_at"] is not None
    assert end["ended_at"] >= end["started_at"]
    assert end["cpu_quota_pct"] is None
    assert set(end) == {
        "state",
        "reason",
        "exit_code",
        "started_at",
        "ended_at",
        "cpu_s",
        "cpu_quota_pct",
        "output_tail",
    }


async def test_a_failing_process_reports_failed_with_its_exit_code() -> None:
    async with Driven(runner()) as d:
        d.runner.want({"p1": py("import sys; print('bad input'); sys.exit(3)")})
        end = await d.until("p1", "failed")
    assert end["exit_code"] == 3
    assert end["reason"] == "exited with code 3"
    assert "bad input" in end["output_tail"]


async def test_an_argv_off_the_allow_list_is_refused_with_the_reason() -> None:
    huge = ["x" * 4000] * 200
    async with Driven(runner()) as d:
        d.runner.want(
            {
                "p_sh": {"workload": {"kind": "process", "argv": ["/bin/sh", "-c", "echo hi"]}},
                "p_huge": {"workload": {"kind": "process", "argv": ["/bin/sh", *huge]}},
                "p_short": {"workload": {"kind": "process", "argv": [PY]}},
                "p_near": {"workload": {"kind": "process", "argv": [PY, "-cx", "1"]}},
            }
        )
        sh = await d.until("p_sh", "failed")
        await d.until("p_near", "failed")
    assert sh["reason"] == "argv not allowed by this board: /bin/sh -c 'echo hi'"
    assert sh["exit_code"] is None
    assert sh["started_at"] is None
    huge_reason = d.entry("p_huge")
    assert huge_reason is not None
    assert huge_reason["reason"].startswith("argv not allowed by this board: /bin/sh xxx")
    assert len(huge_reason["reason"]) <= 200
    for p in ("p_short", "p_near"):  # element by element, exactly: not shorter, not a substring
        e = d.entry(p)
        assert e is not None
        assert e["reason"].startswith("argv not allowed"), p


async def test_removal_from_desired_stops_it_reports_stopped_once_then_drops_it() -> None:
    async with Driven(runner()) as d:
        d.runner.want({"p1": py(LONG)})
        await d.until("p1", "running")
        await eventually(lambda: "up" in (d.entry("p1") or {}).get("output_tail", ""))
        d.runner.want({})
        end = await d.until("p1", "stopped")
        assert end["exit_code"] == -15  # SIGTERM
        assert end["reason"] is None
        assert end["ended_at"] is not None
        d.runner.sent(d.reports[-1])  # the agent sent it
        await eventually(lambda: "p1" not in d.reports[-1], "p1 dropped from reported")


async def test_a_process_ignoring_sigterm_is_killed_after_the_grace() -> None:
    async with Driven(runner(stop_grace_s=0.3)) as d:
        d.runner.want({"p1": py(STUBBORN)})
        await eventually(lambda: "ready" in (d.entry("p1") or {}).get("output_tail", ""))
        d.runner.want({})
        end = await d.until("p1", "stopped")
    assert end["exit_code"] == -9  # SIGKILL


async def test_duration_s_ends_it_as_succeeded() -> None:
    async with Driven(runner()) as d:
        d.runner.want({"p1": py(LONG, duration_s=0.3)})
        end = await d.until("p1", "succeeded")
    assert end["reason"] == "duration_s reached"
    assert end["exit_code"] == -15
    assert end["ended_at"] - end["started_at"] >= 0.3


async def test_a_finished_placement_stays_while_desired_and_is_not_run_again(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "runs"
    code = f"open({str(marker)!r}, 'a').write('x')"
    async with Driven(runner()) as d:
        d.runner.want({"p1": py(code)})
        await d.until("p1", "succeeded")
        d.runner.want({"p1": py(code), "p2": py("pass")})
        await d.until("p2", "succeeded")
        assert d.reports[-1]["p1"]["state"] == "succeeded"
        d.runner.want({"p2": py("pass")})
        await eventually(lambda: "p1" not in d.reports[-1], "p1 forgotten once not desired")
    assert marker.read_text() == "x"


async def test_the_environment_is_minimal_plus_the_given_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WRALE_EDGE_METALD_API_KEY", "agent-secret-1234567890")
    monkeypatch.setenv("WRALE_DEVICE_SECRET", "device-secret-1234567890")
    show = "import json, os; print(json.dumps(dict(os.environ)))"
    job = py(show)
    job["workload"]["env"] = {"RUN_ID": "42"}
    async with Driven(runner()) as d:
        d.runner.want({"p1": job})
        end = await d.until("p1", "succeeded")
    env = json.loads(end["output_tail"])
    assert env["RUN_ID"] == "42"
    assert env["PATH"].startswith("/usr/local/sbin:")
    assert env["LANG"] == "C.UTF-8"
    assert not [k for k in env if k.startswith("WRALE")]
    assert "secret" not in end["output_tail"]
    assert set(env) - {"RUN_ID", "PATH", "LANG"} <= {"LC_CTYPE"}  # Python may set LC_CTYPE
    assert os.environ["WRALE_DEVICE_SECRET"]  # the agent's own stay with the agent


@pytest.mark.parametrize("key", ["LD_PRELOAD", "PYTHONPATH", "PATH", "BASH_ENV", "WRALE_X"])
async def test_env_keys_that_change_what_runs_are_refused(key: str) -> None:
    job = py("print(1)")
    job["workload"]["env"] = {key: "/tmp/evil"}
    async with Driven(runner()) as d:
        d.runner.want({"p1": job})
        end = await d.until("p1", "failed")
    assert end["reason"] == f"workload.env: {key} is not allowed on this board"


async def test_a_quota_without_systemd_is_reported_as_not_enforced() -> None:
    async with Driven(runner()) as d:
        d.runner.want({"p1": py(LONG, cpu_quota_pct=50)})
        run = await d.until("p1", "running")
        assert run["cpu_quota_pct"] == 50
        assert run["reason"] == "cpu quota not enforced: no systemd"
        d.runner.want({"p1": py(LONG, cpu_quota_pct=25)})
        await d.until("p1", "running", cpu_quota_pct=25)
        d.runner.want({})
        end = await d.until("p1", "stopped")
    assert end["reason"] is None


async def test_cpu_seconds_are_sampled_while_it_runs() -> None:
    burn = (
        "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5: pass\n"
        "print('done', flush=True)\ntime.sleep(120)"
    )
    async with Driven(runner()) as d:
        d.runner.want({"p1": py(burn)})
        await eventually(lambda: "done" in (d.entry("p1") or {}).get("output_tail", ""))
        await eventually(lambda: d.reports[-1]["p1"]["cpu_s"] >= 0.4, "cpu_s counted")


async def test_a_program_that_cannot_start_fails_with_the_reason() -> None:
    missing = "/nonexistent/bin/work"
    r = runner(allow=((missing,),))
    async with Driven(r) as d:
        d.runner.want({"p1": {"workload": {"kind": "process", "argv": [missing]}}})
        end = await d.until("p1", "failed")
    assert end["reason"].startswith("cannot start: [Errno 2]")
