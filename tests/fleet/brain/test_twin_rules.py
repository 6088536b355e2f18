"""Twin authorisation: the desired document's tamper and security sections need the admin
role (as the ``disarm`` command does), and while the device reports a tamper lockdown no
twin change may reach tamper detection or the actuators the lockdown holds (as commands
are refused). Through the service, so the API, the dashboard and the CLI all get it."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from tests.conftest import Central
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Device, Tenant
from wrale.fleet.brain.services import twin, twin_rules
from wrale.fleet.brain.services.principal import ForbiddenError, Principal, Role
from wrale.shared.errors import LockdownError

_num = itertools.count(930_000)
LOCKED = {"tamper": {"armed": True, "level": "high", "lockdown": True}, "agent_version": "1"}


async def world(db: Database) -> tuple[Principal, Principal, str]:
    """A tenant with an admin, an operator and one armed device."""
    async with db.session() as s:
        t = Tenant(name=f"t-{next(_num)}")
        s.add(t)
        await s.flush()
        d = Device(tenant_id=t.id, num=next(_num), name="door", tags=[], status="online")
        s.add(d)
        await s.flush()
        admin = Principal(t.id, Role.ADMIN, "user", "u1", "alice")
        operator = Principal(t.id, Role.OPERATOR, "user", "u2", "olga")
        await twin.patch_twin(s, admin, d.id, 1, {"tamper": {"armed": True, "level": "high"}})
        return admin, operator, d.id


async def lock_down(db: Database, device_id: str) -> None:
    async with db.session() as s:
        device = await s.get(Device, device_id)
        assert device is not None
        await twin.record_reported(s, device, 1, LOCKED, 2, {}, 100.0)


async def desired(db: Database, tenant_id: str, device_id: str) -> tuple[int, dict[str, Any]]:
    async with db.session() as s:
        t = await twin.get_twin(s, tenant_id, device_id)
        return t.desired_version, t.desired


def test_every_section_has_a_role_and_security_ones_need_admin() -> None:
    assert set(twin_rules.SECTION_ROLES) == set(twin.SECTIONS)
    assert twin_rules.role_for("tamper.armed") is Role.ADMIN
    assert twin_rules.role_for("security.quiet_hours") is Role.ADMIN
    assert twin_rules.role_for("fan.override_pct") is Role.OPERATOR
    assert twin_rules.role_for("thermal") is Role.OPERATOR
    # what changed, by path: the same value again is no change, removal is one
    before = {"tamper": {"armed": True}, "fan": {"override_pct": 40}}
    assert twin_rules.changed_paths(before, {**before}) == set()
    gone = twin_rules.changed_paths(before, {"fan": {"override_pct": 40}})
    assert gone == {"tamper", "tamper.armed"}
    assert twin_rules.changed_paths({}, {"tamper": {}}) == {"tamper"}


@pytest.mark.parametrize(
    "patch",
    [
        {"tamper": {"armed": False}},
        {"tamper": {"level": "low"}},  # HIGH -> LOW: no lockdown on the next intrusion
        {"tamper": None},
        {"security": {"armed": False}},
        {"security": {"quiet_hours": "00:00-23:59"}},  # motion ignored all day
        {"security": {"debounce_s": 60}},
    ],
)
async def test_an_operator_cannot_weaken_tamper_protection(
    database: Database, patch: dict[str, Any]
) -> None:
    admin, operator, device_id = await world(database)
    before = await desired(database, admin.tenant_id, device_id)
    async with database.session() as s:
        with pytest.raises(ForbiddenError, match="admin role") as err:
            await twin.patch_twin(s, operator, device_id, before[0], patch)
        assert err.value.details["needed"] == "admin"
    assert await desired(database, admin.tenant_id, device_id) == before
    async with database.session() as s:  # the admin can
        t = await twin.patch_twin(s, admin, device_id, before[0], patch)
        assert t.desired_version == before[0] + 1


async def test_an_operator_may_resend_what_is_there_and_change_the_rest(
    database: Database,
) -> None:
    _, operator, device_id = await world(database)
    async with database.session() as s:
        t = await twin.patch_twin(
            s,
            operator,
            device_id,
            2,
            {"tamper": {"armed": True, "level": "high"}, "fan": {"override_pct": 60}},
        )
        assert t.desired["tamper"] == {"armed": True, "level": "high"}
        assert t.desired["fan"] == {"override_pct": 60}


@pytest.mark.parametrize(
    "patch",
    [
        {"tamper": {"armed": False}},  # lifting the lockdown: the disarm command does that
        {"tamper": {"level": "low"}},
        {"security": {"level": "low"}},
        {"fan": {"override_pct": 100}},  # set_fan is refused in lockdown
        {"gpio": {"17": {"value": 1}}},
    ],
)
async def test_a_lockdown_freezes_security_and_actuator_sections(
    database: Database, patch: dict[str, Any]
) -> None:
    admin, _, device_id = await world(database)
    await lock_down(database, device_id)
    before = await desired(database, admin.tenant_id, device_id)
    async with database.session() as s:
        with pytest.raises(LockdownError, match="tamper lockdown") as err:
            await twin.patch_twin(s, admin, device_id, before[0], patch)
        assert err.value.details["refused"] == "lockdown"
    assert await desired(database, admin.tenant_id, device_id) == before


async def test_a_lockdown_leaves_thermal_and_config_changes_open(database: Database) -> None:
    _, operator, device_id = await world(database)
    await lock_down(database, device_id)
    async with database.session() as s:
        t = await twin.patch_twin(
            s, operator, device_id, 2, {"thermal": {"profile": "cool"}, "config": {"k": 1}}
        )
        assert t.desired["thermal"]["profile"] == "cool"


async def test_the_api_answers_403_and_409_with_the_reason(central: Central) -> None:
    r = await central.http.post("/api/v1/devices", headers=central.admin, json={"name": "door"})
    device_id = r.json()["id"]
    url = f"/api/v1/devices/{device_id}/twin"
    operator = await central.user("operator")
    arm = {"version": 1, "desired": {"tamper": {"armed": True, "level": "high"}}}
    assert (await central.http.patch(url, headers=central.admin, json=arm)).status_code == 200
    disarm = {"version": 2, "desired": {"tamper": {"armed": False}}}
    r = await central.http.patch(url, headers=operator, json=disarm)
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "forbidden"
    assert "desired.tamper" in r.json()["error"]["message"]
    r = await central.http.get(url, headers=central.admin)
    assert r.json()["desired"]["doc"]["tamper"] == {"armed": True, "level": "high"}
    await lock_down(central.db, device_id)
    r = await central.http.patch(url, headers=central.admin, json=disarm)
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "lockdown"
    assert "disarm command" in r.json()["error"]["message"]
