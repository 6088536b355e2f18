"""The jobs and decisions pages in the system's Chromium against a real central server with
a simulated fleet (`wrale demo`, its brain loops running): an operator creates a job with
the form, sees its placements, finds its boards marked on the physical view and watches
the marks go when the job stops (live, without a reload); the decision log's rows and
filters; a loop paused and resumed with its switch; the capping mark on the heated rack's
power bar; and a viewer who gets neither the form nor the buttons."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.user.ui.browser.harness import Pages, Shots, World, live, settle, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def api_job(world: World, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = world.demo.api("GET", f"/jobs/{job_id}")
    return job


def on_boards(job: dict[str, Any]) -> set[str]:
    active = ("starting", "running", "moving")
    return {p["device_id"] for p in job["placements"] if p["state"] in active and p["device_id"]}


def marked(page: Any) -> set[str]:
    return set(page.eval_on_selector_all("a.board.job-on", "as => as.map(a => a.dataset.deviceId)"))


def test_operator_creates_a_job_sees_its_placements_and_its_boards_live(
    world: World, pages: Pages, shots: Shots
) -> None:
    page = pages.new()
    sign_in(page, "operator")
    page.goto("/jobs")
    page.wait_for_selector("#job-form")
    page.fill("#job-name", "e2e-render")
    page.check("#kind-sim_load")
    page.fill("#job-cpu", "20")
    page.fill("#job-replicas", "two")  # refused first: the field says why
    page.click("#job-create")
    page.wait_for_selector("#replicas-error")
    assert "/jobs" in page.url
    shots.take(page, "form-refused")
    page.fill("#job-replicas", "2")
    page.select_option("#job-strategy", "spread")
    page.click("#job-create")
    page.wait_for_url("**/jobs/*")
    job_id = page.url.rstrip("/").rsplit("/", 1)[1]
    page.wait_for_selector("#placements-table tbody tr")
    rows = page.eval_on_selector_all(
        "#placements-table tbody tr",
        "trs => trs.map(t => ({state: t.dataset.state, device: t.dataset.deviceId}))",
    )
    assert len(rows) == 2, rows
    job = api_job(world, job_id)
    assert {r["device"] for r in rows if r["device"]} == {
        p["device_id"] for p in job["placements"] if p["device_id"]
    }
    names = {world.devices[d]["name"] for d in on_boards(job)}
    text = page.inner_text("#placements-table")
    assert all(n in text for n in names), (names, text)
    live(page)
    # a board starts the load and says so: the page follows without a reload (not "every
    # replica": the capping loop may cut a replica's quota to 0 %, which the board refuses)
    page.wait_for_selector('#placements-table tbody tr[data-state="running"]', timeout=60_000)
    page.click("details.history summary")
    shots.take(page, "job-detail", themes=True)

    page.goto("/jobs")
    row = page.locator(f'tr[data-job-id="{job_id}"]')
    assert row.get_attribute("data-placed") == str(len(on_boards(api_job(world, job_id))))
    assert row.get_attribute("data-replicas") == "2"
    shots.take(page, "jobs-list")

    page.goto(f"/jobs/{job_id}")
    page.click("#job-on-physical")
    page.wait_for_url(f"**/physical?job={job_id}")
    page.wait_for_selector("a.board.job-on")
    placed = on_boards(api_job(world, job_id))
    assert marked(page) == placed
    assert page.locator("#job-shown").get_attribute("data-boards") == str(len(placed))
    live(page)
    settle(page)
    shots.take(page, "physical-job", themes=True)

    page.evaluate("window.__e2e = 'same page'")
    world.demo.api("DELETE", f"/jobs/{job_id}")  # its boards stop it: the marks go
    page.wait_for_function(
        "() => document.querySelectorAll('a.board.job-on').length === 0", timeout=60_000
    )
    assert page.evaluate("window.__e2e") == "same page"
    shots.take(page, "physical-job-stopped")


def test_decision_log_rows_filters_and_pause_switch(
    world: World, pages: Pages, shots: Shots
) -> None:
    demo = world.demo
    job = demo.api(
        "POST",
        "/jobs",
        json={"name": "e2e-log", "workload": {"kind": "sim_load", "cpu_pct": 10}, "replicas": 1},
    )
    try:
        page = pages.new()
        sign_in(page, "operator")
        page.goto("/decisions")
        page.wait_for_selector("#decisions-table tbody tr")
        loops = page.eval_on_selector_all(
            "#decisions-table tbody tr", "ts => ts.map(t => t.dataset.loop)"
        )
        assert "placement" in loops, loops
        page.click("#decisions-table tbody tr details.inputs summary")
        assert page.locator("#decisions-table details.inputs[open] pre").first.is_visible()
        shots.take(page, "decisions", themes=True)

        page.select_option("#f-loop", "placement")
        page.click("#decision-filters button[type=submit]")
        page.wait_for_url("**/decisions?loop=placement**")
        loops = page.eval_on_selector_all(
            "#decisions-table tbody tr", "ts => ts.map(t => t.dataset.loop)"
        )
        assert set(loops) == {"placement"}, loops
        page.click(f'#decisions-table a[data-subject="{job["id"]}"]')
        page.wait_for_url(f"**subject={job['id']}**")
        actions = page.eval_on_selector_all(
            "#decisions-table tbody tr", "ts => ts.map(t => t.dataset.action)"
        )
        assert "place" in actions, actions
        shots.take(page, "decisions-filtered")

        switch = 'tr[data-loop="balancing"][data-site="*"]'
        assert page.get_attribute(switch, "data-paused") == "false"
        page.click(f"{switch} button.pause-switch")
        page.wait_for_selector(f'{switch}[data-paused="true"]')
        paused = next(x for x in demo.api("GET", "/decisions/loops") if x["loop"] == "balancing")
        assert [p["site_id"] for p in paused["paused"]] == [None]
        shots.take(page, "loop-paused")
        page.click(f"{switch} button.pause-switch")
        page.wait_for_selector(f'{switch}[data-paused="false"]')
    finally:
        demo.api("PUT", "/decisions/loops/balancing", json={"paused": False, "site_id": None})
        demo.api("DELETE", f"/jobs/{job['id']}")
    resumed = next(x for x in demo.api("GET", "/decisions/loops") if x["loop"] == "balancing")
    assert resumed["paused"] == []


def test_capping_mark_on_the_heated_rack(world: World, pages: Pages, shots: Shots) -> None:
    """The heated rack runs flat out, over its budget: the capping loop caps its boards'
    clocks, and its power bar says so."""
    page = pages.new()
    sign_in(page, "viewer")
    bar = f'g.rack[data-rack-id="{world.hot_rack_id}"] g.power-bar'
    deadline = time.monotonic() + 120
    while True:
        page.goto(f"/physical?rack={world.hot_rack_id}")
        page.wait_for_selector(bar)
        if page.get_attribute(bar, "data-capped") == "true":
            break
        assert time.monotonic() < deadline, "the heated rack was never capped"
        page.wait_for_timeout(3000)
    assert int(page.get_attribute(bar, "data-capped-boards") or 0) >= 1
    assert "capped:" in (page.text_content(f"{bar} text.bar-cap") or "")
    settle(page)
    shots.take(page, "physical-capped", themes=True)
    page.goto(f"/decisions?loop=capping&subject={world.hot_rack_id}")
    page.wait_for_selector("#decisions-table tbody tr")
    assert page.locator("#decisions-table tbody tr").count() >= 1


def test_viewer_gets_neither_the_form_nor_the_buttons(
    world: World, pages: Pages, shots: Shots
) -> None:
    job = world.demo.api(
        "POST",
        "/jobs",
        json={"name": "e2e-view", "workload": {"kind": "sim_load", "cpu_pct": 5}, "replicas": 1},
    )
    try:
        page = pages.new()
        sign_in(page, "viewer")
        page.goto("/jobs")
        page.wait_for_selector(f'tr[data-job-id="{job["id"]}"]')
        assert page.locator("#job-form").count() == 0
        page.goto(f"/jobs/{job['id']}")
        assert page.locator("#job-stop").count() == 0
        page.goto("/decisions")
        assert page.locator("button.pause-switch").count() == 0
        assert page.locator("button.rec-accept").count() == 0
        shots.take(page, "viewer-decisions")
    finally:
        world.demo.api("DELETE", f"/jobs/{job['id']}")
