"""Device twins: the pure merge patch, composition and diff; effective policies flowing
into desired state (fleet, group incl. dynamic, device) with ``twin.desired`` published
only after commit; stale reports ignored; version preconditions and validation of writes."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from wrale.fleet.brain.bus import BusEvent, EventBus
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import AuditEntry, Device, Tenant
from wrale.fleet.brain.services import groups, policies, twin, twin_recompose
from wrale.fleet.brain.services.principal import ForbiddenError, Principal, Role
from wrale.shared.errors import ConflictError, InvalidRequestError

_num = itertools.count(910_000)


async def world(db: Database) -> tuple[Principal, dict[str, str]]:
    """A tenant, an admin, three devices; ``cams`` is a dynamic group (tag cam)."""
    async with db.session() as s:
        t = Tenant(name=f"t-{next(_num)}")
        s.add(t)
        await s.flush()
        admin = Principal(t.id, Role.ADMIN, "user", "u1", "alice")
        ids: dict[str, str] = {}
        for name, tags in (("a", ["cam"]), ("b", ["cam"]), ("c", [])):
            d = Device(tenant_id=t.id, num=next(_num), name=name, tags=tags, status="online")
            s.add(d)
            await s.flush()
            ids[name] = d.id
        cams = await groups.create_group(
            s, admin, "cams", kind="dynamic", selector={"tags_all": ["cam"]}
        )
        ids["cams"] = cams.id
    return admin, ids


def drain(q: asyncio.Queue[BusEvent]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    while not q.empty():
        e = q.get_nowait()
        out.append((e.kind, e.data))
    return out


def test_merge_patch_compose_and_diff_are_pure() -> None:
    # RFC 7386 appendix A, the cases that matter: merge, null deletes, arrays replace
    assert twin.merge_patch({"a": "b"}, {"a": "c"}) == {"a": "c"}
    assert twin.merge_patch({"a": "b"}, {"a": None}) == {}
    assert twin.merge_patch({"a": [{"b": "c"}]}, {"a": [1]}) == {"a": [1]}
    assert twin.merge_patch({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}) == {"a": {"b": "d"}}
    assert twin.merge_patch({"e": None}, {"a": 1}) == {"e": None, "a": 1}
    assert twin.merge_patch({}, {"a": {"bb": {"ccc": None}}}) == {"a": {"bb": {}}}
    assert twin.merge_patch({"a": "foo"}, "bar") == "bar"
    target = {"fan": {"override_pct": 50.0}}
    twin.merge_patch(target, {"fan": None})
    assert target == {"fan": {"override_pct": 50.0}}  # inputs are never changed

    effective = {k: policies.defaults(k) for k in policies.KINDS}
    doc = twin.compose(effective, {"thermal": {"cpu_warning_c": 65}, "fan": {"override_pct": 40}})
    assert doc["thermal"]["cpu_warning_c"] == 65
    assert doc["thermal"]["curve"] == effective["thermal"]["curve"]
    assert doc["fan"] == {"override_pct": 40}
    assert doc["config"] == {}
    assert "gpio" not in doc
    assert "tamper" not in doc

    reported = {
        **doc,
        "thermal": {**doc["thermal"], "cpu_warning_c": 65.0},  # 65 == 65.0
        "fan": {"override_pct": None},
        "hardware": {"backend": "sim"},  # extra reported facts are not differences
    }
    del reported["sampling"]
    changes = twin.diff(doc, reported, {"fan.override_pct": "above the safe maximum"})
    by_path = {c["path"]: c for c in changes}
    assert set(by_path) == {"fan.override_pct", "sampling.interval_s", "sampling.report_interval_s"}
    assert by_path["fan.override_pct"]["rejected"] == "above the safe maximum"
    assert by_path["fan.override_pct"]["missing"] is False
    assert by_path["sampling.interval_s"] == {
        "path": "sampling.interval_s",
        "desired": 1.0,
        "reported": None,
        "missing": True,
        "rejected": None,
    }
    assert twin.diff(doc, doc, {}) == []


async def recompose(db: Database, bus: EventBus) -> int:
    """Run the background recomposition until nothing is queued (as the duty would)."""
    return await twin_recompose.recompose_pending(db, bus, budget_s=None)


async def test_policy_changes_flow_into_desired_after_commit(database: Database) -> None:
    admin, ids = await world(database)
    bus = EventBus()
    async with bus.subscribe(admin.tenant_id) as q:
        async with database.session() as s:
            dev = {k: await s.get(Device, ids[k]) for k in "abc"}
            versions = {k: (await twin.desired_for(s, d))[0] for k, d in dev.items() if d}
        assert versions == {"a": 1, "b": 1, "c": 1}

        async with database.session() as s:
            fleet = await policies.create_policy(
                s, admin, "fleet", None, "sampling", {"interval_s": 2.0}, bus
            )
            queued = policies.recompose_of(s)
            assert queued is not None
            assert (queued["state"], queued["total"], queued["done"]) == ("queued", 3, 0)
        assert drain(q) == []  # the fleet's twins are recomposed in the background
        assert await recompose(database, bus) == 3
        events = drain(q)
        assert sorted(d["version"] for k, d in events if k == "twin.desired") == [2, 2, 2]
        async with database.session() as s:
            done = await twin_recompose.status(s, admin.tenant_id, queued["id"])
        assert (done["state"], done["done"], done["changed"]) == ("done", 3, 3)

        async with database.session() as s:  # a group policy reaches the dynamic members only
            grp = await policies.create_policy(
                s, admin, "group", ids["cams"], "thermal", {"cpu_warning_c": 60.0}, bus
            )
        await recompose(database, bus)
        assert sorted(d["device_id"] for _, d in drain(q)) == sorted([ids["a"], ids["b"]])

        async with database.session() as s:
            t = await twin.get_twin(s, admin.tenant_id, ids["a"])
            assert (t.desired_version, t.desired["thermal"]["cpu_warning_c"]) == (3, 60.0)
            assert t.desired["sampling"]["interval_s"] == 2.0
            c = await twin.get_twin(s, admin.tenant_id, ids["c"])
            assert (c.desired_version, c.desired["thermal"]["cpu_warning_c"]) == (2, 70.0)
            # the same document again changes nothing, so nothing is bumped or published;
            # a device's policy recomposes its one twin within the request
            await policies.update_policy(s, admin, fleet.id, {"interval_s": 2.0}, bus=bus)
            await policies.create_policy(
                s, admin, "device", ids["c"], "power", {"low_battery_pct": 30.0}, bus
            )
            inline = policies.recompose_of(s)
            assert inline is not None
            assert (inline["id"], inline["state"], inline["changed"]) == (None, "done", 1)
        assert drain(q) == [("twin.desired", {"device_id": ids["c"], "version": 3})]
        await recompose(database, bus)
        assert drain(q) == []

        async def delete_then_fail() -> None:
            async with database.session() as s:
                await policies.delete_policy(s, admin, grp.id, bus)
                raise ConflictError("changed my mind")

        with pytest.raises(ConflictError):  # a failed transaction queues and publishes nothing
            await delete_then_fail()
        assert await recompose(database, bus) == 0
        assert drain(q) == []

        async with database.session() as s:
            await policies.delete_policy(s, admin, grp.id, bus)
        await recompose(database, bus)
        assert len(drain(q)) == 2
        async with database.session() as s:
            a = await twin.get_twin(s, admin.tenant_id, ids["a"])
            assert (a.desired_version, a.desired["thermal"]["cpu_warning_c"]) == (4, 70.0)
            await policies.create_policy(
                s, admin, "group", ids["cams"], "security", {"level": "high"}, bus
            )
            # a device joining a group later is composed in when next read (e.g. on connect)
            d = await s.get(Device, ids["c"])
            assert d is not None
            assert (await twin.desired_for(s, d))[0] == 3
            d.tags = ["cam"]
            version, doc = await twin.desired_for(s, d)
            assert (version, doc["security"]["level"]) == (4, "high")


async def test_writes_reports_conflicts_and_validation(database: Database) -> None:
    admin, ids = await world(database)
    operator = Principal(admin.tenant_id, Role.OPERATOR, "user", "u2", "olga")
    viewer = Principal(admin.tenant_id, Role.VIEWER, "user", "u3", "vic")
    bus = EventBus()
    async with database.session() as s:
        t = await twin.patch_twin(
            s, operator, ids["a"], 1, {"fan": {"override_pct": 55, "duration_s": 600}}, bus
        )
        assert (t.desired_version, t.desired["fan"]) == (2, {"override_pct": 55, "duration_s": 600})
    async with database.session() as s:
        with pytest.raises(ConflictError) as stale:
            await twin.patch_twin(s, operator, ids["a"], 1, {"fan": None})
        assert stale.value.details["version"] == 2
        with pytest.raises(ForbiddenError):
            await twin.patch_twin(s, viewer, ids["a"], 2, {"fan": None})
    bad: list[tuple[dict[str, Any], str]] = [
        ({"thermal": {"cpu_warning_c": 500}}, "desired.thermal.cpu_warning_c"),
        ({"thermal": {"cpu_warning_c": 84, "cpu_critical_c": 83}}, "desired.thermal:"),
        ({"thermal": {"cpu_warning_c": "70"}}, "desired.thermal.cpu_warning_c"),  # no coercion
        ({"sampling": {"every": 3}}, "desired.sampling.every"),
        ({"fan": {"override_pct": 120}}, "desired.fan.override_pct"),
        ({"tamper": {"level": "extreme"}}, "desired.tamper.level"),
        ({"gpio": {"17": {"value": 2}}}, "desired.gpio.17.value"),
        ({"gpio": {"18": {"frequency_hz": 0, "duty_percent": 50}}}, "desired.gpio.18.frequency_hz"),
        ({"config": {"bad key": 1}}, "desired.config.bad key"),
        ({"weather": {}}, "desired.weather"),
        ({"power": 3}, "desired.power"),
    ]
    for patch, where in bad:
        async with database.session() as s:
            with pytest.raises(InvalidRequestError) as err:
                await twin.patch_twin(s, operator, ids["a"], 2, patch)
            assert err.value.message.startswith(where), (patch, err.value.message)

    async with database.session() as s:  # merge patch: null deletes, objects merge
        t = await twin.patch_twin(
            s,
            operator,
            ids["a"],
            2,
            {
                "fan": {"duration_s": None},
                "thermal": {"profile": "cool"},
                "gpio": {"17": {"value": 1}, "18": {"frequency_hz": 25000, "duty_percent": 40}},
            },
        )
        assert t.overrides == {
            "fan": {"override_pct": 55},
            "thermal": {"profile": "cool"},
            "gpio": {"17": {"value": 1}, "18": {"frequency_hz": 25000, "duty_percent": 40}},
        }
        t = await twin.patch_twin(s, operator, ids["a"], 3, {"gpio": {"18": None}, "fan": None})
        assert "fan" not in t.desired
        assert t.desired["gpio"] == {"17": {"value": 1}}
        assert t.desired_version == 4
        dev = await s.get(Device, ids["a"])
        assert dev is not None
        doc = {**t.desired, "agent_version": "1.0", "applied_desired_version": 4}
        doc["thermal"] = {**doc["thermal"], "profile": "balance"}
        await twin.record_reported(
            s, dev, 5, doc, 4, {"thermal.profile": "not on this board"}, 100.0, bus
        )
        await twin.record_reported(s, dev, 5, {}, 0, {}, 101.0, bus)  # a redelivery
        await twin.record_reported(s, dev, 3, {}, 0, {}, 102.0, bus)  # an old one
    async with database.session() as s:
        t = await twin.get_twin(s, admin.tenant_id, ids["a"])
        view = twin.twin_view(t)
        assert (view["reported"]["version"], view["reported"]["at"]) == (5, 100.0)
        assert view["applied_desired_version"] == 4
        assert view["in_sync"] is False
        assert view["diff"] == [
            {
                "path": "thermal.profile",
                "desired": "cool",
                "reported": "balance",
                "missing": False,
                "rejected": "not on this board",
            }
        ]
        dev = await s.get(Device, ids["a"])
        assert dev is not None
        await twin.record_reported(s, dev, 6, {**t.desired, "agent_version": "1.0"}, 4, {}, 103.0)
    async with database.session() as s:
        t = await twin.get_twin(s, admin.tenant_id, ids["a"])
        assert twin.twin_view(t)["in_sync"] is True
        # a reinstalled board: its reported counter restarts and is believed again
        await twin.agent_connected(s, dev, 0)
        await twin.record_reported(s, dev, 1, {"agent_version": "1.1"}, 0, {}, 104.0)
    async with database.session() as s:
        t = await twin.get_twin(s, admin.tenant_id, ids["a"])
        assert (t.reported_version, t.reported) == (1, {"agent_version": "1.1"})
        from sqlalchemy import select

        actions = (
            await s.scalars(select(AuditEntry.action).where(AuditEntry.resource_id == ids["a"]))
        ).all()
        assert list(actions) == ["twin.update"] * 3
