"""`wrale metald` as an operator runs it: a real process, its API, its CLI, its restarts."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.metal.core.tls_files import self_signed
from tests.user.metald_proc import DEV_KEY, WRALE, Metald, free_port
from wrale.user.cli.app import app
from wrale.user.cli.device import main as device_main


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


# ----------------------------------------------------------------------------- listen address


def test_refuses_plain_http_beyond_loopback(tmp_path: Path) -> None:
    out = subprocess.run(
        [WRALE, "metald", "--backend", "sim", "--dev", "--data-dir", str(tmp_path),
         "--listen", f"0.0.0.0:{free_port()}"],
        capture_output=True, text=True, timeout=30, check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("WRALE_")},
    )  # fmt: skip
    assert out.returncode == 2
    assert "without TLS" in out.stderr
    assert "--insecure-listen" in out.stderr


def test_device_run_refuses_plain_http_beyond_loopback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("WRALE_")]:
        monkeypatch.delenv(name)
    args = ["run", "--dev", "--state-dir", str(tmp_path), "--listen", "0.0.0.0:8421"]
    assert device_main(args) == 2
    assert "without TLS" in capsys.readouterr().err


def test_insecure_listen_serves_and_warns(tmp_path: Path) -> None:
    m = Metald(tmp_path)
    m.extra = ("--listen", f"0.0.0.0:{m.port}", "--insecure-listen")
    m.start()  # health is checked over 127.0.0.1, which 0.0.0.0 includes
    try:
        with m.client() as http:
            assert http.get("/v1/state").status_code == 200
    finally:
        assert m.kill(signal.SIGTERM) == 0
    assert m.proc is not None
    assert m.proc.stderr is not None
    assert "insecure listen" in m.proc.stderr.read().decode()


def test_tls_listen_serves_https(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WRALE_")}
    proc = subprocess.Popen(
        [WRALE, "metald", "--backend", "sim", "--dev", "--data-dir", str(tmp_path / "d"),
         "--listen", f"0.0.0.0:{port}", "--tls-cert", str(cert), "--tls-key", str(key)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    url = f"https://127.0.0.1:{port}"
    verify = ssl.create_default_context(cafile=str(cert))
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            try:
                if httpx.get(f"{url}/healthz", verify=verify, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "metald did not serve HTTPS in 30 s"
                time.sleep(0.05)
        with pytest.raises(httpx.TransportError):  # plain HTTP to the TLS port gets nothing
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        # the operator's CLI trusts the board's certificate through SSL_CERT_FILE
        result = CliRunner().invoke(
            app,
            ["metal", "status", "--json"],
            env={
                "WRALE_METAL_URL": url,
                "WRALE_METAL_API_KEY": DEV_KEY,
                "SSL_CERT_FILE": str(cert),
            },
        )
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["power"]["source"] == "main"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
