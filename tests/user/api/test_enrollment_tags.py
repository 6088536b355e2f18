"""A board cannot choose its own tags at enrollment: only the enrollment token's target
tags count; what the board proposes is kept apart, shown as proposed, and never selects it
into a group, a policy or a command."""

from __future__ import annotations

from typing import Any

from tests.conftest import Central

API = "/api/v1"


async def _post(central: Central, path: str, body: dict[str, Any], **kw: Any) -> Any:
    r = await central.http.post(f"{API}{path}", json=body, **kw)
    assert r.status_code == 201, r.text
    return r.json()


async def test_device_proposed_tags_are_not_its_tags(central: Central) -> None:
    token = await _post(
        central,
        "/enrollment-tokens",
        {"name": "lab", "target_tags": ["lab"]},
        headers=central.admin,
    )
    prod = await _post(
        central,
        "/groups",
        {"name": "prod", "kind": "dynamic", "selector": {"tags_any": ["prod"]}},
        headers=central.admin,
    )
    body = await _post(
        central, "/enroll", {"token": token["token"], "name": "pi-x", "tags": ["prod", "rack-a1"]}
    )
    device = body["device"]
    assert device["tags"] == ["lab"]
    assert device["proposed_tags"] == ["prod", "rack-a1"]
    shown = (await central.http.get(f"{API}/devices/{device['id']}", headers=central.admin)).json()
    assert (shown["tags"], shown["proposed_tags"]) == (["lab"], ["prod", "rack-a1"])

    members = await central.http.get(f"{API}/groups/{prod['id']}/devices", headers=central.admin)
    assert members.status_code == 200, members.text
    assert device["id"] not in [d["id"] for d in members.json()["items"]]
    listed = await central.http.get(f"{API}/devices", params={"tag": "prod"}, headers=central.admin)
    assert listed.status_code == 200, listed.text
    assert device["id"] not in [d["id"] for d in listed.json()["items"]]


async def test_an_operator_bulk_enrolling_chooses_the_tags(central: Central) -> None:
    """An authenticated operator is trusted with tags; a board alone is not."""
    body = await _post(
        central, "/enroll/bulk", {"devices": [{"tags": ["prod"]}]}, headers=central.admin
    )
    device = body["items"][0]["device"]
    assert (device["tags"], device["proposed_tags"]) == (["prod"], [])
