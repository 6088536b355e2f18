"""Enrollment tokens and enrollment through the real API: single- and multi-use tokens,
expiry, revocation, concurrency on a single-use token, bulk enrollment, audit."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import update

from tests.conftest import Central
from wrale.fleet.brain.models import EnrollmentToken, Rack, Room, Site, Tenant
from wrale.fleet.brain.models.groups import Group
from wrale.fleet.brain.services import enrollment, groups

API = "/api/v1"


async def _token(central: Central, **body: Any) -> Any:
    r = await central.http.post(
        f"{API}/enrollment-tokens", headers=central.admin, json={"name": "batch"} | body
    )
    assert r.status_code == 201, r.text
    return r.json()


async def _enroll(central: Central, token: str, **body: Any) -> Any:
    return await central.http.post(f"{API}/enroll", json={"token": token} | body)


async def test_token_lifecycle_admin_only(central: Central) -> None:
    t = await _token(central, target_tags=["lab"], expires_in_s=3600)
    assert t["token"].startswith("wet_")
    assert t["token"].startswith(t["prefix"])
    assert (t["max_uses"], t["uses"], t["state"]) == (1, 0, "active")
    assert t["expires_at"] is not None
    listed = (await central.http.get(f"{API}/enrollment-tokens", headers=central.admin)).json()
    assert [x["id"] for x in listed["items"]] == [t["id"]]
    assert "token" not in listed["items"][0]
    operator = await central.user("operator")
    viewer = await central.user("viewer")
    for headers in (operator, viewer):
        r = await central.http.post(
            f"{API}/enrollment-tokens", headers=headers, json={"name": "no"}
        )
        assert r.status_code == 403
        assert (
            await central.http.get(f"{API}/enrollment-tokens", headers=headers)
        ).status_code == 403
        assert (
            await central.http.delete(f"{API}/enrollment-tokens/{t['id']}", headers=headers)
        ).status_code == 403
    other = await central.other_tenant_admin()
    assert (
        await central.http.delete(f"{API}/enrollment-tokens/{t['id']}", headers=other)
    ).status_code == 404
    assert (await central.http.get(f"{API}/enrollment-tokens", headers=other)).json()["items"] == []
    revoked = await central.http.delete(f"{API}/enrollment-tokens/{t['id']}", headers=central.admin)
    assert revoked.json()["state"] == "revoked"
    active = await central.http.get(f"{API}/enrollment-tokens?active=true", headers=central.admin)
    assert active.json()["items"] == []
    bad = await central.http.post(
        f"{API}/enrollment-tokens",
        headers=central.admin,
        json={"name": "x", "target_rack_id": "0" * 32},
    )
    assert bad.status_code == 404
    assert "target_rack_id" in bad.json()["error"]["message"]
    for body in ({"name": "x", "max_uses": 0}, {"name": "x", "expires_in_s": -1}):
        r = await central.http.post(f"{API}/enrollment-tokens", headers=central.admin, json=body)
        assert r.status_code == 422


async def test_enroll_happy_path_and_single_use(central: Central) -> None:
    tenant_id = (await central.http.get(f"{API}/auth/me", headers=central.admin)).json()[
        "tenant_id"
    ]
    async with central.db.session() as s:
        site = Site(tenant_id=tenant_id, name="hq")
        s.add(site)
        await s.flush()
        room = Room(tenant_id=tenant_id, site_id=site.id, name="lab")
        s.add(room)
        await s.flush()
        rack = Rack(tenant_id=tenant_id, room_id=room.id, name="r1")
        group = Group(tenant_id=tenant_id, name="new-boards")
        dynamic = Group(tenant_id=tenant_id, name="dyn", kind="dynamic", selector={})
        s.add_all([rack, group, dynamic])
    group_id = group.id
    for bad, code in (("0" * 32, 404), (dynamic.id, 409)):
        r = await central.http.post(
            f"{API}/enrollment-tokens",
            headers=central.admin,
            json={"name": "g", "target_group_id": bad},
        )
        assert r.status_code == code
        assert r.json()["error"]["message"].startswith("target_group_id")
    t = await _token(
        central, target_tags=["lab", "pi5"], target_rack_id=rack.id, target_group_id=group_id
    )
    r = await _enroll(
        central,
        t["token"],
        name="pi-07",
        model="Raspberry Pi 5",
        hardware_profile="pi5-8gb",
        capabilities=["gpio", "pwm", "thermal"],
        agent_version="0.3.0",
        tags=["pi5", "new"],
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["device_secret"].startswith("wds_")
    assert body["target_group_id"] == group_id
    dev = body["device"]
    assert dev["id"] == body["device_id"]
    assert dev["tags"] == ["lab", "pi5"]  # the token's; the board's own are only proposed
    assert dev["proposed_tags"] == ["pi5", "new"]
    assert dev["capabilities"] == ["GPIO", "PWM", "THERMAL"]
    assert dev["agent_version"] == "0.3.0"
    assert dev["location"]["rack_id"] == rack.id
    async with central.db.session() as s:
        members = await groups.static_members(s, tenant_id, group_id)
        assert [m.id for m in members] == [dev["id"]]
    async with central.db.session() as s:
        got = await enrollment.authenticate_device(s, dev["id"], body["device_secret"])
        assert got.name == "pi-07"
    again = await _enroll(central, t["token"], name="pi-08")
    assert again.status_code == 401
    assert "used up" in again.json()["error"]["message"]
    unknown = await _enroll(central, "wet_nope")
    assert unknown.status_code == 401
    assert "unknown enrollment token" in unknown.json()["error"]["message"]
    audit = (
        await central.http.get(f"{API}/audit?action=device.enroll", headers=central.admin)
    ).json()["items"]
    # the unknown token's failure has no tenant; the used-up token's is the tenant's
    assert sorted(e["outcome"] for e in audit) == ["failed", "success"]
    ok = next(e for e in audit if e["outcome"] == "success")
    assert (ok["actor_type"], ok["actor_id"]) == ("enrollment_token", t["id"])
    assert ok["after"]["name"] == "pi-07"
    token = (
        await central.http.get(f"{API}/enrollment-tokens/{t['id']}", headers=central.admin)
    ).json()
    assert (token["uses"], token["state"]) == (1, "used_up")


async def test_expired_and_revoked_tokens(central: Central) -> None:
    expired = await _token(central, expires_in_s=60)
    async with central.db.session() as s:
        await s.execute(
            update(EnrollmentToken)
            .where(EnrollmentToken.id == expired["id"])
            .values(expires_at=1.0)
        )
    r = await _enroll(central, expired["token"])
    assert r.status_code == 401
    assert "expired" in r.json()["error"]["message"]
    revoked = await _token(central, max_uses=None)
    await central.http.delete(f"{API}/enrollment-tokens/{revoked['id']}", headers=central.admin)
    r = await _enroll(central, revoked["token"])
    assert r.status_code == 401
    assert "revoked" in r.json()["error"]["message"]
    assert (await central.http.get(f"{API}/devices", headers=central.admin)).json()["items"] == []
    failed = (
        await central.http.get(
            f"{API}/audit?action=device.enroll&outcome=failed", headers=central.admin
        )
    ).json()["items"]
    assert len(failed) == 2


async def test_multi_use_counting_and_names(central: Central) -> None:
    t = await _token(central, max_uses=3)
    first = await _enroll(central, t["token"], name="same")
    assert first.status_code == 201
    dup = await _enroll(central, t["token"], name="same")
    assert dup.status_code == 409  # the name is taken; the use is not counted
    for _ in range(2):
        assert (await _enroll(central, t["token"])).status_code == 201
    r = await _enroll(central, t["token"])
    assert r.status_code == 401
    assert "3 of 3" in r.json()["error"]["message"]
    unlimited = await _token(central, max_uses=None)
    for _ in range(4):
        assert (await _enroll(central, unlimited["token"])).status_code == 201
    devices = (await central.http.get(f"{API}/devices", headers=central.admin)).json()["items"]
    assert len(devices) == 7
    assert len({d["id"] for d in devices}) == len({d["name"] for d in devices}) == 7


async def test_quota_on_enroll(central: Central) -> None:
    async with central.db.session() as s:
        await s.execute(update(Tenant).values(max_devices=1))
    t = await _token(central, max_uses=5)
    assert (await _enroll(central, t["token"])).status_code == 201
    r = await _enroll(central, t["token"])
    assert r.status_code == 409
    assert "quota" in r.json()["error"]["message"]
    token = (
        await central.http.get(f"{API}/enrollment-tokens/{t['id']}", headers=central.admin)
    ).json()
    assert token["uses"] == 1


async def test_concurrent_enrollment_single_use(central: Central) -> None:
    t = await _token(central)
    results = await asyncio.gather(*(_enroll(central, t["token"]) for _ in range(5)))
    codes = sorted(r.status_code for r in results)
    assert codes == [201, 401, 401, 401, 401], [r.text for r in results]
    devices = (await central.http.get(f"{API}/devices", headers=central.admin)).json()["items"]
    assert len(devices) == 1


async def test_concurrent_enrollment_multi_use_distinct_nums(central: Central) -> None:
    t = await _token(central, max_uses=None)
    results = await asyncio.gather(*(_enroll(central, t["token"]) for _ in range(8)))
    assert all(r.status_code == 201 for r in results), [r.text for r in results]
    secrets = {r.json()["device_secret"] for r in results}
    assert len(secrets) == 8  # never shared between devices


async def test_bulk_enrollment(central: Central) -> None:
    operator = await central.user("operator")
    tenant_id = (await central.http.get(f"{API}/auth/me", headers=central.admin)).json()[
        "tenant_id"
    ]
    async with central.db.session() as s:
        group = Group(tenant_id=tenant_id, name="batch-7")
        s.add(group)
    t = await _token(central, max_uses=250, target_tags=["batch-7"], target_group_id=group.id)
    devices = [{"name": f"board-{i:03}", "model": "pi5"} for i in range(200)]
    r = await central.http.post(
        f"{API}/enroll/bulk", headers=operator, json={"token_id": t["id"], "devices": devices}
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["token_id"] == t["id"]
    assert len(body["items"]) == 200
    assert len({i["device_secret"] for i in body["items"]}) == 200
    assert body["items"][0]["device"]["tags"] == ["batch-7"]
    assert body["items"][0]["target_group_id"] == group.id
    async with central.db.session() as s:
        assert len(await groups.static_members(s, tenant_id, group.id)) == 200
    token = (
        await central.http.get(f"{API}/enrollment-tokens/{t['id']}", headers=central.admin)
    ).json()
    assert token["uses"] == 200
    too_many = await central.http.post(
        f"{API}/enroll/bulk",
        headers=operator,
        json={"token": t["token"], "devices": [{} for _ in range(51)]},
    )
    assert too_many.status_code == 409
    assert "50 uses left, 51 requested" in too_many.json()["error"]["message"]
    taken = await central.http.post(
        f"{API}/enroll/bulk", headers=operator, json={"devices": [{"name": "board-001"}, {}]}
    )
    assert taken.status_code == 409
    repeated = await central.http.post(
        f"{API}/enroll/bulk", headers=operator, json={"devices": [{"name": "x"}, {"name": "x"}]}
    )
    assert repeated.status_code == 409
    mismatch = await central.http.post(
        f"{API}/enroll/bulk",
        headers=operator,
        json={"token_id": t["id"], "token": "wet_other", "devices": [{}]},
    )
    assert mismatch.status_code == 409
    plain = await central.http.post(
        f"{API}/enroll/bulk", headers=operator, json={"devices": [{}, {"tags": ["t"]}]}
    )
    assert plain.status_code == 201
    assert plain.json()["token_id"] is None
    listed = await central.http.get(f"{API}/devices?tag=batch-7&limit=500", headers=central.admin)
    assert len(listed.json()["items"]) == 200
    viewer = await central.user("viewer")
    r = await central.http.post(f"{API}/enroll/bulk", headers=viewer, json={"devices": [{}]})
    assert r.status_code == 403
    other = await central.other_tenant_admin()
    r = await central.http.post(
        f"{API}/enroll/bulk", headers=other, json={"token_id": t["id"], "devices": [{}]}
    )
    assert r.status_code == 404
    r = await central.http.post(
        f"{API}/enroll/bulk", headers=operator, json={"devices": [{}] * 1001}
    )
    assert r.status_code == 422
    audit = (
        await central.http.get(f"{API}/audit?action=device.enroll&limit=500", headers=central.admin)
    ).json()["items"]
    assert len(audit) == 202


async def test_credentials_rotate_and_revoke(central: Central) -> None:
    t = await _token(central)
    first = (await _enroll(central, t["token"])).json()
    device_id, old = first["device_id"], first["device_secret"]
    operator = await central.user("operator")
    r = await central.http.post(
        f"{API}/devices/{device_id}/credentials/rotate", headers=operator, json={}
    )
    assert r.status_code == 201, r.text
    new = r.json()["device_secret"]
    assert new != old
    async with central.db.session() as s:
        assert (await enrollment.authenticate_device(s, device_id, new)).id == device_id
    async with central.db.session() as s:
        await _refused(s, device_id, old)
    graced = await central.http.post(
        f"{API}/devices/{device_id}/credentials/rotate", headers=operator, json={"grace_s": 600}
    )
    newest = graced.json()["device_secret"]
    async with central.db.session() as s:
        await enrollment.authenticate_device(s, device_id, new)  # still valid for 10 minutes
        await enrollment.authenticate_device(s, device_id, newest)
    creds = (
        await central.http.get(f"{API}/devices/{device_id}/credentials", headers=operator)
    ).json()
    assert sorted(c["active"] for c in creds) == [False, True, True]
    assert all(c["last_used_at"] is not None for c in creds if c["active"])
    r = await central.http.post(f"{API}/devices/{device_id}/credentials/revoke", headers=operator)
    assert r.json() == {"device_id": device_id, "revoked": 2}
    async with central.db.session() as s:
        await _refused(s, device_id, newest)
        await _refused(s, device_id, new)
    bad = await central.http.post(
        f"{API}/devices/{device_id}/credentials/rotate",
        headers=operator,
        json={"grace_s": 8 * 86_400},
    )
    assert bad.status_code == 422


async def _refused(session: Any, device_id: str, secret: str) -> None:
    from wrale.shared.errors import AuthError

    try:
        await enrollment.authenticate_device(session, device_id, secret)
    except AuthError:
        return
    raise AssertionError("the credential was accepted")
