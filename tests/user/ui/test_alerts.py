"""The Alerts pages without a browser: the list by state with filters, acknowledge / assign /
clear with audit and history, what a viewer sees and may do, and the rule editor's
field-by-field validation (422, nothing saved, values kept), edit, enable and delete."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from sqlalchemy import select

from tests.conftest import Central
from tests.fleet.brain.test_alerts_runner import Telemetry
from tests.user.ui.conftest import Browser, SignIn
from wrale.fleet.brain.models import Device, Rack, Room, Site
from wrale.fleet.brain.models.alerts import Alert, AlertEvent, AlertRule
from wrale.fleet.brain.services.alert_runner import evaluate_rules

API = "/api/v1"
ROW = re.compile(r'<tr data-alert-id="([0-9a-f]+)"')
POSTS = re.compile(r'<form[^>]*method="post"[^>]*action="([^"]+)"')


@dataclass
class Fleet:
    tenant_id: str
    rack_id: str
    devices: dict[str, str]  # name → id
    alerts: dict[str, str]  # label → id


async def _fleet(central: Central) -> Fleet:
    """Two boards in rack A1 and four alerts in every state, raised a minute apart."""
    me = (await central.http.get(f"{API}/auth/me", headers=central.admin)).json()
    tenant = me["tenant_id"]
    now = time.time()
    async with central.db.session() as s:
        site = Site(tenant_id=tenant, name="hq")
        s.add(site)
        await s.flush()
        room = Room(tenant_id=tenant, site_id=site.id, name="lab")
        s.add(room)
        await s.flush()
        rack = Rack(tenant_id=tenant, room_id=room.id, name="A1", power_budget_w=50.0)
        s.add(rack)
        await s.flush()
        hot = Device(tenant_id=tenant, num=9001, name="pi-hot", rack_id=rack.id, slot_u=1)
        loose = Device(tenant_id=tenant, num=9002, name="pi-loose")
        s.add_all([hot, loose])
        await s.flush()
        made: dict[str, str] = {}
        for i, (label, dev, sev, state) in enumerate(
            (
                ("hot", hot, "CRITICAL", "active"),
                ("warm", loose, "WARNING", "active"),
                ("seen", hot, "MAJOR", "acknowledged"),
                ("gone", loose, "MINOR", "cleared"),
            )
        ):
            raised = now - 600 + 60 * i
            a = Alert(
                tenant_id=tenant,
                rule_name=f"rule-{label}",
                key=dev.id,
                device_id=dev.id,
                rack_id=dev.rack_id,
                metric="cpu_temp_c",
                severity=sev,
                state=state,
                value=80.0 + i,
                threshold=70.0,
                message=f"{label}: cpu_temp_c {80 + i} > 70",
                raised_at=raised,
                updated_at=raised,
                acknowledged_by="olga" if state == "acknowledged" else None,
                acknowledged_at=raised if state == "acknowledged" else None,
                cleared_at=raised if state == "cleared" else None,
            )
            s.add(a)
            await s.flush()
            s.add(
                AlertEvent(
                    tenant_id=tenant,
                    alert_id=a.id,
                    action="raised",
                    to_state="active",
                    note=a.message,
                    value=a.value,
                    created_at=raised,
                )
            )
            made[label] = a.id
        return Fleet(tenant, rack.id, {"pi-hot": hot.id, "pi-loose": loose.id}, made)


def _rows(html: str) -> list[str]:
    return ROW.findall(html)


async def test_list_by_state_newest_first_with_filters_and_links(
    central: Central, ui_as: SignIn
) -> None:
    fleet = await _fleet(central)
    viewer: Browser = await ui_as("viewer")
    r = await viewer.page("/alerts")
    assert r.status_code == 200, r.text
    assert _rows(r.text) == [fleet.alerts["warm"], fleet.alerts["hot"]]  # newest first
    assert 'data-state="active" aria-current="page"' in r.text
    assert f'href="/devices/{fleet.devices["pi-hot"]}">pi-hot</a>' in r.text
    assert f'href="/physical?rack={fleet.rack_id}#rack-{fleet.rack_id}"' in r.text
    assert 'class="badge sev-critical">critical' in r.text
    for state, label in (("acknowledged", "seen"), ("cleared", "gone")):
        r = await viewer.page("/alerts", state=state)
        assert _rows(r.text) == [fleet.alerts[label]], state
    r = await viewer.page("/alerts", severity="critical")
    assert _rows(r.text) == [fleet.alerts["hot"]]
    r = await viewer.page("/alerts", device="pi-loose")
    assert _rows(r.text) == [fleet.alerts["warm"]]
    r = await viewer.page("/alerts", rack=fleet.rack_id, state="acknowledged")
    assert _rows(r.text) == [fleet.alerts["seen"]]
    r = await viewer.page("/alerts", device="no-such-board")
    assert _rows(r.text) == []
    assert "There is no device named “no-such-board”" in r.text
    r = await viewer.page("/alerts", state="bogus", page="x", severity="loud")
    assert r.status_code == 200  # nonsense in the URL: the default view, not an error
    fragment = await viewer.fragment("/alerts/_table", state="cleared")
    assert fragment.text.startswith('<div id="alerts-table"')
    assert _rows(fragment.text) == [fleet.alerts["gone"]]
    options = await viewer.fragment("/alerts/_devices", device="loo")
    assert '<option value="pi-loose">' in options.text
    assert "pi-hot" not in options.text


async def test_pages_of_fifty(central: Central, admin_ui: Browser) -> None:
    fleet = await _fleet(central)
    now = time.time()
    async with central.db.session() as s:
        for i in range(55):
            s.add(
                Alert(
                    tenant_id=fleet.tenant_id,
                    rule_name="bulk",
                    key=f"k{i}",
                    metric="fan_rpm",
                    severity="INFO",
                    state="cleared",
                    message=f"bulk {i}",
                    raised_at=now - 10_000 + i,
                    updated_at=now,
                )
            )
    first = await admin_ui.page("/alerts", state="cleared")
    second = await admin_ui.page("/alerts", state="cleared", page="2")
    assert len(_rows(first.text)) == 50
    assert len(_rows(second.text)) == 6
    assert "51–56 of 56" in second.text
    assert not set(_rows(first.text)) & set(_rows(second.text))


async def test_operator_acknowledges_assigns_and_clears(central: Central, ui_as: SignIn) -> None:
    dev = await central.http.post(f"{API}/devices", headers=central.admin, json={"name": "pi-9"})
    dev_id = dev.json()["id"]
    rule = {"name": "hot", "expression": "cpu_temp_c > 70", "severity": "CRITICAL"}
    r = await central.http.post(f"{API}/alert-rules", headers=central.admin, json=rule)
    assert r.status_code == 201, r.text
    tel = Telemetry()
    tel.add(dev_id, "cpu_temp_c", 1_000_000.0, 1_000_000.0, 91)
    async with central.db.session() as s:
        bus = central.app.state.wrale.bus
        await evaluate_rules(s, None, 1_000_000.0, bus, read_samples=tel.read)
    op: Browser = await ui_as("operator")
    page = await op.page("/alerts")
    [alert_id] = _rows(page.text)
    assert 'data-action="ack"' in page.text
    assert 'data-action="assign"' in page.text
    r = await op.post(f"/alerts/{alert_id}/ack", {"note": "on it"})
    assert r.status_code == 200, r.text
    assert r.text.lstrip().startswith(f'<tr data-alert-id="{alert_id}" data-state="acknowledged"')
    again = await op.post(f"/alerts/{alert_id}/ack", {})
    assert again.status_code == 409  # toast, the page stays
    me = (await op.http.get("/alerts?state=acknowledged")).text
    users = dict(re.findall(r'<option value="([0-9a-f]{32})"[^>]*>([^<]+)</option>', me))
    admin_id = next(uid for uid, name in users.items() if name == "admin")
    r = await op.post(f"/alerts/{alert_id}/assign", {"user_id": admin_id})
    assert r.status_code == 200, r.text
    assert "assigned: admin" in r.text
    bad = await op.post(f"/alerts/{alert_id}/assign", {"user_id": "0" * 32})
    assert bad.status_code == 422
    r = await op.post(
        f"/alerts/{alert_id}/clear", {"note": "fan replaced", "next": "/alerts"}, htmx=False
    )
    assert r.status_code == 303
    assert r.headers["location"] == "/alerts"
    detail = await op.page(f"/alerts/{alert_id}")
    assert detail.status_code == 200
    assert list(re.findall(r'data-event="(\w+)"', detail.text)) == [
        "raised",
        "acknowledged",
        "assigned",
        "cleared",
    ]
    assert "assigned to admin" in detail.text
    assert "fan replaced" in detail.text
    assert "on it" in detail.text
    assert "data-action" not in detail.text.split('id="alert-detail"')[1].split("<h2>")[0]
    audit = (
        await central.http.get(f"{API}/audit?resource_type=alert", headers=central.admin)
    ).json()["items"]
    assert [e["action"] for e in audit] == ["alert.clear", "alert.assign", "alert.acknowledge"]
    r = await op.post(f"/alerts/{'f' * 32}/ack", {}, htmx=False)
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")


async def test_acknowledge_from_the_detail_page_swaps_the_panel(
    central: Central, admin_ui: Browser
) -> None:
    fleet = await _fleet(central)
    alert_id = fleet.alerts["hot"]
    await admin_ui.page(f"/alerts/{alert_id}")
    r = await admin_ui.post(f"/alerts/{alert_id}/ack", {"view": "detail", "note": "looking"})
    assert r.status_code == 200
    assert r.text.lstrip().startswith("<section")
    assert 'id="alert-detail"' in r.text
    assert 'data-state="acknowledged"' in r.text


async def test_a_viewer_sees_no_action_and_the_server_refuses_them(
    central: Central, ui_as: SignIn
) -> None:
    fleet = await _fleet(central)
    rule = {"name": "hot", "expression": "cpu_temp_c > 70"}
    rule_id = (
        await central.http.post(f"{API}/alert-rules", headers=central.admin, json=rule)
    ).json()["id"]
    viewer: Browser = await ui_as("viewer")
    for path in ("/alerts", f"/alerts/{fleet.alerts['hot']}", "/alerts/rules"):
        r = await viewer.page(path)
        assert r.status_code == 200, path
        assert "data-action" not in r.text, path
        assert POSTS.findall(r.text) == ["/logout"], path
    alert_id = fleet.alerts["hot"]
    for path, data in (
        (f"/alerts/{alert_id}/ack", {}),
        (f"/alerts/{alert_id}/assign", {"user_id": ""}),
        (f"/alerts/{alert_id}/clear", {}),
        ("/alerts/rules/new", {"name": "x", "metric": "cpu_temp_c", "threshold": "70"}),
        (f"/alerts/rules/{rule_id}/enabled", {"enabled": "0"}),
        (f"/alerts/rules/{rule_id}/delete", {}),
    ):
        r = await viewer.post(path, data)
        assert r.status_code == 403, path
    assert (await viewer.page("/alerts/rules/new")).status_code == 403
    assert (await viewer.page(f"/alerts/rules/{rule_id}/edit")).status_code == 403
    async with central.db.session() as s:
        state = await s.scalar(select(Alert.state).where(Alert.id == alert_id))
        enabled = await s.scalar(select(AlertRule.enabled).where(AlertRule.id == rule_id))
    assert (state, enabled) == ("active", True)


def _rule(**change: str) -> dict[str, str]:
    form = {
        "name": "CPU hot",
        "metric": "cpu_temp_c",
        "op": ">",
        "threshold": "75",
        "for_s": "5m",
        "severity": "MAJOR",
        "scope_type": "fleet",
        "enabled": "1",
        "description": "the board is cooking",
    }
    form.update(change)
    return form


async def _rule_names(central: Central) -> list[str]:
    async with central.db.session() as s:
        return list(await s.scalars(select(AlertRule.name).order_by(AlertRule.name)))


async def test_creating_a_rule_redirects_to_the_list(central: Central, ui_as: SignIn) -> None:
    op: Browser = await ui_as("operator")
    form = await op.page("/alerts/rules/new")
    assert form.status_code == 200
    assert '<form id="rule-form"' in form.text
    for name in ("name", "metric", "op", "threshold", "for_s", "severity", "scope_type"):
        assert f'name="{name}"' in form.text, name
    assert 'name="scope_id"' in form.text
    r = await op.post("/alerts/rules/new", _rule())
    assert r.status_code == 200, r.text
    assert r.headers["HX-Redirect"] == "/alerts/rules?saved=CPU%20hot"
    rules = (await central.http.get(f"{API}/alert-rules", headers=central.admin)).json()["items"]
    [rule] = rules
    assert (rule["metric"], rule["op"], rule["threshold"], rule["for_s"]) == (
        "cpu_temp_c",
        ">",
        75,
        300,
    )
    assert (rule["severity"], rule["scope_type"], rule["enabled"]) == ("MAJOR", "fleet", True)
    listed = await op.page("/alerts/rules", saved="CPU hot")
    assert "Rule “CPU hot” saved." in listed.text
    assert "cpu_temp_c &gt; 75 for 300s" in listed.text
    plain = await op.post("/alerts/rules/new", _rule(name="plain", for_s=""), htmx=False)
    assert plain.status_code == 303
    assert plain.headers["location"] == "/alerts/rules?saved=plain"
    audit = (
        await central.http.get(f"{API}/audit?resource_type=alert_rule", headers=central.admin)
    ).json()["items"]
    assert [e["action"] for e in audit] == ["alert_rule.create", "alert_rule.create"]


async def test_an_invalid_rule_is_refused_at_its_fields_and_nothing_is_saved(
    admin_ui: Browser, central: Central
) -> None:
    await admin_ui.page("/alerts/rules/new")
    cases: list[tuple[dict[str, str], str, str]] = [
        (_rule(threshold="500"), "threshold", "-40..150"),
        (_rule(metric="battery_pct", threshold="150"), "threshold", "percentage"),
        (_rule(threshold="hot"), "threshold", "not a number"),
        (_rule(threshold=""), "threshold", "Give a threshold"),
        (_rule(threshold="nan"), "threshold", "finite"),
        (_rule(threshold="budget"), "threshold", "budget"),
        (_rule(for_s="2s"), "for_s", "too short"),
        (_rule(for_s="soon"), "for_s", "not a duration"),
        (_rule(for_s="30d"), "for_s", "7 days"),
        (_rule(name="  "), "name", "name"),
        (_rule(metric="Bad Metric"), "metric", "metric"),
        (_rule(op="=>"), "op", "Choose one of"),
        (_rule(severity="LOUD"), "severity", "Choose one of"),
        (_rule(scope_type="rack"), "scope_id", "Choose the rack"),
        (_rule(scope_type="device", scope_id="nope"), "scope_id", "No device named"),
        (_rule(metric="rack:power_w", scope_type="device"), "scope_type", "rack rule"),
    ]
    for form, field, text in cases:
        r = await admin_ui.post("/alerts/rules/new", form)
        assert r.status_code == 422, (form, r.text)
        error = re.search(
            rf'<p class="field-error" id="{field}-error" role="alert">([^<]*)</p>', r.text
        )
        assert error, (field, r.text)
        assert text in error.group(1), (text, error.group(1))
        assert re.search(rf'id="{field}"[^>]*aria-invalid="true"', r.text), field
        assert r.text.lstrip().startswith('<form id="rule-form"')  # the form again, as typed
        assert 'value="the board is cooking"' in r.text
    both = await admin_ui.post("/alerts/rules/new", _rule(threshold="500", for_s="1s"))
    assert 'id="threshold-error"' in both.text
    assert 'id="for_s-error"' in both.text
    assert 'value="500"' in both.text
    assert 'value="1s"' in both.text
    full = await admin_ui.post("/alerts/rules/new", _rule(threshold="500"), htmx=False)
    assert full.status_code == 422
    assert "<!doctype html>" in full.text
    assert 'id="threshold-error"' in full.text
    assert await _rule_names(central) == []
    ok = await admin_ui.post("/alerts/rules/new", _rule())
    assert ok.status_code == 200
    taken = await admin_ui.post("/alerts/rules/new", _rule())
    assert taken.status_code == 422
    assert 'id="name-error"' in taken.text
    assert "exists" in taken.text
    assert await _rule_names(central) == ["CPU hot"]


async def test_rack_budget_and_device_scopes(central: Central, admin_ui: Browser) -> None:
    fleet = await _fleet(central)
    await admin_ui.page("/alerts/rules/new")
    r = await admin_ui.post(
        "/alerts/rules/new",
        _rule(
            name="rack over budget",
            metric="rack:power_w",
            threshold="",
            budget="1",
            for_s="",
            scope_type="rack",
            scope_id=fleet.rack_id,
        ),
    )
    assert r.status_code == 200, r.text
    r = await admin_ui.post(
        "/alerts/rules/new", _rule(name="one board", scope_type="device", scope_id="pi-hot")
    )
    assert r.status_code == 200, r.text
    async with central.db.session() as s:
        rules = {x.name: x for x in await s.scalars(select(AlertRule).order_by(AlertRule.name))}
    budget = rules["rack over budget"]
    assert (budget.aggregate, budget.threshold, budget.scope_id) == (
        "rack_sum",
        None,
        fleet.rack_id,
    )
    assert rules["one board"].scope_id == fleet.devices["pi-hot"]
    listed = await admin_ui.page("/alerts/rules")
    assert "rack power_w &gt; budget" in listed.text
    assert "rack: hq / lab / A1" in listed.text
    assert "device: pi-hot" in listed.text
    scope = await admin_ui.fragment("/alerts/rules/_scope", scope_type="rack")
    assert f'<option value="{fleet.rack_id}">hq / lab / A1</option>' in scope.text
    edit = await admin_ui.page(f"/alerts/rules/{rules['one board'].id}/edit")
    assert 'value="pi-hot"' in edit.text
    assert 'value="5m"' in edit.text
    preview = await admin_ui.post(
        "/alerts/rules/_preview", {"metric": "fan_rpm", "op": "<", "threshold": "500"}
    )
    assert "fan_rpm &lt; 500" in preview.text
    assert "below 500 rpm" in preview.text
    preview = await admin_ui.post(
        "/alerts/rules/_preview", {"metric": "cpu_temp_c", "op": ">", "threshold": "900"}
    )
    assert "-40..150" in preview.text


async def test_edit_enable_and_delete_a_rule(central: Central, ui_as: SignIn) -> None:
    body = {"name": "hot", "expression": "cpu_temp_c > 70 for 5m", "severity": "MINOR"}
    r = await central.http.post(f"{API}/alert-rules", headers=central.admin, json=body)
    rule_id = r.json()["id"]
    op: Browser = await ui_as("operator")
    edit = await op.page(f"/alerts/rules/{rule_id}/edit")
    assert edit.status_code == 200
    assert 'id="threshold" name="threshold" value="70"' in edit.text
    assert 'value="MINOR" selected' in edit.text
    url = f"/alerts/rules/{rule_id}/edit"
    bad = await op.post(url, _rule(name="hot", threshold="500"))
    assert bad.status_code == 422
    assert 'id="threshold-error"' in bad.text
    async with central.db.session() as s:
        kept = await s.get(AlertRule, rule_id)
        assert kept is not None
        assert (kept.threshold, kept.severity, kept.description) == (70.0, "MINOR", None)
    good = await op.post(url, _rule(name="hotter", threshold="80", for_s="1h30m"))
    assert good.headers["HX-Redirect"] == "/alerts/rules?saved=hotter"
    got = (await central.http.get(f"{API}/alert-rules/{rule_id}", headers=central.admin)).json()
    assert (got["name"], got["threshold"], got["for_s"], got["severity"]) == (
        "hotter",
        80,
        5400,
        "MAJOR",
    )
    listed = await op.page("/alerts/rules")
    assert 'data-action="disable"' in listed.text
    r = await op.post(f"/alerts/rules/{rule_id}/enabled", {"enabled": "0"})
    assert r.status_code == 200
    assert 'data-enabled="false"' in r.text
    assert 'data-action="enable"' in r.text
    r = await op.post(f"/alerts/rules/{rule_id}/delete", {})
    assert (r.status_code, r.text) == (200, "")
    gone = await central.http.get(f"{API}/alert-rules/{rule_id}", headers=central.admin)
    assert gone.status_code == 404
    r = await op.post(f"/alerts/rules/{rule_id}/delete", {}, htmx=False)
    assert r.status_code == 404
    actions = [
        e["action"]
        for e in (
            await central.http.get(f"{API}/audit?resource_id={rule_id}", headers=central.admin)
        ).json()["items"]
    ]
    assert actions == [
        "alert_rule.delete",
        "alert_rule.update",
        "alert_rule.update",
        "alert_rule.create",
    ]
