"""Notifications in a real Chromium: a new critical alert and a tamper event reach whatever
page is open (a toast and the navigation's counter), and the page reconnects by itself
after the central server restarts on the same port."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.user.ui.browser.harness import Pages, Shots, World, alert_count, live, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def cold_device(world: World) -> dict[str, Any]:
    """A board outside the hot rack (its alerts are the ones this test makes)."""
    hot = set(world.hot_devices())
    return sorted(
        (d for d in world.devices.values() if d["id"] not in hot), key=lambda d: d["name"]
    )[0]


def test_live_toasts_counter_and_reconnect_after_restart(
    world: World, pages: Pages, shots: Shots
) -> None:
    demo = world.demo
    board = cold_device(world)
    page = pages.new()
    sign_in(page, "operator")
    page.goto("/")
    live(page)
    shots.take(page, "overview-live", themes=True)
    before = alert_count(page)

    # a critical alert appears: toast + counter, without reloading
    page.evaluate("window.__e2e = 'same page'")
    rule = demo.api(
        "POST",
        "/alert-rules",
        json={
            "name": "e2e: critical now",
            "expression": "cpu_temp_c > 1",
            "severity": "CRITICAL",
            "scope_type": "device",
            "scope_id": board["id"],
        },
    )
    try:
        toast = page.locator("#toasts .toast", has_text="e2e: critical now")
        toast.first.wait_for(timeout=45_000)
        page.wait_for_function(
            "n => Number(document.getElementById('alert-count').dataset.count) > n",
            arg=before,
            timeout=15_000,
        )
        assert page.locator("#alert-count").is_visible()
        shots.take(page, "critical-toast", themes=True)
    finally:
        demo.api("DELETE", f"/alert-rules/{rule['id']}")
    assert page.evaluate("window.__e2e") == "same page"

    # the central server goes away: the page notices …
    t0 = time.monotonic()
    demo.stop()
    page.wait_for_selector('#live-state:not([data-state="open"])', timeout=20_000)
    shots.take(page, "server-down")
    # … and when it is back on the same port, reconnects by itself
    world.restart()
    live(page, timeout_s=60)
    reconnected_s = time.monotonic() - t0
    assert page.evaluate("window.__e2e") in ("same page", None)  # reconnected, maybe reloaded

    # a later event still arrives: opening a board's case is a tamper event
    demo.send_to(board["id"], "sim_fault", {"fault": "case_open", "duration_s": 600})
    try:
        tamper = page.locator("#toasts .toast", has_text="case opened")
        tamper.first.wait_for(timeout=45_000)
        shots.take(page, "tamper-toast", themes=True)
    finally:
        demo.send_to(board["id"], "sim_clear", {"fault": "case_open"})
    print(f"reconnected {reconnected_s:.1f} s after the server stopped")
