"""The telemetry API through the real app on SQLite and PostgreSQL: upload, raw and stepped
series, ISO and unix times, newest values, aggregates over a rack, a group and devices,
limits (422), roles and tenants (another tenant's device is a 404)."""

from __future__ import annotations

import itertools
from typing import Any

from tests.conftest import Central

API = "/api/v1"
T0 = 1_789_999_200  # 2026-09-21T14:00:00Z, a whole hour
ISO_T0 = "2026-09-21T14:00:00Z"
_num = itertools.count(700_000)


async def _tenant(c: Central, headers: dict[str, str]) -> str:
    return str((await c.http.get(f"{API}/auth/me", headers=headers)).json()["tenant_id"])


async def _device(c: Central, tenant_id: str, **fields: Any) -> str:
    from wrale.fleet.brain.models import Device

    async with c.db.session() as s:
        d = Device(tenant_id=tenant_id, num=next(_num), name=f"pi-{next(_num)}", **fields)
        s.add(d)
        await s.flush()
        return d.id


async def _upload(
    c: Central, device_id: str, seq: int, points: list[tuple[str, float, float]], **kw: Any
) -> Any:
    body = {"seq": seq, "points": [{"metric": m, "ts": t, "value": v} for m, t, v in points]}
    headers = kw.get("headers", c.admin)
    return await c.http.post(f"{API}/devices/{device_id}/telemetry", json=body, headers=headers)


async def _get(c: Central, path: str, headers: dict[str, str] | None = None, **params: Any) -> Any:
    return await c.http.get(f"{API}{path}", params=params, headers=headers or c.admin)


async def test_upload_and_query(central: Central) -> None:
    c = central
    dev = await _device(c, await _tenant(c, c.admin))
    pts = [("cpu_temp_c", T0 + 10 * i, 40.0 + i) for i in range(12)]  # two minutes
    r = await _upload(c, dev, 1, pts)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "stored": True,
        "duplicate": False,
        "acked_seq": 1,
        "last_seq": 1,
        "points": 12,
    }
    again = (await _upload(c, dev, 1, pts)).json()
    assert again["duplicate"]
    assert again["points"] == 0

    raw = await _get(c, f"/devices/{dev}/telemetry", metric="cpu_temp_c", start=T0, end=T0 + 20)
    assert raw.status_code == 200, raw.text
    body = raw.json()
    assert body["metric"] == "cpu_temp_c"
    assert body["device_id"] == dev
    assert body["step"] is None
    assert body["columns"] == ["ts", "value"]
    assert body["points"] == [[T0, 40.0], [T0 + 10, 41.0], [T0 + 20, 42.0]]

    iso = await _get(
        c, f"/devices/{dev}/telemetry", metric="cpu_temp_c", start=ISO_T0, end=T0 + 119, step="1m"
    )
    assert iso.status_code == 200, iso.text
    assert iso.json()["columns"] == ["ts", "mean", "min", "max", "last"]
    assert iso.json()["points"] == [[T0, 42.5, 40.0, 45.0, 45.0], [T0 + 60, 48.5, 46.0, 51.0, 51.0]]
    plus = await _get(
        c,
        f"/devices/{dev}/telemetry",
        metric="cpu_temp_c",
        start="2026-09-21T16:00:00+02:00",
        end="2026-09-21T14:01:00",  # no zone: UTC
        step="1h",
    )
    assert plus.status_code == 200, plus.text
    assert plus.json()["points"] == [[T0, 45.5, 40.0, 51.0, 51.0]]
    assert plus.json()["start"] == T0
    assert plus.json()["end"] == T0 + 60

    latest = await _get(c, f"/devices/{dev}/telemetry/latest")
    assert latest.json() == {
        "device_id": dev,
        "metrics": {"cpu_temp_c": {"ts": T0 + 110, "value": 51.0}},
    }


def test_times_are_unix_seconds_or_iso_8601() -> None:
    import pytest

    from wrale.shared.errors import InvalidRequestError
    from wrale.user.api.routes.telemetry import parse_time

    assert parse_time(None, "start", 5.0) == 5.0
    assert parse_time("", "start", 5.0) == 5.0
    assert parse_time("1789999200.25", "start", 0) == T0 + 0.25
    assert parse_time(ISO_T0, "start", 0) == T0
    assert parse_time("2026-09-21T14:00:00", "start", 0) == T0  # no zone: UTC
    assert parse_time("2026-09-21T16:00:00+02:00", "start", 0) == T0
    assert parse_time("2026-09-21T16:00:00 02:00", "start", 0) == T0  # "+" decoded as " "
    with pytest.raises(InvalidRequestError):
        parse_time("2026-02-30", "start", 0)


async def test_default_range_is_the_last_hour(central: Central) -> None:
    import time

    c = central
    dev = await _device(c, await _tenant(c, c.admin))
    now = time.time()
    await _upload(c, dev, 1, [("power_w", now - 7200, 1.0), ("power_w", now - 60, 2.0)])
    r = await _get(c, f"/devices/{dev}/telemetry", metric="power_w")
    assert [p[1] for p in r.json()["points"]] == [2.0]


async def test_validation_and_limits(central: Central) -> None:
    c = central
    dev = await _device(c, await _tenant(c, c.admin))
    for bad in (
        [("Bad-Name", T0, 1.0)],
        [("cpu_temp_c", 1e12, 1.0)],
    ):
        r = await _upload(c, dev, 1, bad)
        assert r.status_code == 422, r.text
    r = await c.http.post(
        f"{API}/devices/{dev}/telemetry",
        json={"seq": 1, "points": [{"metric": "x_c", "ts": T0, "value": 1, "extra": 1}]},
        headers=c.admin,
    )
    assert r.status_code == 422
    r = await c.http.post(
        f"{API}/devices/{dev}/telemetry",
        content=b'{"seq": 1, "points": [{"metric": "x_c", "ts": 1789999200, "value": NaN}]}',
        headers={**c.admin, "content-type": "application/json"},
    )
    assert r.status_code == 422
    path = f"/devices/{dev}/telemetry"
    for params in (
        {"metric": "cpu_temp_c", "start": "yesterday"},
        {"metric": "cpu_temp_c", "start": T0 + 10, "end": T0},
        {"metric": "cpu_temp_c", "step": "2m"},
        {"metric": "CPU"},
        {"metric": "cpu_temp_c", "start": "1e300"},
        {"metric": "cpu_temp_c", "start": T0, "end": T0 + 86400 * 8, "step": "1m"},
    ):
        r = await _get(c, path, **params)
        assert r.status_code == 422, (params, r.text)
    too_many = await _get(c, path, metric="cpu_temp_c", start=T0, end=T0 + 86400 * 8, step="1m")
    assert "coarser step" in too_many.json()["error"]["message"]
    assert (await _get(c, path)).status_code == 422  # metric is required


async def test_roles_and_tenants(central: Central) -> None:
    c = central
    tenant = await _tenant(c, c.admin)
    dev = await _device(c, tenant)
    viewer, operator = await c.user("viewer"), await c.user("operator")
    other = await c.other_tenant_admin()
    assert (await _upload(c, dev, 1, [("x_c", T0, 1.0)], headers=viewer)).status_code == 403
    assert (await _upload(c, dev, 1, [("x_c", T0, 1.0)], headers=operator)).status_code == 200
    path = f"/devices/{dev}/telemetry"
    assert (await _get(c, path, viewer, metric="x_c", start=T0, end=T0 + 1)).status_code == 200
    assert (await _get(c, path, other, metric="x_c", start=T0, end=T0 + 1)).status_code == 404
    assert (await _get(c, f"{path}/latest", other)).status_code == 404
    assert (await _upload(c, dev, 2, [("x_c", T0, 1.0)], headers=other)).status_code == 404
    assert (await _get(c, "/devices/nope/telemetry", metric="x_c")).status_code == 404
    r = await _get(c, "/telemetry", other, metric="x_c", device_id=dev)
    assert r.status_code == 404
    assert (await c.http.get(f"{API}{path}/latest")).status_code == 401


async def test_aggregate_over_rack_group_and_devices(central: Central) -> None:
    c = central
    tenant = await _tenant(c, c.admin)
    site = (await c.http.post(f"{API}/sites", json={"name": "s"}, headers=c.admin)).json()
    room = (
        await c.http.post(
            f"{API}/rooms", json={"site_id": site["id"], "name": "r"}, headers=c.admin
        )
    ).json()
    rack = (
        await c.http.post(
            f"{API}/racks", json={"room_id": room["id"], "name": "A", "units": 42}, headers=c.admin
        )
    ).json()
    a = await _device(c, tenant, rack_id=rack["id"], slot_u=1)
    b = await _device(c, tenant, rack_id=rack["id"], slot_u=2)
    lone = await _device(c, tenant)
    await _upload(c, a, 1, [("power_w", T0 + 1, 4.0), ("power_w", T0 + 2, 6.0)])
    await _upload(c, b, 1, [("power_w", T0 + 3, 2.0), ("power_w", T0 + 65, 3.0)])
    await _upload(c, lone, 1, [("power_w", T0 + 3, 100.0)])

    r = await _get(c, "/telemetry", metric="power_w", rack_id=rack["id"], start=T0, end=T0 + 119)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["rack_id"], body["group_id"], body["devices"], body["step"]) == (
        rack["id"],
        None,
        2,
        "1m",
    )
    assert body["columns"] == ["ts", "mean", "min", "max", "devices"]
    assert body["points"] == [[T0, 4.0, 2.0, 6.0, 2], [T0 + 60, 3.0, 3.0, 3.0, 1]]

    r = await c.http.get(
        f"{API}/telemetry",
        params=[
            ("metric", "power_w"),
            ("device_id", a),
            ("device_id", lone),
            ("start", T0),
            ("end", T0 + 119),
            ("step", "1h"),
        ],
        headers=c.admin,
    )
    assert r.json()["points"] == [[T0, 110 / 3, 4.0, 100.0, 2]]

    g = await c.http.post(f"{API}/groups", json={"name": "lab"}, headers=c.admin)
    assert g.status_code == 201, g.text
    gid = g.json()["id"]
    await c.http.post(
        f"{API}/groups/{gid}/members", json={"device_ids": [b, lone]}, headers=c.admin
    )
    r = await _get(c, "/telemetry", metric="power_w", group_id=gid, start=T0, end=T0 + 59)
    assert r.status_code == 200, r.text
    assert r.json()["points"] == [[T0, 51.0, 2.0, 100.0, 2]]

    both = await _get(
        c, "/telemetry", metric="power_w", rack_id=rack["id"], group_id=gid, start=T0, end=T0 + 59
    )
    assert both.json()["points"] == [[T0, 2.0, 2.0, 2.0, 1]]  # filters intersect: b
    fleet = await _get(c, "/telemetry", metric="power_w", start=T0, end=T0 + 59)
    assert fleet.json()["devices"] == 3
    assert fleet.json()["points"] == [[T0, 28.0, 2.0, 100.0, 3]]
    assert (await _get(c, "/telemetry", metric="power_w", rack_id="0" * 32)).status_code == 404
    assert (await _get(c, "/telemetry", metric="power_w", group_id="0" * 32)).status_code == 404


async def test_a_stored_batch_is_summarised_on_the_bus(central: Central) -> None:
    c = central
    tenant = await _tenant(c, c.admin)
    dev = await _device(c, tenant)
    bus = c.app.state.wrale.bus
    async with bus.subscribe(tenant) as queue:
        await _upload(c, dev, 1, [("power_w", T0, 3.0), ("power_w", T0 + 1, 4.0)])
        await _upload(c, dev, 1, [("power_w", T0, 3.0)])  # duplicate: no event
        event = queue.get_nowait()
        assert queue.empty()
    assert event.kind == "telemetry.summary"
    assert event.data == {
        "device_id": dev,
        "seq": 1,
        "points": 2,
        "latest": {"power_w": {"ts": T0 + 1, "value": 4.0}},
    }
