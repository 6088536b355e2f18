"""The maintenance page and the device page's wear section in the system's Chromium against
a real central server with a simulated fleet (`wrale demo`): an operator adds a window with
the form (refused first, the field says why), sees it listed and deletes it; the queue and
the device page's wear chart show a board with a worn fan; screenshots at 1280×900 and at
tablet width (768×1024). A rule's open task shows beside the worn fan and on the device
page; an operator creates a rule with the condition builder and deletes it."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from tests.fleet.brain.wear_kit import worn_fan
from tests.user.ui.browser.harness import Pages, Shots, World, sign_in
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models.maintenance import MaintenanceRule
from wrale.fleet.brain.services.maintenance import tasks

pytestmark = [pytest.mark.browser, pytest.mark.slow]
TABLET = {"width": 768, "height": 1024}


def store_worn_fan(world: World, device_id: str, rule_id: str | None = None) -> None:
    """A worn fan's rollups in the demo's database, and an open task of the rule on the
    board if one is given, as the rules runner opens it (in a thread: the browser's sync
    API keeps this thread's event loop busy)."""

    async def run() -> None:
        db = Database(f"sqlite+aiosqlite:///{world.demo.data_dir / 'central.db'}")
        try:
            await worn_fan(db, device_id)
            if rule_id is not None:
                async with db.session() as s:
                    rule = await s.get(MaintenanceRule, rule_id)
                    assert rule is not None
                    tasks.open_task(s, rule, device_id, {"cpu_temp_c": 81.0}, time.time())
        finally:
            await db.dispose()

    t = threading.Thread(target=lambda: asyncio.run(run()))
    t.start()
    t.join(60)


def test_operator_adds_a_window_sees_it_and_deletes_it(
    world: World, pages: Pages, shots: Shots
) -> None:
    page = pages.new()
    sign_in(page, "operator")
    page.goto("/maintenance")
    page.wait_for_selector("#window-form")
    page.fill("#win-name", "e2e-nightly")
    page.fill("#win-cron", "0 2 * * *")
    page.fill("#win-duration", "abc")  # refused first: the field says why
    page.click("#window-create")
    page.wait_for_selector("#duration_min-error")
    shots.take(page, "window-refused")
    page.fill("#win-duration", "120")
    page.fill("#win-tz", "Europe/Berlin")
    page.check("#win-not_on_battery")
    page.fill("#win-battery", "30")
    page.click("#window-create")
    page.wait_for_selector("#windows-table tbody tr")
    text = page.inner_text("#windows-table")
    for shown in ("e2e-nightly", "0 2 * * *", "Europe/Berlin", "battery ≥ 30 %"):
        assert shown in text, text
    windows = world.demo.api("GET", "/maintenance/windows")
    assert [w["name"] for w in windows] == ["e2e-nightly"]
    shots.take(page, "window-listed")
    page.set_viewport_size(TABLET)
    shots.take(page, "window-listed-tablet")
    page.click('button[aria-label="Delete window e2e-nightly"]')
    page.wait_for_selector("dialog#confirm[open]")  # the app's own confirmation
    shots.take(page, "window-delete-confirm")
    page.click("#confirm-ok")
    page.wait_for_selector("p#windows-table")
    assert world.demo.api("GET", "/maintenance/windows") == []


def test_the_queue_and_the_wear_chart_of_a_worn_board(
    world: World, pages: Pages, shots: Shots
) -> None:
    device_id = sorted(world.devices)[0]
    rule = world.demo.api(
        "POST",
        "/maintenance/rules",
        json={
            "name": "e2e-hot",
            "title": "Clean the heatsink",
            "condition": {"all": [{"metric": "cpu_temp_c", "op": ">", "value": 75}]},
        },
    )
    store_worn_fan(world, device_id, rule["id"])
    page = pages.new()
    sign_in(page, "viewer")
    page.goto("/maintenance")
    row = page.locator(f'tr[data-device-id="{device_id}"][data-kind="fan_wear"]')
    row.wait_for()
    task = page.locator(f'tr.task-row[data-device-id="{device_id}"]')
    assert "Clean the heatsink" in task.inner_text()  # beside the worn fan
    assert task.locator("form").count() == 0  # a viewer gets no "Done"
    assert page.locator("#window-form").count() == 0  # a viewer gets no form
    shots.take(page, "queue", themes=True)
    page.set_viewport_size(TABLET)
    shots.take(page, "queue-tablet")
    page.set_viewport_size({"width": 1280, "height": 900})
    row.locator("a").first.click()
    page.wait_for_url(f"**/devices/{device_id}*")
    chart = page.locator('#wear .wear-chart[data-kind="fan_wear"]')
    chart.wait_for()
    assert chart.get_attribute("data-worn") == "true"
    assert chart.locator("polyline.trend").count() == 1
    assert "Replace before" in chart.inner_text()
    assert "Clean the heatsink" in page.inner_text("#wear .wear-tasks")
    page.locator("#wear").scroll_into_view_if_needed()
    shots.take(page, "device-wear")
    page.set_viewport_size(TABLET)
    shots.take(page, "device-wear-tablet")


def test_operator_creates_a_rule_with_two_conditions_and_deletes_it(
    world: World, pages: Pages, shots: Shots
) -> None:
    page = pages.new()
    sign_in(page, "operator")
    page.goto("/maintenance#rules")
    page.wait_for_selector("#rule-form")
    page.fill("#rule-name", "e2e-hot-fan")
    page.fill("#rule-c0_metric", "cpu_temp_c")
    page.select_option("#rule-c0_op", ">")
    page.fill("#rule-c0_value", "75")
    page.fill("#rule-c0_for", "soon")  # refused first: the field says why
    page.fill("#rule-c1_metric", "fan_rpm")
    page.select_option("#rule-c1_op", "<")
    page.fill("#rule-c1_value", "1500")
    page.fill("#rule-c1_for", "30m")
    page.click("#rule-create")
    page.wait_for_selector("#c0_for-error")
    shots.take(page, "rule-refused")
    page.fill("#rule-c0_for", "2h")
    page.fill("#rule-due", "3")
    page.click("#rule-create")
    # the queue's test may have left a rule of its own in this fleet: wait for this one
    page.wait_for_selector('#rules-table tbody tr:has-text("e2e-hot-fan")')
    text = page.inner_text("#rules-table")
    for shown in ("e2e-hot-fan", "cpu_temp_c > 75 for 2h AND fan_rpm < 1500 for 30m", "3 days"):
        assert shown in text, text
    (rule,) = [r for r in world.demo.api("GET", "/maintenance/rules") if r["name"] == "e2e-hot-fan"]
    assert len(rule["condition"]["all"]) == 2
    page.locator("#rules").scroll_into_view_if_needed()
    shots.take(page, "rule-listed")
    page.set_viewport_size(TABLET)
    shots.take(page, "rule-listed-tablet")
    page.click('button[aria-label="Delete rule e2e-hot-fan"]')
    page.wait_for_selector("dialog#confirm[open]")  # the app's own confirmation
    shots.take(page, "rule-delete-confirm")
    page.click("#confirm-ok")
    page.wait_for_selector('button[aria-label="Delete rule e2e-hot-fan"]', state="detached")
    assert "e2e-hot-fan" not in {r["name"] for r in world.demo.api("GET", "/maintenance/rules")}
