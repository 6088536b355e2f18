"""Issue 15's dashboard polish in the system's Chromium against the shared `wrale demo` fleet:
rack boards on the first screen (desktop 1280×900 and tablet 768×1024), the heatmap by the
metric chosen, event data rounded, one toast per tamper incident, a group page that follows
another person's edit without a reload, and the public URL in the printed commands (a
`wrale central --public-url` of its own). Screenshots go to each test's tmp dir."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.user.fleet_procs import ADMIN_PASSWORD, Proc, clean_env, wait_for
from tests.user.metald_proc import free_port
from tests.user.ui.browser.harness import Pages, World, live, settle, sign_in
from wrale.user.ui import units

pytestmark = [pytest.mark.browser, pytest.mark.slow]
DESKTOP = {"width": 1280, "height": 900}
TABLET = {"width": 768, "height": 1024}
PUBLIC = "https://fleet.example.com"


def snap(page: Any, folder: Path, name: str) -> None:
    """The first screen as it is (what a person sees before scrolling) and the whole page,
    in the screenshot folder people look at (``polish-*.png``)."""
    page.evaluate("window.scrollTo(0, 0)")
    first, whole = folder / f"polish-{name}.png", folder / f"polish-{name}-full.png"
    page.screenshot(path=str(first), animations="disabled")
    page.screenshot(path=str(whole), full_page=True, animations="disabled")


def cold_boards(world: World) -> list[dict[str, Any]]:
    hot = set(world.hot_devices())
    return sorted(
        (d for d in world.devices.values() if d["id"] not in hot), key=lambda d: d["name"]
    )


def test_rack_boards_are_on_the_first_screen(world: World, pages: Pages, screenshots: Path) -> None:
    page = pages.new()
    sign_in(page, "viewer")
    for size, name in ((DESKTOP, "desktop"), (TABLET, "tablet")):
        page.set_viewport_size(size)
        page.goto("/physical")
        page.wait_for_selector("g.rack a.board")
        settle(page)
        snap(page, screenshots, f"physical-{name}")
        rack = page.locator(f"#rack-{world.hot_rack_id}")
        size_u = re.search(r": (\d+) U,", rack.get_attribute("aria-label") or "")
        assert size_u, rack.get_attribute("aria-label")
        box = rack.locator("a.board").first.bounding_box()
        assert box is not None
        assert box["y"] + box["height"] <= size["height"], (name, box)  # no scrolling
        # the empty slots above the demo's boards (U4–U11 of 42) are one band that names
        # its true U numbers
        gap = rack.locator("g.gap").first
        assert gap.get_attribute("data-high-u") == size_u.group(1)
        low = gap.get_attribute("data-low-u")
        assert gap.locator("text").text_content() == f"U{low}–U{size_u.group(1)} empty"


def test_the_heatmap_follows_the_metric(world: World, pages: Pages, screenshots: Path) -> None:
    page = pages.new()
    sign_in(page, "viewer")
    page.set_viewport_size(DESKTOP)
    page.goto("/physical")
    page.wait_for_selector('svg.heatmap[data-metric="temp"]')
    assert "°C" in page.locator("figure.heatmap-wrap figcaption").first.inner_text()
    for key, title, unit, prefix in (
        ("power", "Power draw", "W", "p"),
        ("fan", "Fan speed", "%", "f"),
    ):
        page.click(f".metric-switch a:has-text('{title}')")
        page.wait_for_selector(f'svg.heatmap[data-metric="{key}"]')
        settle(page)
        caption = page.locator("figure.heatmap-wrap figcaption").first.inner_text()
        assert caption.startswith(f"{title} heatmap ({unit})"), caption
        legend = page.locator(".heatmap-legend").first.inner_text()
        assert unit in legend
        assert "°C" not in legend
        classes = page.eval_on_selector_all(
            "svg.heatmap rect.cell", "rs => rs.map(r => r.getAttribute('class'))"
        )
        assert any(re.search(rf"\b{prefix}\d\b", c) for c in classes), classes
        assert not any(re.search(r"\bt\d\b", c) for c in classes), classes
        snap(page, screenshots, f"heatmap-{key}")
    page.set_viewport_size(TABLET)
    snap(page, screenshots, "heatmap-fan-tablet")


def test_event_data_is_rounded_on_the_device_page(
    world: World, pages: Pages, screenshots: Path
) -> None:
    """A board of the heated rack went past 70 °C: its thermal and throttling events carry
    the temperatures as the board measured them (70.01314907491161)."""
    board = world.hot_devices()[0]
    page = pages.new()
    sign_in(page, "viewer")
    page.set_viewport_size(DESKTOP)
    page.goto(f"/devices/{board}")
    thermal = ", ".join(
        f'#events tr[data-type="{t}"]'
        for t in (
            "THERMAL_WARNING",
            "THERMAL_CRITICAL",
            "THERMAL_NORMAL",
            "THROTTLE_ON",
            "THROTTLE_OFF",
        )
    )
    row = page.locator(thermal).first
    row.wait_for(timeout=60_000)
    settle(page, 1.0)
    # both read in one step: the live stream may swap the events table in between
    shown, exact = row.locator("td code").evaluate("c => [c.innerText, c.title || '']")
    assert re.search(r'"cpu_temp_c":\d+\.\d{3,}', exact), exact  # the board's raw float …
    assert not re.search(r"\d\.\d{2,}", shown), shown  # … shown to 0.1 °C
    assert json.loads(shown) == units.round_data(json.loads(exact)), (shown, exact)
    assert re.search(r'"cpu_temp_c":\d+\.\d[,}]', shown), shown
    page.evaluate("document.querySelector('#events')?.scrollIntoView()")  # swapped or not
    page.screenshot(path=str(screenshots / "polish-device-events.png"), animations="disabled")


def test_one_toast_per_tamper_incident(world: World, pages: Pages, screenshots: Path) -> None:
    demo = world.demo
    board = cold_boards(world)[1]  # not the one test_live opens
    page = pages.new()
    sign_in(page, "operator")
    page.set_viewport_size(DESKTOP)
    page.goto("/")
    live(page)
    page.evaluate(
        """id => { window.__alerts = [];
          document.body.addEventListener('wrale-alert-raised', e => {
            if (e.detail && e.detail.device_id === id) window.__alerts.push(e.detail); }); }""",
        board["id"],
    )
    rule = demo.api(
        "POST",
        "/alert-rules",
        json={
            "name": "e2e: case opened",
            "expression": "case_open > 0",
            "severity": "CRITICAL",
            "scope_type": "device",
            "scope_id": board["id"],
        },
    )
    demo.send_to(board["id"], "sim_fault", {"fault": "case_open", "duration_s": 600})
    try:
        key = f"{board['id']}|tamper"
        page.locator(f'#toasts .toast[data-incident="{key}"]').first.wait_for(timeout=60_000)
        # the rule's alert on the same board arrives too: folded into that toast
        page.wait_for_function(
            "() => window.__alerts.some(a => a.rule_name === 'e2e: case opened')",
            timeout=60_000,
        )
        page.wait_for_timeout(1000)
        toasts = page.locator(f'#toasts .toast[data-incident="{key}"]')
        assert toasts.count() == 1
        assert int(toasts.first.get_attribute("data-count") or 0) >= 2
        about_board = page.locator(
            "#toasts .toast", has=page.locator(f'a[href="/devices/{board["id"]}"]')
        )
        assert about_board.count() == 1, about_board.all_inner_texts()
        snap(page, screenshots, "tamper-one-toast")
    finally:
        demo.send_to(board["id"], "sim_clear", {"fault": "case_open"})
        demo.api("DELETE", f"/alert-rules/{rule['id']}")


def test_a_group_page_follows_an_edit_made_elsewhere(
    world: World, pages: Pages, screenshots: Path
) -> None:
    demo = world.demo
    group = demo.api("POST", "/groups", json={"name": "e2e live group", "kind": "static"})
    board = cold_boards(world)[2]
    try:
        watcher = pages.new()
        sign_in(watcher, "viewer")
        watcher.goto(f"/groups/{group['id']}")
        live(watcher)
        watcher.evaluate("window.__e2e = 'same page'")
        assert watcher.locator("#members-count").inner_text() == "(0)"
        editor = pages.new()
        sign_in(editor, "operator")
        editor.goto(f"/groups/{group['id']}")
        editor.fill("#add-device", board["name"])
        editor.click("#add-member button[type=submit]")
        editor.locator("#members .notice.ok").wait_for()
        row = watcher.locator(f'#members-live tr[data-device-id="{board["id"]}"]')
        row.wait_for(timeout=15_000)  # the live event, well before the 30 s poll
        assert watcher.locator("#members-count").inner_text() == "(1)"
        assert watcher.evaluate("window.__e2e") == "same page"  # no reload
        snap(watcher, screenshots, "group-live")
    finally:
        demo.api("DELETE", f"/groups/{group['id']}")


def test_printed_commands_use_the_public_url(
    pages: Pages, tmp_path: Path, screenshots: Path
) -> None:
    port = free_port()
    central = Proc(
        [
            "central",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path / "data"),
            "--public-url",
            PUBLIC,
        ],
        clean_env(WRALE_ADMIN_PASSWORD=ADMIN_PASSWORD, WRALE_SECRET_KEY="k" * 40),
        tmp_path / "central.log",
    )
    central.start()
    try:
        url = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            assert central.alive(), central.output()
            try:
                return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for("central healthy", healthy, 60)
        ctx = pages.browser.new_context(base_url=url, viewport=DESKTOP)
        pages.contexts.append(ctx)
        page = ctx.new_page()
        page.goto("/login")
        page.fill("#username", "admin")
        page.fill("#password", ADMIN_PASSWORD)
        page.click("form[action='/login'] button[type=submit]")
        page.wait_for_url(lambda u: "/login" not in u)
        page.goto("/enrollment")
        page.fill("#token-name", "behind the proxy")
        page.click("#token-form button[type=submit]")
        command = page.locator("#enroll-command")
        command.wait_for()
        text = command.input_value()
        assert f"--central {PUBLIC} " in text, text
        assert "127.0.0.1" not in text
        snap(page, screenshots, "enrollment-public-url")
    finally:
        assert central.stop() == 0, central.output()[-2000:]
