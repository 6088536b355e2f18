"""The policy pages without a browser: the list by kind and scope, the per-kind forms (units,
defaults, field errors at 422 with nothing saved or lost), versions, a device's effective
policy with the source of every value, and what viewers and operators may do."""

from __future__ import annotations

import itertools
import re
from typing import Any

from tests.conftest import Central
from tests.user.ui.conftest import Browser, SignIn

API = "/api/v1"
_num = itertools.count(900_000)


async def tenant_of(c: Central) -> str:
    return str((await c.http.get(f"{API}/auth/me", headers=c.admin)).json()["tenant_id"])


async def make_device(c: Central, name: str, **fields: Any) -> str:
    """A device row made directly in the database (the registry API is another area)."""
    from wrale.fleet.brain.models import Device

    tenant_id = await tenant_of(c)
    async with c.db.session() as s:
        d = Device(tenant_id=tenant_id, num=next(_num), name=name, **fields)
        s.add(d)
        await s.flush()
        return d.id


async def api(c: Central, method: str, path: str, body: Any = None, status: int = 200) -> Any:
    r = await c.http.request(method, f"{API}{path}", headers=c.admin, json=body)
    assert r.status_code == status, r.text
    return r.json() if r.content else None


async def policies_of(c: Central, **params: str) -> list[dict[str, Any]]:
    r = await c.http.get(f"{API}/policies", headers=c.admin, params=params)
    return list(r.json()["items"])


def field_input(html: str, name: str) -> str:
    m = re.search(rf'<(?:input|select)[^>]*\bname="{name}"[^>]*>', html)
    assert m, name
    return m.group(0)


def no_actions(html: str) -> None:
    """What a viewer may see: no action hooks, no form posting anything but sign-out."""
    assert "data-action" not in html
    assert "hx-post" not in html
    posts = re.findall(r'<form[^>]*method="post"[^>]*>', html)
    assert all('action="/logout"' in f for f in posts), posts


async def test_the_list_shows_policies_by_kind_and_scope(
    central: Central, admin_ui: Browser
) -> None:
    dev = await make_device(central, "pi-list")
    group = await api(central, "POST", "/groups", {"name": "racks-a"}, 201)
    await api(
        central,
        "POST",
        "/policies",
        {"scope_type": "fleet", "kind": "thermal", "document": {"profile": "quiet"}},
        201,
    )
    await api(
        central,
        "POST",
        "/policies",
        {"scope_type": "group", "scope_id": group["id"], "kind": "power", "document": {}},
        201,
    )
    await api(
        central,
        "POST",
        "/policies",
        {
            "scope_type": "device",
            "scope_id": dev,
            "kind": "security",
            "document": {"level": "high"},
        },
        201,
    )
    r = await admin_ui.page("/policies")
    assert r.status_code == 200, r.text
    assert r.text.count("<tr data-policy-id=") == 3
    assert "Fan profile quiet" in r.text
    assert 'href="/groups/' + group["id"] + '">racks-a</a>' in r.text
    assert 'href="/devices/' + dev + '">pi-list</a>' in r.text
    assert "New thermal policy" in r.text
    r = await admin_ui.page("/policies", kind="security", scope="device")
    assert r.text.count("<tr data-policy-id=") == 1
    r = await admin_ui.page("/policies", kind="nonsense", page="x")
    assert r.status_code == 200


async def test_each_kind_has_a_form_with_units_and_defaults(admin_ui: Browser) -> None:
    r = await admin_ui.page("/policies/new", kind="thermal")
    assert r.status_code == 200, r.text
    html = r.text
    assert 'placeholder="70"' in field_input(html, "cpu_warning_c")
    assert 'CPU warning <span class="unit">(°C)</span>' in html
    assert 'placeholder="50:75, 60:125, 67.5:175, 75:250"' in field_input(html, "curve")
    profile = html[
        html.index('name="profile"') : html.index("</select>", html.index('name="profile"'))
    ]
    assert "inherit (default: balance)" in profile
    assert all(f'value="{p}"' in profile for p in ("quiet", "balance", "cool", "max"))
    assert 'placeholder="0"' in field_input(html, "min_fan_pct")
    r = await admin_ui.page("/policies/new", kind="power")
    assert 'placeholder="20"' in field_input(r.text, "low_battery_pct")
    assert 'Low battery <span class="unit">(%)</span>' in r.text
    r = await admin_ui.page("/policies/new", kind="security")
    assert "quiet_hours" in r.text
    assert "inherit (default: medium)" in r.text
    assert "inherit (default: yes)" in r.text  # armed
    r = await admin_ui.page("/policies/new", kind="sampling")
    assert 'placeholder="10"' in field_input(r.text, "report_interval_s")


async def test_admins_create_policies_on_fleet_group_and_device(
    central: Central, admin_ui: Browser
) -> None:
    dev = await make_device(central, "pi-form-1")
    await make_device(central, "pi-form-2")
    group = await api(central, "POST", "/groups", {"name": "lab"}, 201)
    await api(central, "POST", f"/groups/{group['id']}/members", {"device_ids": [dev]})
    twin = await api(central, "GET", f"/devices/{dev}/twin")
    before = twin["desired"]["version"]

    await admin_ui.page("/policies/new")
    r = await admin_ui.post(
        "/policies",
        {"kind": "thermal", "scope_type": "fleet", "profile": "cool", "cpu_warning_c": "68"},
    )
    assert r.status_code == 200, r.text
    fleet_id = r.headers["HX-Redirect"].removeprefix("/policies/")
    r = await admin_ui.post(
        "/policies",
        {
            "kind": "thermal",
            "scope_type": "group",
            "group_id": group["id"],
            "min_fan_pct": "25",
            "curve": "45:60, 55:120, 70:255",
        },
    )
    assert r.status_code == 200, r.text
    r = await admin_ui.post(
        "/policies",
        {
            "kind": "security",
            "scope_type": "device",
            "device": "pi-form-1",
            "armed": "no",
            "quiet_hours": "22:00-06:00",
            "rapid_transitions": "8",
        },
        htmx=False,
    )
    assert r.status_code == 303, r.text
    assert r.headers["location"].startswith("/policies/")

    docs = {(p["scope_type"], p["kind"]): p for p in await policies_of(central)}
    assert docs[("fleet", "thermal")]["document"] == {"profile": "cool", "cpu_warning_c": 68.0}
    assert docs[("fleet", "thermal")]["id"] == fleet_id
    assert docs[("group", "thermal")]["document"]["curve"] == [
        {"temp_c": 45.0, "pwm": 60},
        {"temp_c": 55.0, "pwm": 120},
        {"temp_c": 70.0, "pwm": 255},
    ]
    assert docs[("device", "security")]["document"] == {
        "armed": False,
        "rapid_transitions": 8,
        "quiet_hours": "22:00-06:00",
    }
    assert docs[("device", "security")]["scope_id"] == dev
    twin = await api(central, "GET", f"/devices/{dev}/twin")  # the twins were recomposed
    assert twin["desired"]["version"] > before
    assert twin["desired"]["doc"]["thermal"]["min_fan_pct"] == 25
    assert twin["desired"]["doc"]["security"]["armed"] is False

    # a second fleet thermal policy: the clash is explained with a link, values kept
    r = await admin_ui.post(
        "/policies", {"kind": "thermal", "scope_type": "fleet", "hysteresis_c": "3"}
    )
    assert r.status_code == 422
    assert f'href="/policies/{fleet_id}"' in r.text
    assert 'value="3"' in field_input(r.text, "hysteresis_c")


async def test_invalid_values_are_shown_at_their_fields_and_nothing_is_saved(
    central: Central, admin_ui: Browser
) -> None:
    await admin_ui.page("/policies/new")
    typed = {
        "kind": "thermal",
        "scope_type": "fleet",
        "cpu_warning_c": "500",
        "min_fan_pct": "lots",
        "curve": "60:100, 50:80",
        "profile": "cool",
    }
    r = await admin_ui.post("/policies", typed)
    assert r.status_code == 422
    html = r.text
    assert html.startswith('<form id="policy-form"')  # the fragment htmx swaps in
    assert re.search(r'<p class="field-error" id="cpu_warning_c-error" role="alert">[^<]*120', html)
    assert 'id="min_fan_pct-error"' in html
    assert "must rise" in html
    cpu = field_input(html, "cpu_warning_c")
    assert 'aria-invalid="true"' in cpu
    assert "cpu_warning_c-error" in cpu
    assert 'value="500"' in cpu  # nothing typed is lost
    assert 'value="lots"' in field_input(html, "min_fan_pct")
    assert '<option value="cool" selected>' in html
    assert await policies_of(central) == []

    # a plain form post answers the whole page, also 422
    r = await admin_ui.post("/policies", typed, htmx=False)
    assert r.status_code == 422
    assert "<h1>New thermal policy</h1>" in r.text
    r = await admin_ui.post("/policies", {"kind": "security", "quiet_hours": "25:00-06:00"})
    assert r.status_code == 422
    assert 'id="quiet_hours-error"' in r.text
    r = await admin_ui.post("/policies", {"kind": "power", "scope_type": "device", "device": "x"})
    assert r.status_code == 422
    assert 'id="scope-error"' in r.text
    assert "no device named" in r.text
    r = await admin_ui.post("/policies", {"kind": "power", "scope_type": "group"})
    assert 'id="scope-error"' in r.text
    # NUL characters (PostgreSQL refuses them) are a field error, never a 5xx
    r = await admin_ui.post(
        "/policies",
        {"kind": "security", "scope_type": "group", "group_id": "a\x00", "quiet_hours": "\x00"},
    )
    assert r.status_code == 422
    assert 'id="scope-error"' in r.text
    assert 'id="quiet_hours-error"' in r.text
    assert await policies_of(central) == []
    r = await admin_ui.post("/policies", {"kind": "warp-drive"})
    assert r.status_code == 422  # a toast; never a 5xx


async def test_editing_makes_versions_and_a_stale_edit_loses_nothing(
    central: Central, admin_ui: Browser
) -> None:
    pol = await api(
        central,
        "POST",
        "/policies",
        {"scope_type": "fleet", "kind": "power", "document": {"low_battery_pct": 30}},
        201,
    )
    url = f"/policies/{pol['id']}"
    r = await admin_ui.page(url)
    assert r.status_code == 200, r.text
    assert 'value="30"' in field_input(r.text, "low_battery_pct")
    assert 'name="expected_version" value="1"' in r.text
    r = await admin_ui.post(
        url, {"expected_version": "1", "low_battery_pct": "35", "critical_battery_pct": "12"}
    )
    assert r.headers["HX-Redirect"] == url
    r = await admin_ui.post(url, {"expected_version": "2", "low_battery_pct": "-4"})
    assert r.status_code == 422
    assert 'id="low_battery_pct-error"' in r.text
    assert "at least 0 %" in r.text
    r = await admin_ui.post(url, {"expected_version": "2", "window_s": "1"}, htmx=False)
    assert r.status_code == 422
    assert 'id="window_s-error"' in r.text
    assert 'id="versions"' in r.text  # the whole page again
    saved = await api(central, "GET", f"/policies/{pol['id']}")
    assert saved["version"] == 2
    assert saved["document"] == {"low_battery_pct": 35.0, "critical_battery_pct": 12.0}

    # someone else saves version 3 meanwhile: this edit is refused, kept, and can be resaved
    await api(central, "PUT", f"/policies/{pol['id']}", {"document": {"window_s": 30}})
    r = await admin_ui.post(url, {"expected_version": "2", "low_battery_pct": "40"})
    assert r.status_code == 422
    assert "someone changed this policy" in r.text
    assert 'value="40"' in field_input(r.text, "low_battery_pct")
    assert 'name="expected_version" value="3"' in r.text
    assert (await api(central, "GET", f"/policies/{pol['id']}"))["version"] == 3

    r = await admin_ui.page(url)
    versions = re.findall(r'<tr data-version="(\d+)">', r.text)
    assert versions == ["3", "2", "1"]
    assert "Low battery → 35 %" in r.text
    assert "Low battery: now inherited" in r.text  # version 3 dropped it
    assert r.text.count("<td>admin</td>") == 3  # who saved each version
    assert 'data-action="delete-policy"' in r.text
    assert 'Version <strong id="policy-version">3</strong>' in r.text


async def test_an_inconsistent_document_is_flagged_and_a_policy_can_be_deleted(
    central: Central, admin_ui: Browser
) -> None:
    await make_device(central, "pi-del")
    pol = await api(
        central,
        "POST",
        "/policies",
        {"scope_type": "fleet", "kind": "thermal", "document": {"cpu_warning_c": 90}},
        201,
    )
    r = await admin_ui.page(f"/policies/{pol['id']}")
    assert "need cpu_warning_c &lt; cpu_critical_c" in r.text
    assert 'hx-confirm="Delete the thermal policy of the whole fleet (version 1)? Its 1 device' in (
        r.text
    )
    r = await admin_ui.post(f"/policies/{pol['id']}/delete")
    assert r.headers["HX-Redirect"] == "/policies"
    assert await policies_of(central) == []
    r = await admin_ui.page(f"/policies/{pol['id']}")
    assert r.status_code == 404


async def test_the_effective_policy_says_where_each_value_comes_from(
    central: Central, admin_ui: Browser
) -> None:
    dev = await make_device(central, "edge-kiosk-7", tags=["kiosk"])
    await make_device(central, "edge-kiosk-8")
    parent = await api(central, "POST", "/groups", {"name": "kiosks"}, 201)
    child = await api(
        central,
        "POST",
        "/groups",
        {"name": "tagged", "kind": "dynamic", "selector": {"tags_all": ["kiosk"]}},
        201,
    )
    await api(central, "PATCH", f"/groups/{child['id']}", {"parent_id": parent["id"]})
    fleet = await api(
        central,
        "POST",
        "/policies",
        {"scope_type": "fleet", "kind": "thermal", "document": {"profile": "quiet"}},
        201,
    )
    group_pol = await api(
        central,
        "POST",
        "/policies",
        {
            "scope_type": "group",
            "scope_id": child["id"],
            "kind": "thermal",
            "document": {"cpu_warning_c": 65, "profile": "cool"},
        },
        201,
    )
    own = await api(
        central,
        "POST",
        "/policies",
        {
            "scope_type": "device",
            "scope_id": dev,
            "kind": "thermal",
            "document": {"min_fan_pct": 30},
        },
        201,
    )
    r = await admin_ui.page("/policies/effective", device="edge-kiosk-7")
    assert r.status_code == 200, r.text
    html = r.text

    def row(path: str) -> str:
        m = re.search(rf'<tr data-path="{re.escape(path)}"[^>]*>.*?</tr>', html, re.S)
        assert m, path
        return m.group(0)

    assert 'data-source="group"' in row("thermal.profile")
    assert "cool" in row("thermal.profile")
    assert f'href="/policies/{group_pol["id"]}">group “tagged” · v1' in row("thermal.profile")
    assert 'data-source="group"' in row("thermal.cpu_warning_c")
    assert "65 °C" in row("thermal.cpu_warning_c")
    assert 'data-source="device"' in row("thermal.min_fan_pct")
    assert f'href="/policies/{own["id"]}"' in row("thermal.min_fan_pct")
    assert 'data-source="default"' in row("thermal.hysteresis_c")
    assert 'data-source="default"' in row("power.low_battery_pct")
    assert 'data-source="default"' in row("sampling.interval_s")
    # the chain: fleet, then the parent group, then the child, then the device
    chain = re.search(r'<ol class="chain">.*?</ol>', html, re.S)
    assert chain
    assert chain.group(0).index("kiosks") < chain.group(0).index("tagged")
    assert f'href="/policies/{own["id"]}">Edit this device' in html
    assert f"/policies/new?kind=power&amp;scope_type=device&amp;scope_id={dev}" in html

    # a device whose values come from the fleet
    r = await admin_ui.page("/policies/effective", device="edge-kiosk-8")
    assert f'href="/policies/{fleet["id"]}">fleet policy · v1' in r.text
    # the picker: part of a name lists the candidates, an unknown one says so
    r = await admin_ui.page("/policies/effective", device="kiosk")
    assert "2 devices match" in r.text
    assert f'href="/policies/effective?device={dev}"' in r.text
    r = await admin_ui.page("/policies/effective", device="nothing-here")
    assert r.status_code == 200
    assert "No device matches" in r.text
    r = await admin_ui.page("/policies/effective", device="nul\x00")
    assert r.status_code < 500
    r = await admin_ui.fragment("/policies/_devices", device="KIOSK-7")
    assert '<option value="edge-kiosk-7">' in r.text


async def test_viewers_and_operators_see_policies_but_cannot_change_them(
    central: Central, ui_as: SignIn
) -> None:
    dev = await make_device(central, "pi-ro")
    pol = await api(
        central,
        "POST",
        "/policies",
        {"scope_type": "device", "scope_id": dev, "kind": "power", "document": {}},
        201,
    )
    for role in ("viewer", "operator"):
        b = await ui_as(role)
        for path in (
            "/policies",
            f"/policies/{pol['id']}",
            f"/policies/effective?device={dev}",
        ):
            r = await b.page(path)
            assert r.status_code == 200, (role, path)
            no_actions(r.text)
            assert "/policies/new" not in r.text
        assert (await b.page("/policies/new")).status_code == 403
        r = await b.post("/policies", {"kind": "power", "scope_type": "fleet"})
        assert r.status_code == 403
        r = await b.post(f"/policies/{pol['id']}", {"low_battery_pct": "50"})
        assert r.status_code == 403
        r = await b.post(f"/policies/{pol['id']}/delete")
        assert r.status_code == 403
    assert len(await policies_of(central)) == 1
    assert (await api(central, "GET", f"/policies/{pol['id']}"))["version"] == 1
