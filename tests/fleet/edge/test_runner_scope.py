"""How jobs are launched and outlive nothing: the systemd scope path (argv, CPUQuota=,
set-property, stop) with a stand-in systemd-run and an injected systemctl, how the mode is
detected, a real transient scope where this machine allows one, and a restarted runner
ending the processes an earlier agent left running.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from tests.fleet.edge.jobkit import ALLOW, Driven, fake_metal, py
from tests.fleet.edge.kit import eventually
from wrale.fleet.edge import jobproc
from wrale.fleet.edge.jobproc import Launch, ScopeLaunch, detect_launch, run_command, start_ticks
from wrale.fleet.edge.runner import OUTLIVED, RECORD_FILE, JobRunner

FAKE_SYSTEMD_RUN = Path(__file__).with_name("fake_systemd_run.py")
LONG = "import time; print('up', flush=True); time.sleep(120)"


class Systemctl:
    """Records the systemctl calls and answers them with ``code``."""

    def __init__(self, code: int = 0, out: str = "") -> None:
        self.calls: list[list[str]] = []
        self.code, self.out = code, out

    async def __call__(self, argv: Sequence[str], env: Mapping[str, str]) -> tuple[int, str]:
        assert not [k for k in env if k.startswith("WRALE")]
        self.calls.append(list(argv))
        return self.code, self.out


def scoped(tmp_path: Path, systemctl: Systemctl, **over: object) -> JobRunner:
    launch = ScopeLaunch(
        run=systemctl, program=(sys.executable, str(FAKE_SYSTEMD_RUN), str(tmp_path / "runs"))
    )
    return JobRunner(
        fake_metal(),
        allow=ALLOW,
        launch=launch,
        report_every_s=0.05,
        **over,
    )


async def test_with_systemd_a_job_runs_in_a_scope_with_its_cpu_quota(tmp_path: Path) -> None:
    systemctl = Systemctl()
    async with Driven(scoped(tmp_path, systemctl)) as d:
        d.runner.want({"p1": py(LONG, cpu_quota_pct=50)})
        run = await d.until("p1", "running")
        assert run["reason"] is None  # enforced: nothing to say
        assert run["cpu_quota_pct"] == 50
        await eventually(lambda: "up" in (d.entry("p1") or {}).get("output_tail", ""))
        args = json.loads((tmp_path / "runs").read_text())
        cut = args.index("--")
        assert args[:cut] == [
            "--scope",
            "--quiet",
            "--collect",
            "--unit",
            "wrale-job-p1",
            "-p",
            "CPUAccounting=yes",
            "-p",
            "CPUQuota=50%",
        ]
        assert args[cut + 1 :] == [sys.executable, "-c", LONG]

        d.runner.want({"p1": py(LONG, cpu_quota_pct=12.4)})
        await d.until("p1", "running", cpu_quota_pct=12.4)
        d.runner.want({"p1": py(LONG)})
        await d.until("p1", "running", cpu_quota_pct=None)
        d.runner.want({})
        await d.until("p1", "stopped")
    assert systemctl.calls == [
        ["systemctl", "set-property", "--runtime", "wrale-job-p1.scope", "CPUQuota=12%"],
        ["systemctl", "set-property", "--runtime", "wrale-job-p1.scope", "CPUQuota="],
        ["systemctl", "stop", "wrale-job-p1.scope"],  # what the job left in its scope
    ]


async def test_a_quota_systemd_refuses_is_reported_with_its_reason(tmp_path: Path) -> None:
    systemctl = Systemctl(1, "Failed to set unit properties: Access denied")
    async with Driven(scoped(tmp_path, systemctl)) as d:
        d.runner.want({"p1": py(LONG)})
        await d.until("p1", "running")
        d.runner.want({"p1": py(LONG, cpu_quota_pct=30)})
        run = await d.until("p1", "running", cpu_quota_pct=30)
    assert run["reason"] == "cpu quota not applied: Failed to set unit properties: Access denied"


async def test_a_user_scope_says_so_to_systemd_run_and_systemctl(tmp_path: Path) -> None:
    systemctl = Systemctl()
    launch = ScopeLaunch(user=True, run=systemctl)
    assert launch.command("p1", ["/bin/true"], None)[:3] == ["systemd-run", "--user", "--scope"]
    assert "XDG_RUNTIME_DIR" in launch.extra_env()
    await launch.stop_strays()
    assert systemctl.calls == [["systemctl", "--user", "stop", "wrale-job-*.scope"]]


async def test_detect_launch_picks_the_scope_systemd_grants(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    service = {"INVOCATION_ID": "abc"}
    ok = Systemctl()
    assert (await detect_launch("off", run=ok)).why == "cpu quota not enforced: job_scope is off"
    plain = await detect_launch("auto", run=ok, environ={}, systemd_dir=tmp_path)
    assert not plain.enforced
    assert plain.why == "cpu quota not enforced: the agent does not run under systemd"
    assert ok.calls == []

    system = await detect_launch("auto", run=ok, environ=service, systemd_dir=tmp_path)
    assert isinstance(system, ScopeLaunch)
    assert not system.user
    assert ok.calls[0][:2] == ["systemd-run", "--scope"]
    assert ok.calls[0][-2:] == ["--", "true"]

    calls: list[list[str]] = []

    async def only_user(argv: Sequence[str], env: Mapping[str, str]) -> tuple[int, str]:
        calls.append(list(argv))
        if "--user" in argv:
            return 0, ""
        return 1, "Failed to start transient scope unit: Interactive authentication required."

    user = await detect_launch("auto", run=only_user, environ=service, systemd_dir=tmp_path)
    assert isinstance(user, ScopeLaunch)
    assert user.user
    assert len(calls) == 2

    refused = await detect_launch("system", run=Systemctl(1, "Access denied"), environ={})
    assert not refused.enforced
    assert refused.why == "cpu quota not enforced: systemd-run --scope failed: Access denied"

    monkeypatch.setattr(shutil, "which", lambda name: None)
    none = await detect_launch("auto", run=ok, environ=service, systemd_dir=tmp_path)
    assert none.why == "cpu quota not enforced: no systemd (systemd-run not found)"


NO_SYSTEMD = shutil.which("systemd-run") is None or not Path("/run/systemd/system").is_dir()


@pytest.mark.skipif(
    NO_SYSTEMD, reason="no systemd here: systemd-run or /run/systemd/system missing"
)
async def test_a_real_transient_scope_caps_the_job() -> None:
    """Runs only where systemd makes scopes for this user; skipped elsewhere (not a pass)."""
    launch = await detect_launch("system")
    if not launch.enforced:
        launch = await detect_launch("user")
    if not isinstance(launch, ScopeLaunch):
        pytest.skip(f"systemd refuses transient scopes here: {launch.why}")
    runner = JobRunner(fake_metal(), allow=ALLOW, launch=launch, report_every_s=0.05)
    async with Driven(runner) as d:
        d.runner.want({"ptest": py(LONG, cpu_quota_pct=20)})
        await d.until("ptest", "running")
        flag = ["--user"] if launch.user else []
        code, out = await run_command(
            ["systemctl", *flag, "show", "-p", "CPUQuotaPerSecUSec", "wrale-job-ptest.scope"],
            jobproc._host_env(launch.user),
        )
        assert code == 0
        assert out == "CPUQuotaPerSecUSec=200ms"
        d.runner.want({})
        await d.until("ptest", "stopped")


def _stray() -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # an earlier agent's job, in its own process group
        [sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True
    )


async def _gone(proc: subprocess.Popen[bytes]) -> None:
    await eventually(lambda: proc.poll() is not None, "the stray ended")


async def test_a_restarted_runner_ends_the_jobs_that_outlived_the_agent(tmp_path: Path) -> None:
    old, again, reused = _stray(), _stray(), _stray()
    await eventually(lambda: all(start_ticks(p.pid) for p in (old, again, reused)))
    record = {
        "p_old": [old.pid, start_ticks(old.pid)],
        "p_again": [again.pid, start_ticks(again.pid)],
        "p_reused": [reused.pid, (start_ticks(reused.pid) or 0) + 1],  # not that process
    }
    (tmp_path / RECORD_FILE).write_text(json.dumps(record))
    runner = JobRunner(
        fake_metal(),
        allow=ALLOW,
        launch=Launch(),
        state_dir=tmp_path,
        report_every_s=0.05,
    )
    try:
        async with Driven(runner) as d:
            d.runner.want({"p_again": py(LONG)})
            await _gone(old)
            await _gone(again)
            assert old.returncode == -15
            stopped = await d.until("p_old", "stopped")
            assert stopped["reason"] == OUTLIVED
            await d.until("p_again", "running")  # still desired: started again
            await eventually(lambda: "up" in (d.entry("p_again") or {}).get("output_tail", ""))
            assert "p_reused" not in d.reports[-1]
            assert reused.poll() is None  # a pid now used by another process is left alone
            saved = json.loads((tmp_path / RECORD_FILE).read_text())
            assert set(saved) == {"p_again"}
            assert saved["p_again"][0] != again.pid
        assert json.loads((tmp_path / RECORD_FILE).read_text()) == {}  # stopped with the agent
    finally:
        for p in (old, again, reused):
            p.kill()
            p.wait()


async def test_a_finished_placement_is_restored_not_run_again_a_refusal_is_retried(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "ran"
    code = f"open({str(marker)!r}, 'a').write('x')"
    stored = {
        "p_done": {
            "state": "succeeded",
            "exit_code": 0,
            "started_at": 1.0,
            "ended_at": 2.0,
            "cpu_s": 0.5,
            "cpu_quota_pct": None,
            "output_tail": "old output",
            "reason": None,
        },
        "p_refused": {"state": "failed", "exit_code": None, "reason": "argv not allowed"},
        "p_running": {"state": "running", "exit_code": None},
    }
    runner = JobRunner(fake_metal(), allow=ALLOW, launch=Launch(), report_every_s=0.05)
    runner.restore(stored)
    async with Driven(runner) as d:
        await asyncio.sleep(0.1)  # before want(): nothing planned, nothing forgotten
        assert "p_done" in d.runner.reported()
        d.runner.want({"p_done": py(code), "p_refused": py(code), "p_running": py("pass")})
        await d.until("p_refused", "succeeded")
        await d.until("p_running", "succeeded")
        done = d.reports[-1]["p_done"]
    assert done["state"] == "succeeded"
    assert done["output_tail"] == "old output"
    assert marker.read_text() == "x"  # p_refused ran, p_done did not
