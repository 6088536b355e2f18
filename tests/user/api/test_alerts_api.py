"""Alert rules, alerts and notification channels through the API: validation, roles,
tenants, the alert lifecycle with history, and audit entries."""

from __future__ import annotations

from typing import Any

from tests.conftest import Central
from tests.fleet.brain.test_alerts_runner import Telemetry
from wrale.fleet.brain.services.alert_runner import evaluate_rules

API = "/api/v1"
T0 = 1_000_000.0


async def _post(c: Central, path: str, body: dict[str, Any], headers: Any = None) -> Any:
    r = await c.http.post(f"{API}{path}", headers=headers or c.admin, json=body)
    assert r.status_code in (200, 201), r.text
    return r.json()


async def test_rule_crud_and_validation(central: Central) -> None:
    operator = await central.user("operator")
    viewer = await central.user("viewer")
    rule = await _post(
        central, "/alert-rules", {"name": "hot", "expression": "cpu_temp_c > 70 for 5m"}, operator
    )
    assert (rule["metric"], rule["op"], rule["threshold"], rule["for_s"]) == (
        "cpu_temp_c",
        ">",
        70,
        300,
    )
    assert (rule["scope_type"], rule["severity"], rule["enabled"]) == ("fleet", "WARNING", True)
    assert rule["expression"] == "cpu_temp_c > 70 for 300s"
    explicit = await _post(
        central,
        "/alert-rules",
        {
            "name": "cold",
            "metric": "ambient_temp_c",
            "op": "<",
            "threshold": 0,
            "for_s": 60,
            "severity": "MINOR",
        },
    )
    assert explicit["expression"] == "ambient_temp_c < 0 for 60s"
    rack = await _post(
        central, "/alert-rules", {"name": "budget", "expression": "rack power_w > budget"}
    )
    assert (rack["threshold"], rack["aggregate"]) == ("budget", "rack_sum")
    for body, status, text in (
        ({"name": "x", "expression": "cpu_temp_c >> 70"}, 422, "cannot parse"),
        ({"name": "x", "expression": "cpu_temp_c > 170"}, 422, "-40..150"),
        ({"name": "x", "expression": "battery_pct < 101"}, 422, "percentage"),
        ({"name": "x", "expression": "input_v > 61"}, 422, "voltage"),
        ({"name": "x", "expression": "cpu_temp_c > 70 for 2s"}, 422, "too short"),
        (
            {"name": "x", "metric": "cpu_temp_c", "op": ">", "threshold": 70, "for_s": -1},
            422,
            "for_s",
        ),
        ({"name": "x", "expression": "cpu_temp_c > 70", "metric": "fan_rpm"}, 422, "metric"),
        ({"name": "x", "metric": "cpu_temp_c", "op": ">"}, 422, "threshold"),
        ({"name": "x", "expression": "cpu_temp_c > budget"}, 422, "budget"),
        (
            {
                "name": "x",
                "expression": "rack power_w > budget",
                "scope_type": "device",
                "scope_id": "0" * 32,
            },
            404,
            "no device",
        ),
        ({"name": "x", "expression": "cpu_temp_c > 70", "scope_type": "rack"}, 422, "scope_id"),
        ({"name": "x", "expression": "cpu_temp_c > 70", "channel_ids": ["0" * 32]}, 422, "channel"),
        ({"name": "x", "expression": "cpu_temp_c > 70", "severity": "SEVERE"}, 422, "severity"),
        ({"name": "hot", "expression": "cpu_temp_c > 70"}, 409, "exists"),
    ):
        r = await central.http.post(f"{API}/alert-rules", headers=operator, json=body)
        assert r.status_code == status, (body, r.text)
        assert text in r.json()["error"]["message"], r.text
    r = await central.http.post(
        f"{API}/alert-rules", headers=viewer, json={"name": "v", "expression": "cpu_temp_c > 1"}
    )
    assert r.status_code == 403
    listed = await central.http.get(f"{API}/alert-rules?severity=MINOR", headers=viewer)
    assert [x["id"] for x in listed.json()["items"]] == [explicit["id"]]
    url = f"{API}/alert-rules/{rule['id']}"
    r = await central.http.patch(
        url, headers=operator, json={"expression": "cpu_temp_c >= 75 for 10m", "enabled": False}
    )
    assert r.status_code == 200, r.text
    assert (r.json()["threshold"], r.json()["for_s"], r.json()["enabled"]) == (75, 600, False)
    bad = await central.http.patch(url, headers=operator, json={"threshold": 500})
    assert bad.status_code == 422
    other = await central.other_tenant_admin()
    assert (await central.http.get(url, headers=other)).status_code == 404
    assert (await central.http.patch(url, headers=other, json={})).status_code == 404
    assert (await central.http.delete(url, headers=other)).status_code == 404
    assert (await central.http.delete(url, headers=operator)).status_code == 204
    assert (await central.http.get(url, headers=operator)).status_code == 404
    actions = [
        e["action"]
        for e in (
            await central.http.get(f"{API}/audit?resource_id={rule['id']}", headers=central.admin)
        ).json()["items"]
    ]
    assert actions == ["alert_rule.delete", "alert_rule.update", "alert_rule.create"]


async def _raise_alert(central: Central) -> tuple[dict[str, Any], dict[str, Any]]:
    dev = await _post(central, "/devices", {"name": "pi-hot"})
    rule = await _post(
        central,
        "/alert-rules",
        {
            "name": "hot",
            "expression": "cpu_temp_c > 70",
            "severity": "CRITICAL",
            "scope_type": "device",
            "scope_id": dev["id"],
        },
    )
    tel = Telemetry()
    tel.add(dev["id"], "cpu_temp_c", T0, T0, 91)
    async with central.db.session() as s:
        await evaluate_rules(s, None, T0, central.app.state.wrale.bus, read_samples=tel.read)
    alerts = (await central.http.get(f"{API}/alerts?state=active", headers=central.admin)).json()
    [alert] = alerts["items"]
    assert (alert["device_id"], alert["rule_id"], alert["severity"]) == (
        dev["id"],
        rule["id"],
        "CRITICAL",
    )
    return alert, dev


async def test_alert_lifecycle_roles_and_history(central: Central) -> None:
    alert, dev = await _raise_alert(central)
    operator = await central.user("operator", "olga")
    viewer = await central.user("viewer")
    url = f"{API}/alerts/{alert['id']}"
    for action in ("acknowledge", "clear"):
        r = await central.http.post(f"{url}/{action}", headers=viewer, json={})
        assert r.status_code == 403
    r = await central.http.post(f"{url}/acknowledge", headers=operator, json={"note": "on it"})
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["acknowledged_by"]) == ("acknowledged", "olga")
    again = await central.http.post(f"{url}/acknowledge", headers=operator, json={})
    assert again.status_code == 409
    me = (await central.http.get(f"{API}/auth/me", headers=operator)).json()
    r = await central.http.post(f"{url}/assign", headers=operator, json={"user_id": me["actor_id"]})
    assert r.json()["assignee_id"] == me["actor_id"]
    bad = await central.http.post(f"{url}/assign", headers=operator, json={"user_id": "0" * 32})
    assert bad.status_code == 422
    other = await central.other_tenant_admin()
    other_user = (await central.http.get(f"{API}/auth/me", headers=other)).json()["actor_id"]
    r = await central.http.post(f"{url}/assign", headers=operator, json={"user_id": other_user})
    assert r.status_code == 422  # a user of another organisation is not assignable
    r = await central.http.post(f"{url}/clear", headers=operator, json={"note": "fan replaced"})
    assert (r.json()["state"], r.json()["cleared_by"]) == ("cleared", "olga")
    detail = (await central.http.get(url, headers=viewer)).json()
    assert [(h["action"], h["to_state"]) for h in detail["history"]] == [
        ("raised", "active"),
        ("acknowledged", "acknowledged"),
        ("assigned", "acknowledged"),
        ("cleared", "cleared"),
    ]
    assert detail["history"][1]["note"] == "on it"
    assert detail["history"][3]["actor_name"] == "olga"
    filtered = await central.http.get(
        f"{API}/alerts?state=cleared&device_id={dev['id']}", headers=viewer
    )
    assert [a["id"] for a in filtered.json()["items"]] == [alert["id"]]
    none = await central.http.get(f"{API}/alerts?severity=INFO", headers=viewer)
    assert none.json()["items"] == []
    assert (await central.http.get(url, headers=other)).status_code == 404
    assert (await central.http.post(f"{url}/clear", headers=other, json={})).status_code == 404
    assert (await central.http.get(f"{API}/alerts", headers=other)).json()["items"] == []
    audit = (
        await central.http.get(f"{API}/audit?resource_type=alert", headers=central.admin)
    ).json()["items"]
    assert [e["action"] for e in audit] == ["alert.clear", "alert.assign", "alert.acknowledge"]
    assert audit[0]["details"] == {"note": "fan replaced"}


async def test_notification_channels(central: Central) -> None:
    body = {
        "name": "ops",
        "type": "webhook",
        "config": {"url": "https://hooks.example/x", "secret": "0123456789", "headers": {}},
    }
    ch = await _post(central, "/notification-channels", body)
    assert ch["config"]["has_secret"] is True
    assert "secret" not in ch["config"]
    url = f"{API}/notification-channels/{ch['id']}"
    r = await central.http.patch(
        url, headers=central.admin, json={"config": {"url": "https://hooks.example/y"}}
    )
    assert (r.json()["config"]["url"], r.json()["config"]["has_secret"]) == (
        "https://hooks.example/…",  # the URL is a secret: only where it goes shows
        True,
    )
    bad = await central.http.post(
        f"{API}/notification-channels",
        headers=central.admin,
        json={**body, "name": "b", "config": {"url": "nope"}},
    )
    assert bad.status_code == 422
    dup = await central.http.post(f"{API}/notification-channels", headers=central.admin, json=body)
    assert dup.status_code == 409
    operator = await central.user("operator")
    assert (
        await central.http.get(f"{API}/notification-channels", headers=operator)
    ).status_code == 403
    other = await central.other_tenant_admin()
    assert (await central.http.get(url, headers=other)).status_code == 404
    listed = await central.http.get(f"{API}/notification-channels", headers=central.admin)
    assert [c["id"] for c in listed.json()["items"]] == [ch["id"]]
    audit = (
        await central.http.get(f"{API}/audit?resource_id={ch['id']}", headers=central.admin)
    ).json()["items"]
    assert "0123456789" not in str(audit)  # secrets never reach the audit log
    assert (await central.http.delete(url, headers=central.admin)).status_code == 204
    assert (await central.http.get(url, headers=central.admin)).status_code == 404
