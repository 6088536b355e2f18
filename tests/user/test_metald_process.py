"""`wrale metald` as an operator runs it: a real process, its API, its CLI, its restarts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.user.metald_proc import DEV_KEY, WRALE, Metald
from wrale.user.cli.app import app


def run_wrale(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("WRALE_")}
    return subprocess.run(
        [WRALE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, **(env or {})},
        check=False,
    )


def test_refuses_default_key_outside_dev(tmp_path: Path) -> None:
    out = run_wrale("metald", "--backend", "sim", "--data-dir", str(tmp_path))
    assert out.returncode == 2
    assert "WRALE_METAL_API_KEY" in out.stderr


def test_invalid_setting_is_named(tmp_path: Path) -> None:
    out = run_wrale(
        "metald",
        "--backend",
        "sim",
        "--dev",
        "--data-dir",
        str(tmp_path),
        env={"WRALE_METAL_THERMAL__CPU_CRITICAL_C": "hot"},
    )
    assert out.returncode == 2
    assert "setting 'thermal.cpu_critical_c'" in out.stderr
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[power]\ncritical_battery_pct = 50\n")
    out = run_wrale("metald", "--config", str(cfg), "--dev", "--data-dir", str(tmp_path))
    assert out.returncode == 2
    assert "critical_battery_pct" in out.stderr


def test_state_contract_and_cli(metald: Metald) -> None:
    with metald.client() as http:
        state = http.get("/v1/state").json()
    for key in (
        "cpu_temp_c",
        "gpu_temp_c",
        "ambient_temp_c",
        "fan_percent",
        "fan_rpm",
        "throttled",
        "warnings",
    ):
        assert key in state["thermal"]
    for key in ("source", "battery_pct", "charging", "voltage_v", "power_w", "available"):
        assert key in state["power"]
    for key in ("case_open", "motion_detected", "voltage_normal", "armed", "level"):
        assert key in state["security"]
    assert "gpio" in state
    assert "updated_at" in state

    runner = CliRunner()
    env = {"WRALE_METAL_URL": metald.url, "WRALE_METAL_API_KEY": DEV_KEY}
    result = runner.invoke(app, ["metal", "status", "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["power"]["source"] == "main"
    result = runner.invoke(app, ["metal", "status"], env=env)
    assert result.exit_code == 0
    assert "Thermal" in result.output
    result = runner.invoke(app, ["metal", "fan", "40", "--duration", "60", "--json"], env=env)
    assert result.exit_code == 0
    assert json.loads(result.output)["fan_percent"] == 40
    result = runner.invoke(app, ["metal", "sim", "fault", "bogus"], env=env)
    assert result.exit_code == 1
    assert "error" in result.output
    result = runner.invoke(app, ["metal", "diag", "--json"], env=env)
    assert json.loads(result.output), result.output
    result = runner.invoke(app, ["metal", "events", "--json", "--limit", "5"], env=env)
    assert result.exit_code == 0
    assert "METALD_STARTED" in result.output
    bad = runner.invoke(app, ["metal", "status"], env={**env, "WRALE_METAL_API_KEY": "nope"})
    assert bad.exit_code == 1


def test_tamper_events_survive_kill_and_restart(metald: Metald) -> None:
    with metald.client() as http:
        assert http.post("/v1/security/arm", json={"level": "high"}).status_code == 200
        assert http.post("/v1/sim/faults", json={"fault": "case_open"}).status_code in (200, 201)
        deadline = time.monotonic() + 10
        while not http.get("/v1/security").json()["lockdown"]:
            assert time.monotonic() < deadline, "no lockdown within 10 s"
            time.sleep(0.1)
        before = [e for e in http.get("/v1/events").json() if e["type"] == "TAMPER"]
    assert before
    metald.kill(signal.SIGKILL)  # no goodbye: as if the power went
    metald.start()
    with metald.client() as http:
        after = [e for e in http.get("/v1/events").json() if e["type"] == "TAMPER"]
        assert [e["id"] for e in after][: len(before)] == [e["id"] for e in before]
        assert http.get("/v1/security").json()["lockdown"] is True
        refused = http.put("/v1/thermal/fan", json={"percent": 50, "duration_s": 60})
        assert refused.status_code == 409
        assert http.post("/v1/security/disarm").status_code == 200
        assert (
            http.put("/v1/thermal/fan", json={"percent": 50, "duration_s": 60}).status_code == 200
        )


@pytest.mark.slow
def test_sigterm_stops_cleanly(metald: Metald) -> None:
    assert metald.kill(signal.SIGTERM) == 0
