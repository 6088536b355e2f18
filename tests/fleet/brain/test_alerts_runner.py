"""The database-driven alert runner on both databases: raise, dedup, clear, reopen within
the flap window, flap suppression of notifications, rack power budgets, manual clears, and
a whole ``run_alert_cycle`` delivering to a real local webhook receiver."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.fleet.brain.test_alerts_notify import LOCAL, Receiver
from tests.fleet.brain.test_alerts_notify import receiver as receiver  # the fixture
from wrale.fleet.brain.bus import EventBus
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Device, Rack, Room, Site, Tenant
from wrale.fleet.brain.models.alerts import Alert, AlertEvent, NotificationDelivery
from wrale.fleet.brain.services import alerts, notify
from wrale.fleet.brain.services.alert_runner import evaluate_rules, run_alert_cycle
from wrale.fleet.brain.services.delivery import deliver_pending
from wrale.fleet.brain.services.principal import Principal, Role

T0 = 1_000_000.0


class Telemetry:
    """Samples the runner reads, kept in memory (the reader is the runner's seam)."""

    def __init__(self) -> None:
        self.points: dict[tuple[str, str], list[tuple[float, float]]] = {}

    def add(self, device: str, metric: str, start: float, end: float, value: float) -> None:
        t = start
        while t <= end:
            self.points.setdefault((device, metric), []).append((t, value))
            t += 10

    async def read(
        self,
        _s: AsyncSession,
        _t: str,
        metric: str,
        ids: Sequence[str],
        since: float,
        until: float,
    ) -> dict[str, list[tuple[float, float]]]:
        return {
            d: [(t, v) for t, v in self.points.get((d, metric), []) if since <= t <= until]
            for d in ids
        }


async def _setup(db: Database) -> tuple[Principal, list[str], str]:
    async with db.session() as s:
        t = Tenant(name="acme")
        s.add(t)
        await s.flush()
        site = Site(tenant_id=t.id, name="hq")
        s.add(site)
        await s.flush()
        room = Room(tenant_id=t.id, site_id=site.id, name="r1")
        s.add(room)
        await s.flush()
        rack = Rack(tenant_id=t.id, room_id=room.id, name="rack-a", power_budget_w=10.0)
        s.add(rack)
        await s.flush()
        devs = [
            Device(tenant_id=t.id, num=n, name=f"pi-{n}", rack_id=rack.id, slot_u=n) for n in (1, 2)
        ]
        s.add_all(devs)
        await s.flush()
        return Principal(t.id, Role.OPERATOR, "user", "u1", "olga"), [d.id for d in devs], rack.id


async def _count(s: AsyncSession, model: Any, *where: Any) -> int:
    return int(await s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def test_raise_dedup_clear_and_reopen(database: Database) -> None:
    p, (d1, _), _ = await _setup(database)
    tel, bus = Telemetry(), EventBus()
    async with database.session() as s:
        ch = await notify.create_channel(
            s,
            Principal(p.tenant_id, Role.ADMIN, "user", "a", "ada"),
            "ops",
            "webhook",
            {"url": "http://127.0.0.1:9/"},
            egress=LOCAL,
        )
        rule = await alerts.create_rule(
            s,
            p,
            {
                "name": "hot",
                "expression": "cpu_temp_c > 70 for 60s",
                "channel_ids": [ch.id],
                "severity": "MAJOR",
            },
        )
    tel.add(d1, "cpu_temp_c", T0 - 100, T0, 75)
    async with bus.subscribe(p.tenant_id) as events:
        async with database.session() as s:
            [d] = await evaluate_rules(s, p.tenant_id, T0, bus, read_samples=tel.read)
        assert d.action == "raise"
        raised = events.get_nowait()
        assert (raised.kind, raised.data["device_id"]) == ("alert.raised", d1)
        tel.add(d1, "cpu_temp_c", T0 + 10, T0 + 10, 76)
        async with database.session() as s:  # still hot: the same alert, nothing new
            assert await evaluate_rules(s, None, T0 + 10, bus, read_samples=tel.read) == []
            assert await _count(s, Alert) == 1
        tel.add(d1, "cpu_temp_c", T0 + 20, T0 + 20, 65)
        async with database.session() as s:
            [c] = await evaluate_rules(s, None, T0 + 20, bus, read_samples=tel.read)
        assert c.action == "clear"
        assert events.get_nowait().kind == "alert.cleared"
        tel.add(d1, "cpu_temp_c", T0 + 30, T0 + 100, 80)
        async with database.session() as s:
            assert [
                x.action for x in await evaluate_rules(s, None, T0 + 80, bus, read_samples=tel.read)
            ] == [None]
            [r] = await evaluate_rules(s, None, T0 + 100, bus, read_samples=tel.read)
        assert r.action == "reopen"
    async with database.session() as s:
        [a] = (await s.scalars(select(Alert))).all()
        assert (a.state, a.flap_count, a.severity, a.rule_id) == ("active", 1, "MAJOR", rule.id)
        assert a.message.startswith("hot: cpu_temp_c 80 > 70")
        hist = [e.action for e in await alerts.history(s, a.id)]
        assert hist == ["raised", "cleared", "reopened"]
        assert await _count(s, NotificationDelivery) == 3  # raised, cleared, reopened


async def test_flapping_holds_notifications(database: Database) -> None:
    p, (d1, _), _ = await _setup(database)
    tel = Telemetry()
    async with database.session() as s:
        ch = await notify.create_channel(
            s,
            Principal(p.tenant_id, Role.ADMIN, "user", "a", "ada"),
            "ops",
            "webhook",
            {"url": "http://127.0.0.1:9/"},
            egress=LOCAL,
        )
        await alerts.create_rule(
            s,
            p,
            {
                "name": "hot",
                "expression": "cpu_temp_c > 70",
                "channel_ids": [ch.id],
                "flap_threshold": 2,
            },
        )
    t = T0
    for i in range(8):
        tel.add(d1, "cpu_temp_c", t, t, 80 if i % 2 == 0 else 60)
        async with database.session() as s:
            await evaluate_rules(s, None, t, None, read_samples=tel.read)
        t += 30
    async with database.session() as s:
        [a] = (await s.scalars(select(Alert))).all()
        assert a.flapping
        assert a.flap_count == 3
        # raise, clear, reopen #1, clear notify; reopen #2 turns flapping: the rest is held
        assert await _count(s, NotificationDelivery) == 4
        assert "flapping" in [e.action for e in await alerts.history(s, a.id)]
    async with database.session() as s:  # quiet for a flap window: stable, and told
        [st] = await evaluate_rules(s, None, t + 700, None, read_samples=tel.read)
        assert st.action == "stable"
        assert await _count(s, NotificationDelivery) == 5


async def test_rack_power_budget(database: Database) -> None:
    p, (d1, d2), rack_id = await _setup(database)
    tel = Telemetry()
    async with database.session() as s:
        await alerts.create_rule(
            s,
            p,
            {"name": "rack power", "expression": "rack power_w > budget", "severity": "CRITICAL"},
        )
    tel.add(d1, "power_w", T0 - 20, T0, 6.0)
    tel.add(d2, "power_w", T0 - 20, T0, 5.0)
    async with database.session() as s:
        [d] = await evaluate_rules(s, None, T0, None, read_samples=tel.read)
        assert (d.action, d.key, d.value, d.threshold) == ("raise", rack_id, 11.0, 10.0)
    async with database.session() as s:
        [a] = (await s.scalars(select(Alert))).all()
        assert (a.rack_id, a.device_id, a.severity) == (rack_id, None, "CRITICAL")
    tel.add(d2, "power_w", T0 + 10, T0 + 10, 3.0)
    tel.add(d1, "power_w", T0 + 10, T0 + 10, 6.0)
    async with database.session() as s:
        [c] = await evaluate_rules(s, None, T0 + 10, None, read_samples=tel.read)
        assert (c.action, c.value) == ("clear", 9.0)


async def test_manual_clear_then_a_new_alert(database: Database) -> None:
    p, (d1, _), _ = await _setup(database)
    tel = Telemetry()
    async with database.session() as s:
        rule = await alerts.create_rule(s, p, {"name": "hot", "expression": "cpu_temp_c > 70"})
    tel.add(d1, "cpu_temp_c", T0, T0 + 30, 90)
    async with database.session() as s:
        await evaluate_rules(s, None, T0, None, read_samples=tel.read)
        [a] = (await s.scalars(select(Alert))).all()
        await alerts.clear(s, p, a.id, "fixed the fan", None)
    async with database.session() as s:
        [d] = await evaluate_rules(s, None, T0 + 10, None, read_samples=tel.read)
        assert d.action == "raise"
        assert await _count(s, Alert) == 2
    async with database.session() as s:  # deleting the rule clears its alerts, keeps them
        await alerts.delete_rule(s, p, rule.id, T0 + 20)
    async with database.session() as s:
        states = sorted(a.state for a in (await s.scalars(select(Alert))).all())
        assert states == ["cleared", "cleared"]
        assert await _count(s, AlertEvent, AlertEvent.note == "the rule was deleted") == 1


async def test_run_alert_cycle_delivers(database: Database, receiver: Receiver) -> None:
    p, (d1, _), _ = await _setup(database)
    receiver.statuses = []
    tel = Telemetry()
    async with database.session() as s:
        ch = await notify.create_channel(
            s,
            Principal(p.tenant_id, Role.ADMIN, "user", "a", "ada"),
            "ops",
            "webhook",
            {"url": receiver.url, "secret": "0123456789"},
            egress=LOCAL,
        )
        await alerts.create_rule(
            s,
            p,
            {
                "name": "low battery",
                "channel_ids": [ch.id],
                "metric": "battery_pct",
                "op": "<",
                "threshold": 10,
            },
        )
    tel.add(d1, "battery_pct", T0, T0, 8)
    out = await run_alert_cycle(database, EventBus(), T0, read_samples=tel.read)
    assert out == {"decisions": 1}  # queued only: the delivery job sends
    assert receiver.requests == []
    assert await deliver_pending(database, T0, egress=LOCAL) == {
        "delivered": 1,
        "retry": 0,
        "failed": 0,
    }
    [(headers, body)] = receiver.requests
    payload = json.loads(body)
    assert payload["event"] == "alert.raised"
    assert payload["alert"]["device_id"] == d1
    assert payload["alert"]["value"] == 8
    assert headers["x-wrale-signature"].startswith("sha256=")


async def test_reads_real_telemetry(database: Database) -> None:
    """The default reader: points stored by the telemetry service drive the rules."""
    from wrale.fleet.brain.services import telemetry

    now = 1_790_000_000.0  # telemetry refuses times before 2000
    p, (d1, d2), rack_id = await _setup(database)
    async with database.session() as s:
        await alerts.create_rule(s, p, {"name": "hot", "expression": "cpu_temp_c > 70 for 30s"})
        await alerts.create_rule(s, p, {"name": "rack", "expression": "rack power_w > budget"})
    async with database.session() as s:
        dev1, dev2 = await s.get(Device, d1), await s.get(Device, d2)
        assert dev1 is not None
        assert dev2 is not None
        hot = [("cpu_temp_c", now - 40 + i * 10, 80.0) for i in range(5)]
        await telemetry.ingest_batch(s, dev1, 1, [*hot, ("power_w", now, 7.0)], now=now)
        await telemetry.ingest_batch(s, dev2, 1, [("power_w", now, 4.5)], now=now)
    async with database.session() as s:
        decisions = await evaluate_rules(s, p.tenant_id, now, None)
    got = sorted((d.action, d.key) for d in decisions)
    assert got == sorted([("raise", d1), ("raise", rack_id)])
