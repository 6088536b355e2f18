"""``wrale metal sim job-load``: sets a simulated board's job load through a real metald
(``PUT /v1/sim/job_load``), leaving its background load alone; out of range is refused
before any request."""

from __future__ import annotations

from typing import Any

from typer.testing import CliRunner

from tests.user.metald_proc import DEV_KEY, Metald
from wrale.user.cli.app import app


def sim(metald: Metald) -> dict[str, Any]:
    with metald.client() as http:
        r = http.get("/v1/sim")
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def test_job_load_sets_the_job_load_and_takes_it_off(metald: Metald) -> None:
    runner = CliRunner()
    env = {"WRALE_METAL_URL": metald.url, "WRALE_METAL_API_KEY": DEV_KEY}
    background = sim(metald)["load_pct"]

    result = runner.invoke(app, ["metal", "sim", "job-load", "35"], env=env)
    assert result.exit_code == 0, result.output
    assert "job load set to 35 %" in result.output
    now = sim(metald)
    assert now["job_load_pct"] == 35.0
    assert now["load_pct"] == background
    assert now["total_load_pct"] == min(100.0, background + 35.0)

    result = runner.invoke(app, ["metal", "sim", "job-load", "0"], env=env)
    assert result.exit_code == 0, result.output
    assert sim(metald)["job_load_pct"] == 0.0


def test_job_load_out_of_range_is_refused(metald: Metald) -> None:
    runner = CliRunner()
    env = {"WRALE_METAL_URL": metald.url, "WRALE_METAL_API_KEY": DEV_KEY}
    for bad in ("150", "-5"):
        result = runner.invoke(app, ["metal", "sim", "job-load", "--", bad], env=env)
        assert result.exit_code == 2, result.output
        assert "Invalid value for 'percent'" in result.output, result.output
    assert sim(metald)["job_load_pct"] == 0.0


def test_job_load_with_a_wrong_key_fails_with_the_error(metald: Metald) -> None:
    env = {"WRALE_METAL_URL": metald.url, "WRALE_METAL_API_KEY": "nope"}
    result = CliRunner().invoke(app, ["metal", "sim", "job-load", "20"], env=env)
    assert result.exit_code == 1
    assert "error" in result.output
    assert sim(metald)["job_load_pct"] == 0.0
