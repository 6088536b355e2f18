"""``/devices/{id}/twin`` through the real API on both databases: versions, the stale-write
409, merge-patch semantics, validation naming the path, policies flowing into desired
state, reported state and the diff, roles, tenants and audit."""

from __future__ import annotations

from typing import Any

from tests.conftest import Central

API = "/api/v1"


async def _post(c: Central, path: str, body: dict[str, Any]) -> Any:
    r = await c.http.post(f"{API}{path}", headers=c.admin, json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def test_twin_versions_merge_patch_policies_and_reports(central: Central) -> None:
    from wrale.fleet.brain.models import Device
    from wrale.fleet.brain.services import twin

    dev = await _post(central, "/devices", {"name": "pi-twin"})
    url = f"{API}/devices/{dev['id']}/twin"
    viewer = await central.user("viewer")
    operator = await central.user("operator")

    t = (await central.http.get(url, headers=viewer)).json()
    assert t["desired"]["version"] == 1
    assert t["desired"]["doc"]["thermal"]["cpu_warning_c"] == 70.0
    assert (t["reported"]["version"], t["in_sync"]) == (0, False)
    assert {d["path"] for d in t["diff"]} >= {"thermal.cpu_warning_c", "sampling.interval_s"}

    body = {"version": 1, "desired": {"fan": {"override_pct": 60}, "thermal": {"profile": "cool"}}}
    r = await central.http.patch(url, headers=viewer, json=body)
    assert r.status_code == 403
    r = await central.http.patch(url, headers=operator, json=body)
    assert r.status_code == 200, r.text
    t = r.json()
    assert t["desired"]["version"] == 2
    assert t["overrides"] == {"fan": {"override_pct": 60}, "thermal": {"profile": "cool"}}
    assert t["desired"]["doc"]["fan"] == {"override_pct": 60}

    stale = await central.http.patch(url, headers=operator, json=body)
    assert stale.status_code == 409
    assert stale.json()["error"]["details"]["version"] == 2

    for desired, where in (
        ({"thermal": {"cpu_critical_c": 60}}, "desired.thermal"),
        ({"fan": {"override_pct": -1}}, "desired.fan.override_pct"),
        ({"gpio": {"bad line!": {"value": 1}}}, "desired.gpio.bad line!"),
        ({"weather": {}}, "desired.weather"),
    ):
        r = await central.http.patch(url, headers=operator, json={"version": 2, "desired": desired})
        assert r.status_code == 422, r.text
        assert where in r.json()["error"]["message"], r.text

    # null removes a value, and a whole section
    r = await central.http.patch(
        url,
        headers=operator,
        json={
            "version": 2,
            "desired": {"fan": None, "thermal": {"profile": None, "min_fan_pct": 20}},
        },
    )
    t = r.json()
    assert (t["desired"]["version"], t["overrides"]) == (3, {"thermal": {"min_fan_pct": 20}})
    assert "fan" not in t["desired"]["doc"]

    # a fleet policy flows into desired state; the explicit value still wins
    pol = await _post(
        central,
        "/policies",
        {
            "scope_type": "fleet",
            "kind": "thermal",
            "document": {"min_fan_pct": 10, "profile": "quiet"},
        },
    )
    t = (await central.http.get(url, headers=viewer)).json()
    assert t["desired"]["version"] == 4
    assert t["desired"]["doc"]["thermal"]["profile"] == "quiet"
    assert t["desired"]["doc"]["thermal"]["min_fan_pct"] == 20
    r = await central.http.put(
        f"{API}/policies/{pol['id']}", headers=central.admin, json={"document": {"min_fan_pct": 10}}
    )
    assert r.status_code == 200
    t = (await central.http.get(url, headers=viewer)).json()
    assert (t["desired"]["version"], t["desired"]["doc"]["thermal"]["profile"]) == (5, "balance")

    # the device reports (as the device channel would)
    async with central.db.session() as s:
        device = await s.get(Device, dev["id"])
        assert device is not None
        doc = {**t["desired"]["doc"], "agent_version": "0.4.0", "hardware": {"backend": "sim"}}
        await twin.record_reported(s, device, 7, doc, 5, {}, 1_800_000_000.0)
        await twin.record_reported(s, device, 6, {}, 1, {}, 1_800_000_001.0)  # stale: ignored
    t = (await central.http.get(url, headers=viewer)).json()
    assert (t["reported"]["version"], t["reported"]["at"]) == (7, 1_800_000_000.0)
    assert (t["in_sync"], t["diff"], t["applied_desired_version"]) == (True, [], 5)

    other = await central.other_tenant_admin()
    assert (await central.http.get(url, headers=other)).status_code == 404
    r = await central.http.patch(url, headers=other, json={"version": 5, "desired": {}})
    assert r.status_code == 404
    audit = (
        await central.http.get(
            f"{API}/audit?resource_id={dev['id']}&action=twin.update", headers=central.admin
        )
    ).json()["items"]
    assert len(audit) == 2
    assert audit[0]["after"]["version"] == 3
