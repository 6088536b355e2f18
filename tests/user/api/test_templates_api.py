"""Config templates through the real API on both databases: immutable versions, render
errors naming the variable, deployment to a group with per-device status settled from
device reports, rollback, roles, tenants and pagination."""

from __future__ import annotations

from typing import Any

from tests.conftest import Central

API = "/api/v1"
TPL = f"{API}/config-templates"


async def _post(c: Central, path: str, body: dict[str, Any], headers: Any = None) -> Any:
    r = await c.http.post(path, headers=headers or c.admin, json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def test_templates_versions_deploy_status_and_rollback(central: Central) -> None:
    from wrale.fleet.brain.models import Device
    from wrale.fleet.brain.services import twin

    viewer = await central.user("viewer")
    operator = await central.user("operator")
    devs = [
        await _post(central, f"{API}/devices", {"name": f"kiosk-{i}", "tags": ["kiosk"]})
        for i in range(2)
    ]
    group = await _post(
        central,
        f"{API}/groups",
        {"name": "kiosks", "kind": "dynamic", "selector": {"tags_all": ["kiosk"]}},
    )
    variables = {
        "url": {"type": "str", "min": 8},
        "volume": {"type": "int", "min": 0, "max": 10, "default": 5},
    }
    body = {"kiosk": {"url": "${url}", "volume": "${volume}"}}

    r = await central.http.post(TPL, headers=viewer, json={"name": "kiosk", "body": body})
    assert r.status_code == 403
    for bad, where in (
        ({"name": "k", "body": {"a": "${nope}"}}, "${nope} is not declared"),
        ({"name": "k", "body": {"a": 1}, "variables": {"x": {"type": "list"}}}, "variables.x"),
        ({"name": "k", "body": {}}, "body"),
    ):
        r = await central.http.post(TPL, headers=operator, json=bad)
        assert r.status_code == 422, r.text
        assert where in r.json()["error"]["message"], r.text
    tpl = await _post(
        central,
        TPL,
        {"name": "kiosk", "body": body, "variables": variables, "note": "first"},
        operator,
    )
    assert (tpl["latest_version"], tpl["latest"]["variables"]["url"]["required"]) == (1, True)
    dup = await central.http.post(TPL, headers=operator, json={"name": "kiosk", "body": {"a": 1}})
    assert dup.status_code == 409
    v2 = await _post(
        central,
        f"{TPL}/{tpl['id']}/versions",
        {
            "body": {"kiosk": {"url": "${url}", "volume": "${volume}", "kiosk_mode": True}},
            "variables": variables,
        },
        operator,
    )
    assert v2["version"] == 2
    v1 = (await central.http.get(f"{TPL}/{tpl['id']}/versions/1", headers=viewer)).json()
    assert v1["body"] == body  # earlier versions never change
    versions = (
        await central.http.get(f"{TPL}/{tpl['id']}/versions?limit=1", headers=viewer)
    ).json()
    assert [v["version"] for v in versions["items"]] == [1]
    assert versions["next_cursor"]
    assert (
        await central.http.get(f"{TPL}/{tpl['id']}/versions/9", headers=viewer)
    ).status_code == 404

    render = f"{TPL}/{tpl['id']}/render"
    r = await central.http.post(
        render, headers=viewer, json={"variables": {"url": "https://intranet/"}}
    )
    assert r.json() == {
        "template_id": tpl["id"],
        "version": 2,
        "rendered": {"kiosk": {"url": "https://intranet/", "volume": 5, "kiosk_mode": True}},
    }
    for given, where in (
        ({}, "variables.url: required"),
        ({"url": "https://x/", "volume": 11}, "variables.volume: must be at most 10"),
        ({"url": "short"}, "variables.url: must be at least 8 characters"),
    ):
        r = await central.http.post(render, headers=viewer, json={"variables": given})
        assert r.status_code == 422, r.text
        assert r.json()["error"]["message"].startswith(where), r.text

    deployments = f"{TPL}/{tpl['id']}/deployments"
    dep1 = await _post(
        central,
        deployments,
        {
            "version": 1,
            "target_type": "group",
            "target_id": group["id"],
            "variables": {"url": "https://one/"},
        },
        operator,
    )
    assert dep1["counts"] == {"pending": 2, "applied": 0, "failed": 0, "superseded": 0}
    twin_url = f"{API}/devices/{devs[0]['id']}/twin"
    t = (await central.http.get(twin_url, headers=viewer)).json()
    assert t["desired"]["doc"]["config"] == {"kiosk": {"url": "https://one/", "volume": 5}}

    async def device_reports(i: int, version: int, rejected: dict[str, str]) -> None:
        async with central.db.session() as s:
            d = await s.get(Device, devs[i]["id"])
            assert d is not None
            tw = await twin.get_twin(s, d.tenant_id, d.id)
            doc = dict(tw.desired)
            if rejected:
                doc["config"] = {}
            await twin.record_reported(s, d, version, doc, tw.desired_version, rejected, 1.0)

    await device_reports(0, 1, {})
    await device_reports(1, 1, {"config.kiosk.volume": "no audio device"})
    dep = (await central.http.get(f"{deployments}/{dep1['id']}", headers=viewer)).json()
    assert dep["counts"] == {"pending": 0, "applied": 1, "failed": 1, "superseded": 0}
    failed = (
        await central.http.get(f"{deployments}/{dep1['id']}/devices?status=failed", headers=viewer)
    ).json()
    assert [(x["device_id"], x["reason"]) for x in failed["items"]] == [
        (devs[1]["id"], "config.kiosk.volume: no audio device")
    ]

    dep2 = await _post(
        central,
        deployments,
        {
            "target_type": "group",
            "target_id": group["id"],
            "variables": {"url": "https://two/", "volume": 3},
        },
        operator,
    )
    assert dep2["version"] == 2
    back = await _post(central, f"{deployments}/{dep2['id']}/rollback", {}, operator)
    assert (back["version"], back["variables"], back["rollback_of"]) == (
        1,
        {"url": "https://one/"},
        dep2["id"],
    )
    t = (await central.http.get(twin_url, headers=viewer)).json()
    assert t["desired"]["doc"]["config"] == {"kiosk": {"url": "https://one/", "volume": 5}}
    dep2 = (await central.http.get(f"{deployments}/{dep2['id']}", headers=viewer)).json()
    assert dep2["counts"]["superseded"] == 2
    listed = (await central.http.get(deployments, headers=viewer)).json()
    assert [d["id"] for d in listed["items"]] == [dep1["id"], dep2["id"], back["id"]]
    r = await central.http.post(f"{deployments}/{dep1['id']}/rollback", headers=operator, json={})
    assert r.status_code == 409

    other = await central.other_tenant_admin()
    assert (await central.http.get(f"{TPL}/{tpl['id']}", headers=other)).status_code == 404
    assert (await central.http.get(TPL, headers=other)).json()["items"] == []
    r = await central.http.post(deployments, headers=other, json={"target_type": "fleet"})
    assert r.status_code == 404
    assert (await central.http.delete(f"{TPL}/{tpl['id']}", headers=operator)).status_code == 403
    r = await central.http.patch(f"{TPL}/{tpl['id']}", headers=operator, json={"name": "kiosk-cfg"})
    assert r.json()["name"] == "kiosk-cfg"
    assert (
        await central.http.delete(f"{TPL}/{tpl['id']}", headers=central.admin)
    ).status_code == 204
    assert (
        await central.http.get(f"{deployments}/{dep1['id']}", headers=viewer)
    ).status_code == 404
    actions = [
        e["action"]
        for e in (
            await central.http.get(f"{API}/audit?resource_id={tpl['id']}", headers=central.admin)
        ).json()["items"]
    ]
    assert actions == [
        "config_template.delete",
        "config_template.update",
        "config_template.rollback",
        "config_template.deploy",
        "config_template.deploy",
        "config_template.version",
        "config_template.create",
    ]
