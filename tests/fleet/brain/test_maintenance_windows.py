"""Maintenance windows on real databases (SQLite and PostgreSQL): hostile input named by
field, windows per fleet / site / group, ``may_disrupt``; a reboot that waits for its
window and for the battery condition and is delivered once both hold, through the device
channel's real delivery path; its deadline still applies; an operator's override with a
reason goes through at once and is audited."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, event, select

from tests.fleet.brain.channel_kit import Kit, make_kit
from tests.fleet.brain.jobs_kit import World, make_world
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import AuditEntry, Device, Site
from wrale.fleet.brain.models.commands import Command as CommandRow
from wrale.fleet.brain.models.groups import Group, GroupMember
from wrale.fleet.brain.models.maintenance import MaintenanceWindow, WindowOverride
from wrale.fleet.brain.models.telemetry import TelemetryLatest
from wrale.fleet.brain.services import commands
from wrale.fleet.brain.services.maintenance import windows
from wrale.fleet.brain.services.principal import ForbiddenError, Principal, Role
from wrale.fleet.brain.services.telemetry_store import metric_ids
from wrale.fleet.sync.protocol import Command
from wrale.shared.errors import InvalidRequestError


async def _readings(db: Database, device_id: str, at: float, **values: float) -> None:
    async with db.session() as s:
        device = await s.get(Device, device_id)
        assert device is not None
        ids = await metric_ids(s, list(values))
        await s.execute(
            delete(TelemetryLatest).where(
                TelemetryLatest.device_num == device.num,
                TelemetryLatest.metric_id.in_(list(ids.values())),
            )
        )
        for name, value in values.items():
            s.add(TelemetryLatest(device_num=device.num, metric_id=ids[name], ts=at, value=value))


def _daily_at(ts: float) -> str:
    """A cron expression (UTC) whose daily start is the minute of ``ts``."""
    t = datetime.fromtimestamp(ts, UTC)
    return f"{t.minute} {t.hour} * * *"


async def _window(db: Database, p: Principal, **data: Any) -> str:
    async with db.session() as s:
        w = await windows.create_window(s, p, data)
        return w.id


async def _may(db: Database, device_id: str, now: float) -> tuple[bool, str | None]:
    async with db.session() as s:
        device = await s.get(Device, device_id)
        assert device is not None
        return await windows.may_disrupt(s, device, now)


@pytest.fixture
async def world(database: Database) -> World:
    return await make_world(database)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": 5}, "cron"),
        ({"timezone": "Mars/Base"}, "timezone"),
        ({"duration_s": 10}, "duration_s"),
        ({"duration_s": float("nan")}, "duration_s"),
        ({"duration_s": True}, "duration_s"),
        ({"name": ""}, "name"),
        ({"scope": "planet"}, "scope"),
        ({"scope": "site"}, "scope_id"),
        ({"scope": "site", "scope_id": "0" * 32}, "scope_id"),
        ({"scope_id": "x"}, "scope_id"),
        ({"conditions": {"battery_min_pct": 150}}, "conditions.battery_min_pct"),
        ({"conditions": {"ambient_max_c": "hot"}}, "conditions.ambient_max_c"),
        ({"conditions": {"case_closed": 1}}, "conditions.case_closed"),
        ({"conditions": {"moon_phase": True}}, "conditions.moon_phase"),
        ({"conditions": []}, "conditions"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_hostile_windows_are_refused_naming_the_field(
    world: World, data: dict[str, Any], field: str
) -> None:
    good = {"name": "nightly", "cron": "0 2 * * *", "duration_s": 3600}
    with pytest.raises(InvalidRequestError) as err:
        await _window(world.db, world.operator, **(good | data))
    assert str(err.value).startswith(f"{field}:"), err.value


async def test_viewers_may_not_write_and_changes_are_audited(world: World) -> None:
    viewer = Principal(world.operator.tenant_id, Role.VIEWER, "user", "v" * 32, "vic")
    with pytest.raises(ForbiddenError):
        await _window(world.db, viewer, name="n", cron="0 2 * * *", duration_s=3600)
    wid = await _window(world.db, world.operator, name="n", cron="0 2 * * *", duration_s=3600)
    async with world.db.session() as s:
        w = await windows.update_window(s, world.operator, wid, {"timezone": "Europe/Berlin"})
        assert w.timezone == "Europe/Berlin"
        await windows.delete_window(s, world.operator, wid)
    async with world.db.session() as s:
        actions = list(
            await s.scalars(select(AuditEntry.action).where(AuditEntry.resource_id == wid))
        )
        assert sorted(actions) == [
            "maintenance_window.create",
            "maintenance_window.delete",
            "maintenance_window.update",
        ]
        assert await windows.list_windows(s, world.operator.tenant_id) == []


async def test_windows_apply_per_fleet_site_and_group(world: World) -> None:
    w, now = world, datetime(2026, 12, 7, 12, 0, tzinfo=UTC).timestamp()
    assert await _may(w.db, w.ids["a1"], now) == (True, None)  # no window: not held
    async with w.db.session() as s:
        other = Site(tenant_id=w.operator.tenant_id, name="elsewhere")
        g = Group(tenant_id=w.operator.tenant_id, name="canaries", kind="static")
        s.add_all([other, g])
        await s.flush()
        s.add(GroupMember(tenant_id=w.operator.tenant_id, group_id=g.id, device_id=w.ids["b1"]))
        other_id, group_id = other.id, g.id
    # a window of another site does not hold these boards
    await _window(w.db, w.operator, name="far", cron="0 3 * * *", duration_s=3600,
                  scope="site", scope_id=other_id)  # fmt: skip
    assert await _may(w.db, w.ids["a1"], now) == (True, None)
    await _window(w.db, w.operator, name="dc", cron="0 2 * * *", duration_s=3600,
                  scope="site", scope_id=w.ids["site"], timezone="Europe/Berlin")  # fmt: skip
    assert await _may(w.db, w.ids["a1"], now) == (
        False,
        "next window opens 2026-12-08 02:00 Europe/Berlin",
    )
    # b1's group opens now (12:00 UTC for an hour): one open window with its conditions
    await _window(w.db, w.operator, name="canary", cron="0 12 * * *", duration_s=3600,
                  scope="group", scope_id=group_id)  # fmt: skip
    assert await _may(w.db, w.ids["b1"], now + 60) == (True, None)
    assert (await _may(w.db, w.ids["a1"], now + 60))[0] is False
    async with w.db.session() as s:
        status = await windows.device_status(s, w.operator.tenant_id, w.ids["b1"], now + 60)
    assert status["may_disrupt"] is True
    assert sorted(v["name"] for v in status["windows"]) == ["canary", "dc"]
    assert status["next_open"] == datetime(2026, 12, 8, 1, 0, tzinfo=UTC).timestamp()


async def test_rack_budget_condition_reads_the_racks_fresh_draw(world: World) -> None:
    w, now = world, datetime(2026, 12, 7, 12, 5, tzinfo=UTC).timestamp()
    await _window(w.db, w.operator, name="noon", cron="0 12 * * *", duration_s=3600,
                  conditions={"rack_under_budget": True})  # fmt: skip
    ok, why = await _may(w.db, w.ids["a1"], now)
    assert (ok, why) == (False, "window 'noon' open but rack rack-a draw unknown "
                                "(no fresh power_w reading)")  # fmt: skip
    await _readings(w.db, w.ids["a1"], now - 5, power_w=25.0)
    await _readings(w.db, w.ids["a2"], now - 5, power_w=20.0)
    assert await _may(w.db, w.ids["a1"], now) == (
        False,
        "window 'noon' open but rack rack-a at 45 W of its 40 W budget",
    )
    await _readings(w.db, w.ids["a2"], now - 5, power_w=5.0)
    assert await _may(w.db, w.ids["a1"], now) == (True, None)


# ----------------------------------------------------------------------------- delivery


@pytest.fixture
async def kit(database: Database, tmp_path: Path) -> Kit:
    return await make_kit(database, tmp_path)


def _commands(sent: list[Any]) -> list[str]:
    return [m.op for m in sent if isinstance(m, Command)]


async def _row(k: Kit, cid: str) -> CommandRow:
    async with k.db.session() as s:
        row = await s.get(CommandRow, cid)
        assert row is not None
        return row


async def test_a_reboot_waits_for_the_window_and_the_battery(kit: Kit) -> None:
    k = kit
    ((dev, secret),) = await k.devices("edge-1")
    session, wire, _ = await k.open(dev, secret)
    opens = k.clock.now() + 600
    await _window(k.db, k.admin, name="nightly", cron=_daily_at(opens), duration_s=1800,
                  conditions={"not_on_battery": True, "battery_min_pct": 50})  # fmt: skip
    await _readings(k.db, dev, k.clock.now(), on_battery=0.0, battery_pct=20.0)
    async with k.db.session() as s:
        reboot = await commands.create_command(s, k.admin, dev, "reboot", {}, timeout_s=7200)
        fan = await commands.create_command(s, k.admin, dev, "set_fan", {"percent": 50})
    assert (reboot.reason or "").startswith("waiting for maintenance window: next window opens")
    wire.take()
    await session.deliver()
    assert _commands(wire.take()) == ["set_fan"]  # other work is not held
    assert (await _row(k, reboot.id)).status == "queued"
    assert fan.id != reboot.id

    # the window opens, but the battery is below its floor
    k.clock.advance(660)
    await _readings(k.db, dev, k.clock.now(), on_battery=0.0, battery_pct=20.0)
    await session.deliver()
    assert _commands(wire.take()) == []
    row = await _row(k, reboot.id)
    assert row.status == "queued"
    assert row.reason == (
        "waiting for maintenance window: window 'nightly' open but battery 20% below the floor 50%"
    )

    # the battery recovers: delivered once the gate asks again (its cache is short-lived)
    k.clock.advance(windows.CACHE_TTL_S + 1)
    await _readings(k.db, dev, k.clock.now(), on_battery=0.0, battery_pct=80.0)
    await session.deliver()
    assert _commands(wire.take()) == ["reboot"]
    row = await _row(k, reboot.id)
    assert row.status == "sent"
    assert row.reason is None


async def test_a_waiting_reboot_still_expires_at_its_deadline(kit: Kit) -> None:
    k = kit
    ((dev, secret),) = await k.devices("edge-2")
    session, wire, _ = await k.open(dev, secret)
    await _window(k.db, k.admin, name="later", cron=_daily_at(k.clock.now() + 7200),
                  duration_s=600)  # fmt: skip
    async with k.db.session() as s:
        reboot = await commands.create_command(s, k.admin, dev, "reboot", {}, timeout_s=60)
    wire.take()
    await session.deliver()
    assert _commands(wire.take()) == []
    async with k.db.session() as s:
        assert await commands.expire_due(s, reboot.deadline + 1) >= 1
    assert (await _row(k, reboot.id)).status == "expired"


async def test_an_override_with_a_reason_goes_through_and_is_audited(kit: Kit) -> None:
    k = kit
    ((dev, secret),) = await k.devices("edge-3")
    session, wire, _ = await k.open(dev, secret)
    await _window(k.db, k.admin, name="later", cron=_daily_at(k.clock.now() + 7200),
                  duration_s=600)  # fmt: skip
    async with k.db.session() as s:
        with pytest.raises(InvalidRequestError, match="override_reason"):
            await commands.create_command(s, k.admin, dev, "reboot", {}, override_reason="  ")
    async with k.db.session() as s:
        with pytest.raises(InvalidRequestError, match="override_window"):
            await commands.create_command(
                s, k.admin, dev, "set_fan", {"percent": 10}, override_reason="why not"
            )
    async with k.db.session() as s:
        reboot = await commands.create_command(
            s, k.admin, dev, "reboot", {}, override_reason="kernel fix, site manager agreed"
        )
    assert reboot.reason == (
        "maintenance window overridden by alice: kernel fix, site manager agreed"
    )
    wire.take()
    await session.deliver()
    assert _commands(wire.take()) == ["reboot"]
    async with k.db.session() as s:
        entry = (
            await s.scalars(
                select(AuditEntry).where(
                    AuditEntry.action == "command.override_window",
                    AuditEntry.resource_id == reboot.id,
                )
            )
        ).one()
        assert entry.actor_name == "alice"
        assert (entry.details or {})["reason"] == "kernel fix, site manager agreed"
        override = (
            await s.scalars(select(WindowOverride).where(WindowOverride.command_id == reboot.id))
        ).one()
        assert override.created_by == "alice"


async def test_the_gate_costs_no_query_per_command_and_caches_per_board(kit: Kit) -> None:
    """Many waiting reboots cost the delivery what one does; within the cache's life a
    window removed behind the process's back is not seen, after it the reboots go."""
    k = kit
    ((dev, secret),) = await k.devices("edge-4")
    session, wire, _ = await k.open(dev, secret)
    wid = await _window(k.db, k.admin, name="later", cron=_daily_at(k.clock.now() + 7200),
                        duration_s=600)  # fmt: skip
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    async def deliver_counted() -> int:
        statements.clear()
        event.listen(k.db.engine.sync_engine, "before_cursor_execute", count)
        try:
            await session.deliver()
        finally:
            event.remove(k.db.engine.sync_engine, "before_cursor_execute", count)
        return len(statements)

    async with k.db.session() as s:
        await commands.create_command(s, k.admin, dev, "reboot", {}, timeout_s=3600)
    wire.take()
    k.clock.advance(windows.CACHE_TTL_S + 1)
    one = await deliver_counted()  # evaluates the windows once
    k.clock.advance(windows.CACHE_TTL_S + 1)
    async with k.db.session() as s:
        for _ in range(5):
            await commands.create_command(s, k.admin, dev, "reboot", {}, timeout_s=3600)
    six = await deliver_counted()
    assert six <= one + 1, statements  # + the reason written once for the new ones
    assert _commands(wire.take()) == []

    async with k.db.session() as s:  # behind the service's back: the cache does not know
        await s.execute(delete(MaintenanceWindow).where(MaintenanceWindow.id == wid))
    await session.deliver()
    assert _commands(wire.take()) == []
    k.clock.advance(windows.CACHE_TTL_S + 1)
    await session.deliver()
    assert _commands(wire.take()) == ["reboot"] * 6
