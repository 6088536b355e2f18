"""The dashboard end to end in the system's Chromium against a real central server with a
simulated fleet: sign in, find the hot rack in the physical view, open its hottest board,
acknowledge its alert, change its fan profile and watch the twin converge, be refused an
impossible alert rule, and see that a viewer cannot act. Every page visited is saved as a
screenshot (light and dark) for a person to look at."""

from __future__ import annotations

import time
from typing import Any

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.user.ui.browser.harness import Pages, Shots, World, live, settle, sign_in, status

pytestmark = [pytest.mark.browser, pytest.mark.slow]
TWIN_TIMEOUT_MS = 45_000


def _float(value: str | None) -> float:
    try:
        return float(value) if value not in (None, "", "None") else float("-inf")
    except ValueError:
        return float("-inf")


def confirm_if_asked(page: Any) -> None:
    """Accept the app's confirmation dialog when an action opens it."""
    dialog = page.locator("dialog#confirm[open]")
    try:
        dialog.wait_for(timeout=1_500)
    except PlaywrightTimeout:  # no confirmation for this action
        return
    page.click("#confirm-ok")


def set_field(page: Any, selector: str, value: str) -> None:
    """Fill an input or choose an option, whichever the field is."""
    tag = page.eval_on_selector(selector, "e => e.tagName.toLowerCase()")
    if tag == "select":
        page.select_option(selector, value)
    else:
        page.fill(selector, value)


# ----------------------------------------------------------------------------- 1. login


def test_login_form_refuses_a_wrong_password_then_signs_in(
    world: World, pages: Pages, shots: Shots
) -> None:
    page = pages.new()
    assert status(page.goto("/physical")) == 200
    assert "/login" in page.url, "a signed-out visitor is sent to the login page"
    shots.take(page, "login", themes=True)

    page.fill("#username", "operator")
    page.fill("#password", "not-the-password")
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_selector(".notice.error[role=alert]")
    assert "/login" in page.url
    shots.take(page, "login-refused")

    page.fill("#username", "operator")
    page.fill("#password", "operator-password-1")
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url("**/physical**")
    cookies = {c["name"]: c for c in page.context.cookies()}
    session = [c for c in cookies.values() if c["httpOnly"]]
    assert session, f"no HttpOnly session cookie: {sorted(cookies)}"
    assert all(c["sameSite"] in ("Lax", "Strict") for c in session), session
    live(page)
    shots.take(page, "signed-in")


# ----------------------------------------------------------------------------- 2-4. journey


def test_journey_hot_rack_to_board_ack_and_fan_profile(
    world: World, pages: Pages, shots: Shots
) -> None:
    page = pages.new()
    sign_in(page, "operator")

    # 2. the physical view: the hottest rack is the one we heated, and it says so
    page.goto("/physical")
    page.wait_for_selector("g.rack[data-max-temp-c]")
    settle(page)
    shots.take(page, "physical-temp", themes=True)
    racks = page.eval_on_selector_all(
        "g.rack[data-max-temp-c]",
        """gs => gs.map(g => ({id: g.dataset.rackId, name: g.dataset.rackName,
                               max: g.dataset.maxTempC, hot: g.dataset.hot}))""",
    )
    hottest = max(racks, key=lambda r: _float(r["max"]))
    assert hottest["id"] == world.hot_rack_id, (racks, world.hot_rack_name)
    assert hottest["hot"] == "true", hottest
    assert all(r["hot"] != "true" for r in racks if r["id"] != world.hot_rack_id), racks

    boards = page.eval_on_selector_all(
        f'g.rack[data-rack-id="{world.hot_rack_id}"] a.board',
        "as => as.map(a => ({id: a.dataset.deviceId, t: a.dataset.tempC}))",
    )
    assert boards, "the hot rack shows no boards"
    board = max(boards, key=lambda b: _float(b["t"]))
    rack = f'g.rack[data-rack-id="{world.hot_rack_id}"]'
    page.click(f'{rack} a.board[data-device-id="{board["id"]}"]')
    page.wait_for_url(f"**/devices/{board['id']}")
    device_id = board["id"]

    # 3. the device page: acknowledge the hot rack's alert, without a reload
    for section in ("identity", "gauges", "charts", "twin", "commands", "diagnostics"):
        assert page.locator(f"#{section}").count() == 1, f"#{section} missing"
    for section in ("events", "alerts", "audit"):
        assert page.locator(f"#{section}").count() == 1, f"#{section} missing"
    live(page)
    settle(page, 1.5)
    shots.take(page, "device", themes=True)
    page.evaluate("window.__e2e = 'same page'")
    alert = next(
        a
        for a in world.alerts(device_id=device_id, state="active")
        if a["rule_id"] == world.rule_id
    )
    row = f'#alerts tr[data-alert-id="{alert["id"]}"]'
    page.click(f'{row} button[data-action="ack"]')
    confirm_if_asked(page)
    page.wait_for_function(
        """sel => { const r = document.querySelector(sel);
                    return r && !r.querySelector('button[data-action="ack"]')
                      && /acknowledged/i.test(r.textContent); }""",
        arg=row,
        timeout=15_000,
    )
    assert page.evaluate("window.__e2e") == "same page", "the page reloaded"
    acked = world.demo.api("GET", f"/alerts/{alert['id']}")
    assert acked["state"] == "acknowledged", acked
    assert acked["acknowledged_by"], acked
    shots.take(page, "device-acked")

    # 4. change the fan profile; the twin converges through the live stream
    current = page.input_value("form#fan-profile select[name=profile]")
    wanted = "cool" if current != "cool" else "max"
    page.select_option("form#fan-profile select[name=profile]", wanted)
    t0 = time.monotonic()
    page.click("form#fan-profile button[type=submit]")
    confirm_if_asked(page)
    page.wait_for_function(
        """w => { const d = document.querySelector('tr[data-path="thermal.profile"] td.desired');
                  return d && d.textContent.includes(w); }""",
        arg=wanted,
        timeout=15_000,
    )
    shots.take(page, "twin-applied")
    page.wait_for_function(
        """w => { const r = document.querySelector('tr[data-path="thermal.profile"] td.reported');
                  const t = document.querySelector(
                    '#twin[data-twin-state], #twin [data-twin-state]');
                  return r && r.textContent.includes(w) && t
                    && t.getAttribute('data-twin-state') === 'in-sync'; }""",
        arg=wanted,
        timeout=TWIN_TIMEOUT_MS,
    )
    converged_s = time.monotonic() - t0
    assert page.evaluate("window.__e2e") == "same page", "the page reloaded"
    twin = world.demo.api("GET", f"/devices/{device_id}/twin")
    assert twin["reported"]["doc"]["thermal"]["profile"] == wanted, twin
    assert twin["desired"]["doc"]["thermal"]["profile"] == wanted, twin
    shots.take(page, "twin-in-sync", themes=True)
    print(f"twin converged {converged_s:.1f} s after Apply")


def test_physical_boards_are_coloured_by_their_temperature(
    world: World, pages: Pages, shots: Shots
) -> None:
    """A board at 70 °C or more is not drawn in the colour of one below 60 °C."""
    page = pages.new()
    sign_in(page, "viewer")
    page.goto("/physical?metric=temp")
    page.wait_for_selector("g.rack a.board")
    boards = page.eval_on_selector_all(
        "g.rack a.board",
        """as => as.map(a => ({name: a.dataset.deviceName, t: a.dataset.tempC,
                               fill: getComputedStyle(a.querySelector('rect')).fill}))""",
    )
    warm = {b["fill"] for b in boards if _float(b["t"]) >= 70}
    cool = {b["fill"] for b in boards if -100 < _float(b["t"]) < 60}
    assert warm, f"no board at 70 °C or more: {boards}"
    assert cool, f"no board below 60 °C: {boards}"
    assert not warm & cool, f"hot and cool boards share a colour: {boards}"


# ----------------------------------------------------------------------------- 5. rules


def test_rules_editor_refuses_an_impossible_threshold(
    world: World, pages: Pages, shots: Shots
) -> None:
    page = pages.new()
    sign_in(page, "operator")
    page.goto("/alerts/rules/new")
    page.wait_for_selector("form#rule-form")
    shots.take(page, "rule-new", themes=True)
    name = "e2e: impossible threshold"
    set_field(page, "#rule-form [name=name]", name)
    set_field(page, "#rule-form [name=metric]", "cpu_temp_c")
    set_field(page, "#rule-form [name=op]", ">")
    set_field(page, "#rule-form [name=threshold]", "500")
    set_field(page, "#rule-form [name=for_s]", "30s")
    set_field(page, "#rule-form [name=severity]", "WARNING")
    page.click("#rule-form button[type=submit]")
    error = page.locator("#threshold-error")
    error.wait_for(state="visible", timeout=10_000)
    assert error.inner_text().strip(), "the threshold error says nothing"
    assert page.get_attribute("#rule-form [name=threshold]", "aria-invalid") == "true"
    assert page.input_value("#rule-form [name=threshold]") == "500", "the input was lost"
    assert "/alerts/rules/new" in page.url
    shots.take(page, "rule-invalid", themes=True)

    page.goto("/alerts/rules")
    settle(page)
    shots.take(page, "rules", themes=True)
    assert name not in page.inner_text("main")
    assert not [r for r in world.demo.items("/alert-rules") if r["name"] == name]


# ----------------------------------------------------------------------------- 6. viewer

VIEWER_PAGES = [
    ("/", "overview"),
    ("/physical", "physical"),
    ("/devices", "devices"),
    ("DEVICE", "device"),
    ("/alerts", "alerts"),
    ("/alerts/rules", "rules"),
    ("/policies", "policies"),
    ("/groups", "groups"),
    ("/enrollment", "enrollment"),
]
ACTIONS = """() => ({
  actions: [...document.querySelectorAll('[data-action]')].map(e => e.outerHTML.slice(0, 160)),
  posts: [...document.querySelectorAll('form')]
    .filter(f => (f.getAttribute('method') || '').toLowerCase() === 'post'
                 && f.getAttribute('action') !== '/logout')
    .map(f => f.outerHTML.slice(0, 160)),
  htmx: [...document.querySelectorAll('[hx-post],[hx-put],[hx-patch],[hx-delete]')]
    .filter(e => !e.closest('form[action="/logout"]'))
    .map(e => e.outerHTML.slice(0, 160)),
})"""


def test_viewer_sees_nothing_to_act_with_and_is_refused(
    world: World, pages: Pages, shots: Shots
) -> None:
    # a board whose alert is still active (the journey acknowledged the hottest board's)
    alert = world.alerts(rule_id=world.rule_id, state="active")[0]
    device_id = alert["device_id"]
    page = pages.new()
    sign_in(page, "viewer")
    found: dict[str, dict[str, list[str]]] = {}
    for path, name in VIEWER_PAGES:
        path = f"/devices/{device_id}" if path == "DEVICE" else path
        code = status(page.goto(path))
        assert code == 200, f"{path}: {code}"
        settle(page)
        shots.take(page, name, themes=name in ("overview", "device"))
        seen = page.evaluate(ACTIONS)
        if any(seen.values()):
            found[path] = {k: v for k, v in seen.items() if v}
    assert not found, f"a viewer is offered actions: {found}"

    code = status(page.goto("/admin"))
    assert code == 403, f"/admin answered {code} to a viewer"
    shots.take(page, "admin-403")

    # the server refuses what the page does not offer: a forged POST with a valid token
    page.goto(f"/devices/{device_id}")
    for url in (f"/alerts/{alert['id']}/ack", f"/devices/{device_id}/alerts/{alert['id']}/ack"):
        answer = page.evaluate(
            """url => fetch(url, {method: 'POST', credentials: 'same-origin', headers: {
                 'HX-Request': 'true',
                 'X-CSRF-Token': document.querySelector('meta[name=csrf-token]').content,
               }}).then(r => r.status)""",
            url,
        )
        assert answer == 403, f"POST {url} as a viewer answered {answer}"
    assert world.demo.api("GET", f"/alerts/{alert['id']}")["state"] == "active"


# ----------------------------------------------------------------------------- 8. every page


LIGHT_ONLY = {"physical-power", "physical-fan", "physical-status", "alert", "rule-new"}


def test_pages_every_page_renders_for_an_admin(world: World, pages: Pages, shots: Shots) -> None:
    """Screenshots of every page as the admin sees it (the main ones in light and dark),
    and of three at a tablet's width."""
    device_id = world.hot_devices()[-1]
    alert = world.alerts(state="active")[0]
    page = pages.new()
    sign_in(page, "admin")
    paths = [
        ("/", "overview"),
        ("/physical?metric=temp", "physical-temp"),
        ("/physical?metric=power", "physical-power"),
        ("/physical?metric=fan", "physical-fan"),
        ("/physical?metric=status", "physical-status"),
        ("/devices", "devices"),
        (f"/devices/{device_id}", "device"),
        ("/alerts", "alerts"),
        (f"/alerts/{alert['id']}", "alert"),
        ("/alerts/rules", "rules"),
        ("/alerts/rules/new", "rule-new"),
        ("/policies", "policies"),
        ("/groups", "groups"),
        ("/enrollment", "enrollment"),
        ("/admin", "admin"),
    ]
    failed: dict[str, int] = {}
    for path, name in paths:
        code = status(page.goto(path))
        if code != 200:
            failed[path] = code
        settle(page, 1.5 if name == "device" else 0.6)
        shots.take(page, name, themes=name not in LIGHT_ONLY)
    assert not failed, f"pages that did not answer 200: {failed}"

    page.set_viewport_size({"width": 768, "height": 1024})
    wide: dict[str, int] = {}
    for path, name in [("/", "overview"), ("/physical", "physical"), ("/devices", "devices")]:
        page.goto(path)
        settle(page)
        shots.take(page, f"tablet-{name}")
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > 768:
            wide[path] = width
    print(f"pages wider than a 768 px tablet: {wide or 'none'}")
