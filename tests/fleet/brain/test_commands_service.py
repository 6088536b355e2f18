"""Commands: server-side validation (arguments, role, device state, lockdown, simulated
boards), batches that list refused devices, and the lifecycle the device channel drives
(due → sent → result) with expiry and cancellation, published after commit."""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest
from sqlalchemy import select

from wrale.fleet.brain.bus import EventBus
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Device, Tenant
from wrale.fleet.brain.models.commands import Command
from wrale.fleet.brain.services import commands, twin
from wrale.fleet.brain.services.principal import ForbiddenError, Principal, Role
from wrale.shared.errors import ConflictError, InvalidRequestError, LockdownError

_num = itertools.count(920_000)


async def world(db: Database) -> tuple[Principal, dict[str, str]]:
    """An operator's tenant with a real board, a simulated one, one in maintenance and one
    whose last report says tamper lockdown."""
    async with db.session() as s:
        t = Tenant(name=f"t-{next(_num)}")
        s.add(t)
        await s.flush()
        ids: dict[str, str] = {}
        for name, fields in (
            ("real", {}),
            ("sim", {"capabilities": ["SIM"]}),
            ("held", {"status": "maintenance"}),
            ("locked", {}),
            ("suspect", {"status": "quarantined"}),
        ):
            d = Device(tenant_id=t.id, num=next(_num), name=name, **fields)
            s.add(d)
            await s.flush()
            ids[name] = d.id
        locked = await s.get(Device, ids["locked"])
        assert locked is not None
        doc = {"tamper": {"armed": True, "level": "high", "lockdown": True}}
        await twin.record_reported(s, locked, 1, doc, 0, {}, time.time())
    return Principal(t.id, Role.OPERATOR, "user", "u1", "olga"), ids


def test_arguments_are_validated_per_operation() -> None:
    assert commands.check_args("set_fan", {"percent": 40}) == {"percent": 40.0, "duration_s": 300.0}
    assert commands.check_args("set_throttle", {}) == {"max_freq_pct": None}
    assert commands.check_args("reboot", None) == {"delay_s": 0.0}
    assert commands.check_args("sim_fault", {"fault": "fan_failure", "params": {"mode": "stalled"}})
    for op, args, where in (
        ("set_fan", {"percent": 101}, "args.percent"),
        ("set_fan", {}, "args.percent"),
        ("set_fan", {"percent": 10, "speed": 3}, "args.speed"),
        ("set_throttle", {"max_freq_pct": 20}, "args.max_freq_pct"),
        ("arm", {"level": "extreme"}, "args.level"),
        ("safe_mode", {}, "args.on"),
        ("reboot", {"delay_s": 7200}, "args.delay_s"),
        ("sim_fault", {"fault": "meteor"}, "args.fault"),
        ("sim_ambient", {"celsius": 95}, "args.celsius"),
        ("sim_fault", {"fault": "motion", "params": {"x": float("nan")}}, "args.params.x"),
        ("launch", {}, "op"),
    ):
        with pytest.raises(InvalidRequestError) as err:
            commands.check_args(op, args)
        assert err.value.message.startswith(where), (op, err.value.message)
    now = 1_800_000_000.0
    assert commands.resolve_deadline(None, None, now) == now + 300
    assert commands.resolve_deadline(None, 60, now) == now + 60
    for deadline, timeout in ((now - 1, None), (now + 8 * 86_400, None), (now + 5, 5.0)):
        with pytest.raises(InvalidRequestError):
            commands.resolve_deadline(deadline, timeout, now)


async def test_refusals_roles_and_batches(database: Database) -> None:
    op, ids = await world(database)
    viewer = Principal(op.tenant_id, Role.VIEWER, "user", "u2", "vic")
    admin = Principal(op.tenant_id, Role.ADMIN, "user", "u3", "ada")
    async with database.session() as s:
        with pytest.raises(ForbiddenError):
            await commands.create_command(s, viewer, ids["real"], "run_diag", {})
        with pytest.raises(ForbiddenError):  # disarm needs an admin
            await commands.create_command(s, op, ids["locked"], "disarm", {})
        with pytest.raises(ConflictError, match="maintenance"):
            await commands.create_command(s, op, ids["held"], "run_diag", {})
        with pytest.raises(ConflictError, match="quarantined; an admin must release it"):
            await commands.create_command(s, admin, ids["suspect"], "run_diag", {})
        with pytest.raises(ConflictError, match="simulated"):
            await commands.create_command(s, op, ids["real"], "sim_load", {"percent": 50})
        with pytest.raises(LockdownError, match="lockdown"):
            await commands.create_command(s, op, ids["locked"], "set_fan", {"percent": 90})
        # what lockdown still accepts, and sim_* on a simulated board
        assert (await commands.create_command(s, admin, ids["locked"], "disarm", {})).op == "disarm"
        await commands.create_command(s, op, ids["locked"], "safe_mode", {"on": True})
        await commands.create_command(s, op, ids["sim"], "sim_load", {"percent": 50})

        devices = list(await s.scalars(select(Device).order_by(Device.id)))
        batch, made, refused = await commands.create_batch(
            s, op, devices, "set_fan", {"percent": 70}, timeout_s=60
        )
        assert sorted(c.device_id for c in made) == sorted([ids["real"], ids["sim"]])
        assert {c.batch_id for c in made} == {batch}
        assert {r["name"]: r["reason"].split(":")[0] for r in refused} == {
            "held": "device 'held' is maintenance; an operator must end that first",
            "locked": "device 'locked' is in tamper lockdown",
            "suspect": "device 'suspect' is quarantined; an admin must release it first",
        }
        with pytest.raises(InvalidRequestError, match=r"args\.percent"):  # the whole batch
            await commands.create_batch(s, op, devices, "set_fan", {"percent": -1})
        tagged = await commands.select_devices(s, op.tenant_id, {"status": ["maintenance"]})
        assert [d.name for d in tagged] == ["held"]
        with pytest.raises(InvalidRequestError, match="at least one clause"):
            await commands.select_devices(s, op.tenant_id, {})


async def test_lifecycle_expiry_and_cancel(database: Database) -> None:
    op, ids = await world(database)
    bus = EventBus()
    now = time.time()
    async with database.session() as s:
        real = await s.get(Device, ids["real"])
        sim = await s.get(Device, ids["sim"])
        assert real is not None
        assert sim is not None
    events: list[tuple[str, dict[str, Any]]] = []
    async with bus.subscribe(op.tenant_id) as q:
        async with database.session() as s:
            first = await commands.create_command(
                s, op, real.id, "set_fan", {"percent": 60}, bus=bus
            )
            second = await commands.create_command(
                s, op, real.id, "run_diag", {}, timeout_s=30, bus=bus
            )
            third = await commands.create_command(s, op, real.id, "reboot", {}, bus=bus)
            lost = await commands.create_command(s, op, real.id, "clear_fan", {}, bus=bus)
            assert q.empty()
        async with database.session() as s:
            due = await commands.due_for(s, real, now)
            assert [c.id for c in due] == [first.id, second.id, third.id, lost.id]
            later = await commands.due_for(s, real, now + 31)  # run_diag's deadline passed
            assert [c.id for c in later] == [first.id, third.id, lost.id]
            await commands.mark_sent(s, [first.id, lost.id], now + 1, bus)
            await commands.mark_sent(s, [first.id], now + 2, bus)  # already sent: unchanged
            # another device's answer, an unknown id and a bad status are ignored
            await commands.record_result(s, sim, first.id, "succeeded", "", {}, now + 3, bus)
            await commands.record_result(s, real, "0" * 32, "succeeded", "", {}, now + 3, bus)
            await commands.record_result(s, real, first.id, "maybe", "", {}, now + 3, bus)
            await commands.record_result(
                s, real, first.id, "refused", "below the fan floor", {"floor_pct": 75}, now + 4, bus
            )
            await commands.record_result(s, real, first.id, "succeeded", "", {}, now + 5, bus)
            # a result that arrives before the server saw it sent still ends it
            await commands.record_result(s, real, third.id, "failed", "", {}, now + 6, bus)
            cancelled = await commands.cancel(s, op, second.id, bus)
            assert (cancelled.status, cancelled.reason) == ("failed", "cancelled by olga")
            with pytest.raises(ConflictError, match="only a queued command"):
                await commands.cancel(s, op, lost.id, bus)
        async with database.session() as s:
            assert await commands.expire_due(s, lost.deadline + 30, bus) == 0  # grace after send
            fresh = await commands.create_command(s, op, real.id, "run_diag", {}, timeout_s=10)
        async with database.session() as s:
            assert await commands.expire_due(s, lost.deadline + commands.SENT_GRACE_S, bus) == 2
            assert await commands.expire_due(s, lost.deadline + 3600, bus) == 0
        while not q.empty():
            e = q.get_nowait()
            events.append((e.kind, e.data))
    async with database.session() as s:
        rows = {c.id: c for c in await s.scalars(select(Command))}
    got = {c.id: (c.status, c.reason) for c in rows.values()}
    assert got[first.id] == ("refused", "below the fan floor")
    assert rows[first.id].result == {"floor_pct": 75}
    assert rows[first.id].finished_at == now + 4
    assert got[third.id] == ("failed", "failed (the device gave no reason)")
    assert rows[third.id].sent_at == now + 6
    assert got[lost.id] == ("expired", "no result from the device by its deadline")
    assert got[fresh.id][0] == "expired"
    assert "not delivered" in str(got[fresh.id][1])
    kinds = [k for k, _ in events]
    assert kinds.count("command.queued") == 4  # fresh was created without a bus
    updates = sorted((d["command_id"], d["status"]) for k, d in events if k == "command.updated")
    assert updates == sorted(
        [
            (first.id, "sent"),
            (lost.id, "sent"),
            (first.id, "refused"),
            (third.id, "failed"),
            (second.id, "failed"),
            (lost.id, "expired"),
            (fresh.id, "expired"),
        ]
    )
