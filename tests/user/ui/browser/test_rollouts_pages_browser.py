"""The rollouts pages in the system's Chromium against a real central server with a
simulated fleet (`wrale demo`, its brain loops running): an operator previews a rollout
of a harmless command over the whole site (one board per rack first, the waves shown
rack by rack, nothing created), narrows it to the cool rack and creates it, watches its
first wave observed and passed on the detail page (refreshed without a reload), pauses
and resumes it, sees its boards by wave and state on the physical view, and aborts it
through the app's confirmation dialog; a viewer gets neither the form nor the buttons.
Screenshots at desktop and tablet width."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.user.ui.browser.harness import Pages, Shots, World, settle, sign_in
from tests.user.ui.browser.test_dashboard_e2e import confirm_if_asked

pytestmark = [pytest.mark.browser, pytest.mark.slow]
TABLET = {"width": 820, "height": 1180}
DESKTOP = {"width": 1280, "height": 800}


def no_toasts(page: Any) -> None:
    """Dismiss the alert toasts of the heated rack: they would cover the gate's values."""
    page.evaluate("document.querySelectorAll('#toasts .toast').forEach(t => t.remove())")


def api_rollout(world: World, rollout_id: str) -> dict[str, Any]:
    got: dict[str, Any] = world.demo.api("GET", f"/rollouts/{rollout_id}")
    return got


def cool_rack(world: World) -> str:
    return next(rid for rid in sorted(world.racks) if rid != world.hot_rack_id)


def site_of(world: World) -> str:
    sites = world.demo.items("/sites")
    assert len(sites) == 1, sites
    return str(sites[0]["id"])


def test_operator_previews_creates_pauses_and_aborts_a_rollout(
    world: World, pages: Pages, shots: Shots
) -> None:
    page = pages.new()
    sign_in(page, "operator")
    page.goto("/rollouts")
    page.click("#rollout-new")
    page.wait_for_url("**/rollouts/new")
    page.fill("#ro-name", "e2e light load")
    page.check("#change-command")
    page.select_option("#ro-op", "sim_load")
    page.fill("#ro-args", '{"percent": 20}')
    page.fill("#ro-waves", "1/rack, 100%")
    page.fill("#ro-observe_s", "abc")  # refused first: the field says why
    page.click("#rollout-preview-btn")
    page.wait_for_selector("#observe_s-error")
    page.fill("#ro-observe_s", "20")
    page.fill("#ro-max_temp_rise_c", "30")
    page.select_option("#ro-site_id", site_of(world))
    page.click("#rollout-preview-btn")
    page.wait_for_selector("#rollout-preview")
    preview = page.locator("#rollout-preview")
    assert preview.get_attribute("data-boards") == str(len(world.devices))
    first = page.locator('li.wave-preview[data-wave="0"]')
    assert first.get_attribute("data-boards") == str(len(world.racks))  # one per rack
    racks = first.locator("tr[data-rack-id]").evaluate_all("rs => rs.map(r => r.dataset.rackId)")
    assert sorted(racks) == sorted(world.racks), racks
    assert world.demo.api("GET", "/rollouts")["items"] == []  # a preview creates nothing
    settle(page)
    no_toasts(page)
    shots.take(page, "preview-site", themes=True)
    page.set_viewport_size(TABLET)
    shots.take(page, "preview-site-tablet")
    page.set_viewport_size(DESKTOP)

    cool = cool_rack(world)
    page.select_option("#ro-site_id", "")
    page.select_option("#ro-rack_id", cool)
    page.fill("#ro-waves", "1, 50%, 100%")
    page.click("#rollout-preview-btn")
    page.wait_for_selector('#rollout-preview li.wave-preview[data-wave="2"]')
    sizes = page.eval_on_selector_all("li.wave-preview", "ls => ls.map(l => l.dataset.boards)")
    n = sum(1 for d in world.devices.values() if (d.get("location") or {}).get("rack_id") == cool)
    assert sum(int(s) for s in sizes) == n, sizes
    page.click("#rollout-create")
    page.wait_for_url(re.compile(r"/rollouts/[0-9a-f]{32}$"))
    rollout_id = page.url.rstrip("/").rsplit("/", 1)[1]
    got = api_rollout(world, rollout_id)
    assert got["change"]["op"] == "sim_load"
    assert got["selector"] == {"rack_id": cool}
    assert len(got["waves"]) == len(sizes)

    page.wait_for_selector('article.wave[data-wave="0"][data-state="observing"]', timeout=60_000)
    page.evaluate("window.__e2e = 'same page'")
    page.wait_for_selector('article.wave[data-wave="0"] p.observing')
    assert page.evaluate("window.__e2e") == "same page"  # refreshed without a reload
    page.click("#rollout-pause")
    page.wait_for_selector("#rollout-resume")
    assert api_rollout(world, rollout_id)["state"] == "paused"
    assert page.get_attribute("#rollout-state", "data-state") == "paused"
    shots.take(page, "rollout-paused")
    page.click("#rollout-resume")
    page.wait_for_selector("#rollout-pause")
    assert api_rollout(world, rollout_id)["state"] == "running"

    page.wait_for_selector('article.wave[data-wave="0"][data-state="passed"]', timeout=120_000)
    gate = page.locator('article.wave[data-wave="0"] .gate')
    assert gate.get_attribute("data-passed") == "true"
    assert gate.locator('tr[data-measure="temp_rise_c"] td').count() == 2  # measured, limit
    settle(page)
    no_toasts(page)
    shots.take(page, "rollout-wave-passed", themes=True)
    page.set_viewport_size(TABLET)
    shots.take(page, "rollout-wave-passed-tablet")
    page.set_viewport_size(DESKTOP)

    page.click("#rollout-physical")  # its boards on the physical view, by wave and state
    page.wait_for_url(f"**/physical?rollout={rollout_id}")
    page.wait_for_selector('a.board.wave-on[data-wave="1"][data-state="passed"]')
    marked = page.eval_on_selector_all(
        "a.board.wave-on", "bs => bs.map(b => [b.dataset.deviceId, b.dataset.wave])"
    )
    by_wave = {d: str(w["index"] + 1) for w in got["waves"] for d in w["devices"]}
    assert dict(marked) == by_wave
    assert page.locator("#rollout-shown").get_attribute("data-boards") == str(len(by_wave))
    settle(page)
    no_toasts(page)
    shots.take(page, "physical-rollout", themes=True)
    page.goto(f"/rollouts/{rollout_id}")
    page.wait_for_selector("#rollout-abort")

    state = api_rollout(world, rollout_id)["state"]
    assert state == "running", state  # 20 s per wave: not finished yet
    page.click("#rollout-abort")
    confirm_if_asked(page)
    page.wait_for_selector('#rollout-state[data-state="aborted"]')
    got = api_rollout(world, rollout_id)
    assert got["state"] == "aborted"
    assert "aborted by operator" in (got["reason"] or "")
    assert page.locator("#rollout-abort").count() == 0
    settle(page)
    shots.take(page, "rollout-aborted")

    page.goto("/rollouts")
    row = page.locator(f'tr[data-rollout-id="{rollout_id}"]')
    assert row.get_attribute("data-state") == "aborted"
    assert int(row.get_attribute("data-passed") or 0) >= 1
    shots.take(page, "rollouts-list")

    viewer = pages.new()
    sign_in(viewer, "viewer")
    viewer.goto("/rollouts")
    viewer.wait_for_selector(f'tr[data-rollout-id="{rollout_id}"]')
    assert viewer.locator("#rollout-new").count() == 0
    viewer.goto(f"/rollouts/{rollout_id}")
    viewer.wait_for_selector("#rollout-live")
    assert viewer.locator("#rollout-actions form").count() == 0
