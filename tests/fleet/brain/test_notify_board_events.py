"""Board events reach people through the channels, on SQLite and PostgreSQL: a tamper
event from a connected board raises its alert, which is queued to every channel whose
``events`` route admits its severity and device, and sent by the delivery pass to a real
SMTP server and a real ntfy-shaped HTTP receiver. One incident is one notification: the
same event redelivered, or repeated while its alert is open, notifies no one again; its
clearing notifies once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.fleet.brain.channel_kit import Kit, make_kit
from tests.fleet.brain.notify_servers import http_sink, smtp_sink
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.models.alerts import NotificationDelivery
from wrale.fleet.brain.services import notify
from wrale.fleet.brain.services.delivery import deliver_pending
from wrale.fleet.brain.services.egress import EgressPolicy
from wrale.fleet.sync.protocol import EventsBatch

LOCAL = EgressPolicy(("127.0.0.1",))


def ev(kind: str, t: float, severity: str = "critical", **data: object) -> dict[str, object]:
    return {"ts": t, "type": kind, "severity": severity, "message": kind.lower(), "data": data}


@pytest.fixture
async def kit(database: Database, tmp_path: Path) -> Kit:
    return await make_kit(database, tmp_path)


async def _channel(kit: Kit, name: str, type_: str, config: dict[str, Any]) -> str:
    async with kit.db.session() as s:
        ch = await notify.create_channel(s, kit.admin, name, type_, config, egress=LOCAL)
        return ch.id


async def _queued(kit: Kit) -> list[tuple[str, str, str]]:
    """(channel id, event, alert metric) of every delivery, oldest first."""
    async with kit.db.session() as s:
        rows = await s.scalars(
            select(NotificationDelivery)
            .where(NotificationDelivery.tenant_id == kit.admin.tenant_id)
            .order_by(NotificationDelivery.created_at, NotificationDelivery.id)
        )
        return [(d.channel_id, d.event, d.payload["alert"]["metric"]) for d in rows]


async def test_a_tamper_event_reaches_the_routed_channels(kit: Kit) -> None:
    ((dev, secret), (other, _)) = await kit.devices("rack-a-03", "lab-board")
    async with kit.db.session() as s:
        d = await s.get(Device, dev)
        assert d is not None
        d.tags = ["edge", "field"]
    async with smtp_sink() as smtp, http_sink() as http:
        mail = await _channel(
            kit,
            "on-call mail",
            "email",
            {
                "host": "127.0.0.1",
                "port": smtp.port,
                "security": "none",
                "from_addr": "fleet@example.org",
                "to": ["oncall@example.org"],
                "events": {"min_severity": "WARNING", "selector": {"tags_any": ["field"]}},
            },
        )
        ntfy = await _channel(
            kit,
            "phones",
            "chat",
            {"preset": "ntfy", "url": f"{http.url}/fleet", "events": {"min_severity": "MAJOR"}},
        )
        # the rule-alert-only channel (no events route) and a route the device does not match
        await _channel(kit, "rules only", "chat", {"preset": "slack", "url": f"{http.url}/s"})
        await _channel(
            kit,
            "lab",
            "chat",
            {
                "preset": "slack",
                "url": f"{http.url}/lab",
                "events": {"selector": {"tags_all": ["lab"]}},
            },
        )

        session, _wire, _ = await kit.open(dev, secret)
        t = kit.clock.now()
        tamper = EventsBatch(
            seq=1,
            prev=0,
            events=[
                ev("TAMPER", t, "critical", input="case", alert=True),
                ev("SENSOR_FAILURE", t, "warning", sensor="inlet"),  # WARNING: mail only
            ],
        )
        await session.handle([tamper])
        await session.handle([tamper])  # redelivered by the board: no second alert
        again = [ev("TAMPER", t + 1, "critical", input="case", alert=True)]
        await session.handle([EventsBatch(seq=2, prev=1, events=again)])  # still open
        assert sorted(await _queued(kit)) == sorted(
            [
                (mail, "alert.raised", "event:TAMPER:case"),
                (ntfy, "alert.raised", "event:TAMPER:case"),
                (mail, "alert.raised", "event:SENSOR_FAILURE:inlet"),
            ]
        )
        counts = await deliver_pending(kit.db, t, egress=LOCAL, public_url="https://fleet.test")
        assert counts == {"delivered": 3, "retry": 0, "failed": 0}

        subjects = sorted(m.message["Subject"] for m in smtp.mails)
        assert subjects == [
            "[CRITICAL] rack-a-03: tamper",
            "[WARNING] rack-a-03: sensor_failure",
        ]
        assert all(m.rcpt_tos == ["oncall@example.org"] for m in smtp.mails)
        ((method, path, headers, body),) = http.requests
        assert (method, path) == ("POST", "/fleet")
        assert headers["title"] == "[CRITICAL] rack-a-03: tamper"
        assert headers["priority"] == "5"
        assert headers["click"].startswith("https://fleet.test/alerts/")
        assert b"Source: board event TAMPER:case" in body

        # the case is closed again: one "resolved" notification per channel that heard it
        cleared = [ev("TAMPER_CLEARED", t + 5, "info", input="case")]
        await session.handle([EventsBatch(seq=3, prev=2, events=cleared)])
        counts = await deliver_pending(kit.db, t + 5, egress=LOCAL)
        assert counts == {"delivered": 2, "retry": 0, "failed": 0}
    assert smtp.mails[-1].message["Subject"] == "[RESOLVED CRITICAL] rack-a-03: tamper"
    assert http.requests[-1][2]["tags"] == "white_check_mark,wrale"
    assert other not in {p for _, _, p in await _queued(kit)}


async def test_a_disabled_channel_hears_nothing(kit: Kit) -> None:
    ((dev, secret),) = await kit.devices("board")
    async with kit.db.session() as s:
        ch = await notify.create_channel(
            s,
            kit.admin,
            "off",
            "chat",
            {"preset": "ntfy", "url": "http://127.0.0.1:9/t", "events": {}},
            enabled=False,
            egress=LOCAL,
        )
        assert ch.config["events"] == {"min_severity": "WARNING", "selector": {}}
    session, _wire, _ = await kit.open(dev, secret)
    t = kit.clock.now()
    batch = EventsBatch(seq=1, prev=0, events=[ev("FAN_FAILURE", t, duty_pct=80, fan_rpm=0)])
    await session.handle([batch])
    assert await _queued(kit) == []


async def test_a_rule_alert_mails_the_channels_its_rule_names(kit: Kit) -> None:
    """Rule alerts take the same path: the rule's channels, the device's name in the mail."""
    from collections.abc import Sequence

    from sqlalchemy.ext.asyncio import AsyncSession

    from wrale.fleet.brain.services import alerts
    from wrale.fleet.brain.services.alert_runner import run_alert_cycle

    ((dev, _),) = await kit.devices("rack-b-07")
    t = kit.clock.now()

    async def hot(
        _s: AsyncSession, _t: str, metric: str, ids: Sequence[str], since: float, until: float
    ) -> dict[str, list[tuple[float, float]]]:
        return {d: [(until - 20, 83.5), (until - 10, 84.0), (until, 84.5)] for d in ids}

    async with smtp_sink() as smtp:
        mail = await _channel(
            kit,
            "mail",
            "email",
            {
                "host": "127.0.0.1",
                "port": smtp.port,
                "security": "none",
                "from_addr": "fleet@example.org",
                "to": ["oncall@example.org"],
            },
        )
        async with kit.db.session() as s:
            await alerts.create_rule(
                s,
                kit.admin,
                {
                    "name": "hot cpu",
                    "expression": "cpu_temp_c > 80",
                    "severity": "MAJOR",
                    "channel_ids": [mail],
                },
            )
        await run_alert_cycle(kit.db, None, t, read_samples=hot)
        assert await _queued(kit) == [(mail, "alert.raised", "cpu_temp_c")]
        assert (await deliver_pending(kit.db, t, egress=LOCAL))["delivered"] == 1
    (m,) = smtp.mails
    assert m.message["Subject"] == "[MAJOR] rack-b-07: hot cpu: cpu_temp_c 84.5 > 80"
    body = m.message.get_content()
    assert "Source: rule 'hot cpu' on cpu_temp_c" in body
    assert f"Device: rack-b-07 ({dev})" in body
