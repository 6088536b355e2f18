"""Config templates: rendering and its validation (pure, errors name the variable), and
deployments into twins with per-device status settled from what devices report,
superseding and rollback."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Device, Tenant
from wrale.fleet.brain.services import groups, templates, twin
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.shared.errors import ConflictError, InvalidRequestError

_num = itertools.count(930_000)

BODY = {
    "ntp": {"servers": ["${ntp}"], "port": "${port}"},
    "banner": "site ${site} ($${literal})",
    "debug": "${debug}",
    "optional": "${note}",
}
VARIABLES: dict[str, Any] = {
    "ntp": {"type": "str", "min": 3, "max": 64},
    "port": {"type": "int", "min": 1, "max": 65535, "default": 123},
    "site": {"type": "str", "choices": ["lab", "field"]},
    "debug": {"type": "bool", "default": False},
    "note": {"type": "str", "required": False},
}


def test_render_and_its_validation() -> None:
    schema = templates.check_schema(VARIABLES)
    assert schema["note"]["required"] is False
    assert schema["ntp"]["required"] is True
    assert schema["port"]["required"] is False
    out = templates.render(BODY, schema, {"ntp": "pool.ntp.org", "site": "lab"})
    assert out == {
        "ntp": {"servers": ["pool.ntp.org"], "port": 123},  # whole-string keeps the type
        "banner": "site lab (${literal})",
        "debug": False,
    }
    out = templates.render(
        BODY, schema, {"ntp": "a.b", "site": "field", "port": 8123.0, "note": "x"}
    )
    assert (out["ntp"]["port"], out["optional"]) == (8123, "x")
    for given, where in (
        ({"site": "lab"}, "variables.ntp: required"),
        ({"ntp": "ab", "site": "lab"}, "variables.ntp: must be at least 3 characters"),
        ({"ntp": "abc", "site": "moon"}, "variables.site: must be one of"),
        ({"ntp": "abc", "site": "lab", "port": 70000}, "variables.port: must be at most 65535"),
        ({"ntp": "abc", "site": "lab", "port": 1.5}, "variables.port: must be an integer"),
        ({"ntp": "abc", "site": "lab", "debug": "yes"}, "variables.debug: must be true or false"),
        ({"ntp": "abc", "site": "lab", "colour": 1}, "variables.colour: not a variable"),
    ):
        with pytest.raises(InvalidRequestError) as err:
            templates.render(BODY, schema, given)
        assert err.value.message.startswith(where), err.value.message
        assert err.value.details["variable"] == where.split(".")[1].split(":")[0]
    for body, variables, where in (
        ({"a": "${missing}"}, {}, "body.a: ${missing} is not declared"),
        ({"a": ["${ bad }"]}, {}, "body.a.0: ${ bad } is not a variable name"),
        ({}, {}, "body: a non-empty object"),
        ({"bad key": 1}, {}, "body.bad key"),
        ({"a": 1}, {"x": {"type": "date"}}, "variables.x: type must be one of"),
        ({"a": 1}, {"x": {"type": "int", "min": 5, "max": 1}}, "variables.x: min must not"),
        ({"a": 1}, {"x": {"type": "int", "default": "7"}}, "variables.x: must be an integer"),
        ({"a": 1}, {"x": {"type": "int", "step": 2}}, "variables.x: unknown key(s) step"),
        ({"a": 1}, {"1x": {"type": "int"}}, "variables.1x: names are"),
    ):
        with pytest.raises(InvalidRequestError) as err:
            templates.check_template(body, variables)
        assert err.value.message.startswith(where), err.value.message


async def world(db: Database) -> tuple[Principal, dict[str, str]]:
    async with db.session() as s:
        t = Tenant(name=f"t-{next(_num)}")
        s.add(t)
        await s.flush()
        op = Principal(t.id, Role.OPERATOR, "user", "u1", "olga")
        ids: dict[str, str] = {}
        for name in ("a", "b", "gone"):
            status = "decommissioned" if name == "gone" else "online"
            d = Device(tenant_id=t.id, num=next(_num), name=name, tags=["edge"], status=status)
            s.add(d)
            await s.flush()
            ids[name] = d.id
        g = await groups.create_group(
            s, op, "edge", kind="dynamic", selector={"tags_all": ["edge"]}
        )
        ids["group"] = g.id
    return op, ids


async def report(db: Database, device_id: str, version: int, config: Any, rejected: Any) -> None:
    """The device reports the config it runs, having applied the current desired version."""
    async with db.session() as s:
        d = await s.get(Device, device_id)
        assert d is not None
        t = await twin.get_twin(s, d.tenant_id, d.id)
        doc = {**t.desired, "config": config}
        await twin.record_reported(s, d, version, doc, t.desired_version, rejected, 1.0)


async def statuses(db: Database, deployment_id: str) -> dict[str, tuple[str, str | None]]:
    from sqlalchemy import select

    from wrale.fleet.brain.models.templates import ConfigDeploymentDevice

    async with db.session() as s:
        rows = await s.scalars(
            select(ConfigDeploymentDevice).where(
                ConfigDeploymentDevice.deployment_id == deployment_id
            )
        )
        return {r.device_id: (r.status, r.reason) for r in rows}


async def test_deploy_status_supersede_and_rollback(database: Database) -> None:
    op, ids = await world(database)
    a, b = ids["a"], ids["b"]
    async with database.session() as s:
        tpl, _ = await templates.create_template(
            s,
            op,
            "ntp",
            {"ntp": {"server": "${server}"}, "legacy": True},
            {"server": {"type": "str"}},
        )
        await templates.add_version(
            s,
            op,
            tpl.id,
            {"ntp": {"server": "${server}", "iburst": True}},
            {"server": {"type": "str"}},
            "iburst",
        )
        with pytest.raises(InvalidRequestError, match=r"variables\.server: required"):
            await templates.deploy(s, op, tpl.id, target_type="group", target_id=ids["group"])
    async with database.session() as s:
        v1 = await templates.deploy(
            s,
            op,
            tpl.id,
            version=1,
            target_type="group",
            target_id=ids["group"],
            variables={"server": "10.0.0.1"},
        )
    assert await statuses(database, v1.id) == {a: ("pending", None), b: ("pending", None)}
    await report(database, a, 1, {"ntp": {"server": "10.0.0.1"}, "legacy": True, "x": 1}, {})
    await report(database, b, 1, {}, {"config.ntp.server": "unreachable"})
    assert await statuses(database, v1.id) == {
        a: ("applied", None),
        b: ("failed", "config.ntp.server: unreachable"),
    }

    async with database.session() as s:  # the latest version: legacy goes away
        v2 = await templates.deploy(
            s,
            op,
            tpl.id,
            target_type="group",
            target_id=ids["group"],
            variables={"server": "10.0.0.2"},
        )
        ta = await twin.get_twin(s, op.tenant_id, a)
        assert ta.desired["config"] == {"ntp": {"server": "10.0.0.2", "iburst": True}}
        # a second deployment before devices answer supersedes the pending one
        v2b = await templates.deploy(
            s, op, tpl.id, target_type="device", target_id=a, variables={"server": "10.0.0.3"}
        )
    assert (await statuses(database, v2.id))[a] == (
        "superseded",
        f"superseded by deployment {v2b.id}",
    )
    await report(database, a, 2, {"ntp": {"server": "10.0.0.3", "iburst": True}}, {})
    await report(database, b, 2, {"ntp": {"server": "10.0.0.1"}}, {})  # did not take it
    assert (await statuses(database, v2b.id))[a] == ("applied", None)
    status, reason = (await statuses(database, v2.id))[b]
    assert status == "failed"
    assert "reports other values for config.ntp" in str(reason)

    async with database.session() as s:  # back to version 1 with its variables
        back = await templates.rollback(s, op, tpl.id, v2.id)
        assert (back.version, back.variables, back.rollback_of) == (
            1,
            {"server": "10.0.0.1"},
            v2.id,
        )
        tb = await twin.get_twin(s, op.tenant_id, b)
        assert tb.desired["config"] == {"ntp": {"server": "10.0.0.1"}, "legacy": True}
        with pytest.raises(ConflictError, match="no earlier version"):
            await templates.rollback(s, op, tpl.id, v1.id)
    await report(database, b, 3, {"ntp": {"server": "10.0.0.1"}, "legacy": True}, {})
    assert (await statuses(database, back.id))[b] == ("applied", None)
    assert ids["gone"] not in await statuses(database, back.id)  # decommissioned: left out
    async with database.session() as s:
        counts = await templates.counts(s, [v1.id, v2.id, back.id])
    assert counts[v2.id] == {"superseded": 1, "failed": 1}
    assert counts[back.id] == {"pending": 1, "applied": 1}
