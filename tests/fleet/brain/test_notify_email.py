"""The e-mail channel against a real SMTP server (aiosmtpd on 127.0.0.1): the plain-text
mail (subject, body, dashboard link, recipients) without STARTTLS, no downgrade when
STARTTLS is asked for and not offered, retries with backoff on a refused connection, the
password kept and never shown, and hostile configs refused (CR/LF in addresses and
subject, forbidden hosts, text from a board).

On SQLite only: what is tested here is the mail and its SMTP conversation; the channel's
rows, the queue, the claims and the retries run on both databases in
``test_notify_delivery.py``, ``test_alerts_notify.py``, ``test_notify_board_events.py``
(a board event mailed through this channel) and the API's ``test_alerts_api.py``."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from tests.fleet.brain.notify_servers import alert_payload, free_port, smtp_sink
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Tenant
from wrale.fleet.brain.models.alerts import NotificationDelivery
from wrale.fleet.brain.services import notify
from wrale.fleet.brain.services.delivery import deliver_pending
from wrale.fleet.brain.services.egress import EgressPolicy, EgressRefusedError
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.shared.errors import InvalidRequestError

pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)

LOCAL = EgressPolicy(("127.0.0.1",))  # the operator allows the local test server
PUBLIC_URL = "https://fleet.example.com"
T0 = 1_800_000_000.0


async def _admin(db: Database) -> Principal:
    async with db.session() as s:
        t = Tenant(name="acme")
        s.add(t)
        await s.flush()
        return Principal(t.id, Role.ADMIN, "user", "u1", "alice")


def _config(smtp_port: int, **over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": smtp_port,
        "security": "none",
        "from_addr": "fleet@example.org",
        "to": ["ops@example.org", "oncall@example.net"],
        "subject_prefix": "[wrale]",
        "timeout_s": 5,
    }
    cfg.update(over)
    return cfg


async def _channel(db: Database, p: Principal, cfg: dict[str, Any]) -> str:
    async with db.session() as s:
        ch = await notify.create_channel(s, p, "mail", "email", cfg, egress=LOCAL)
        return ch.id


async def _queue(db: Database, p: Principal, channel_id: str, payload: dict[str, Any]) -> None:
    async with db.session() as s:
        assert await notify.queue(s, p.tenant_id, [channel_id], "alert.raised", payload, T0)


async def _delivery(db: Database, tenant_id: str) -> NotificationDelivery:
    async with db.session() as s:
        rows = (
            await s.scalars(
                select(NotificationDelivery).where(NotificationDelivery.tenant_id == tenant_id)
            )
        ).all()
    assert len(rows) == 1
    return rows[0]


async def test_a_plain_text_mail_without_starttls(database: Database) -> None:
    p = await _admin(database)
    async with smtp_sink() as sink:
        ch = await _channel(database, p, _config(sink.port))
        await _queue(database, p, ch, alert_payload())
        counts = await deliver_pending(database, T0, egress=LOCAL, public_url=PUBLIC_URL)
        assert counts == {"delivered": 1, "retry": 0, "failed": 0}
    (mail,) = sink.mails
    assert mail.mail_from == "fleet@example.org"
    assert mail.rcpt_tos == ["ops@example.org", "oncall@example.net"]
    msg = mail.message
    assert msg["Subject"] == "[wrale] [CRITICAL] rack-a-03: case opened"
    assert msg["From"] == "fleet@example.org"
    assert msg["To"] == "ops@example.org, oncall@example.net"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg.get_content_type() == "text/plain"
    body = msg.get_content()
    assert "CRITICAL alert raised on rack-a-03" in body
    assert "What: case opened" in body
    assert "Source: board event TAMPER:case" in body
    assert f"Dashboard: {PUBLIC_URL}/alerts/{'a' * 32}" in body
    assert "Raised: 2027-01-15 08:00:00 UTC" in body


async def test_a_cleared_rule_alert_reads_resolved(database: Database) -> None:
    p = await _admin(database)
    payload = alert_payload(
        rule_id="r" * 32,
        rule_name="hot cpu",
        metric="cpu_temp_c",
        severity="MAJOR",
        state="cleared",
        value=71.5,
        threshold=80.0,
        message="hot cpu: cpu_temp_c 83.2 > 80",
        cleared_at=T0 + 60,
    )
    payload["action"] = "clear"
    async with smtp_sink() as sink:
        ch = await _channel(database, p, _config(sink.port, subject_prefix=""))
        await _queue(database, p, ch, payload)
        await deliver_pending(database, T0, egress=LOCAL)
    (mail,) = sink.mails
    assert mail.message["Subject"] == "[RESOLVED MAJOR] rack-a-03: hot cpu: cpu_temp_c 83.2 > 80"
    body = mail.message.get_content()
    assert "MAJOR alert cleared on rack-a-03" in body
    assert "Source: rule 'hot cpu' on cpu_temp_c" in body
    assert "Value: 71.5 (threshold 80)" in body
    assert f"Dashboard: /alerts/{'a' * 32}" in body  # no public URL set: the path


async def test_starttls_asked_and_not_offered_sends_nothing(database: Database) -> None:
    p = await _admin(database)
    async with smtp_sink() as sink:
        ch = await _channel(database, p, _config(sink.port, security="starttls"))
        await _queue(database, p, ch, alert_payload())
        counts = await deliver_pending(database, T0, egress=LOCAL)
    assert counts["retry"] == 1
    assert sink.mails == []
    d = await _delivery(database, p.tenant_id)
    assert d.last_error is not None
    assert "STARTTLS" in d.last_error


async def test_a_refused_connection_is_retried_with_backoff(database: Database) -> None:
    p = await _admin(database)
    port = free_port()
    ch = await _channel(database, p, _config(port))
    await _queue(database, p, ch, alert_payload())
    assert await deliver_pending(database, T0, egress=LOCAL) == {
        "delivered": 0,
        "retry": 1,
        "failed": 0,
    }
    d = await _delivery(database, p.tenant_id)
    assert d.status == "pending"
    assert d.next_attempt_at == T0 + notify.backoff_s(1)
    assert d.last_error is not None
    assert "refused" in d.last_error.lower()
    # not due before its backoff
    assert await deliver_pending(database, T0 + 5, egress=LOCAL) == {
        "delivered": 0,
        "retry": 0,
        "failed": 0,
    }
    async with smtp_sink(port) as sink:
        counts = await deliver_pending(database, T0 + notify.backoff_s(1), egress=LOCAL)
    assert counts["delivered"] == 1
    assert len(sink.mails) == 1
    d = await _delivery(database, p.tenant_id)
    assert (d.status, d.attempts, d.last_error) == ("delivered", 2, None)


async def test_board_text_cannot_add_headers_or_recipients(database: Database) -> None:
    p = await _admin(database)
    hostile = alert_payload(message="rack-a-03: case opened\r\nBcc: thief@evil.example\r\n\r\nX")
    hostile["device"]["name"] = "rack\r\nCc: thief@evil.example"
    async with smtp_sink() as sink:
        ch = await _channel(database, p, _config(sink.port))
        await _queue(database, p, ch, hostile)
        await deliver_pending(database, T0, egress=LOCAL)
    (mail,) = sink.mails
    assert mail.rcpt_tos == ["ops@example.org", "oncall@example.net"]
    assert mail.message["Bcc"] is None
    assert mail.message["Cc"] is None
    subject = mail.message["Subject"]
    assert "\r" not in subject
    assert "\n" not in subject
    assert "Bcc: thief@evil.example" in subject  # kept as text on the one line


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"to": ["ops@example.org\r\nBcc: thief@evil.example"]}, "config.to.0"),
        ({"to": ["ops@example.org, thief@evil.example"]}, "config.to.0"),
        ({"to": ["Ops <ops@example.org>"]}, "config.to.0"),
        ({"to": []}, "config.to"),
        ({"from_addr": "fleet@example.org\nBcc: thief@evil.example"}, "config.from_addr"),
        ({"subject_prefix": "[wrale]\r\nBcc: thief@evil.example"}, "config.subject_prefix"),
        ({"host": "smtp.example.org\r\nRCPT TO:<x@evil.example>"}, "config.host"),
        ({"username": "fleet\r\nAUTH", "password": "pw", "security": "tls"}, "config.username"),
        ({"username": "fleet", "password": "secret"}, "config.password"),  # in clear: refused
        ({"username": "fleet"}, "config.password"),
        ({"security": "ssl"}, "config.security"),
        ({"port": 70000}, "config.port"),
        ({"bcc": ["x@evil.example"]}, "config.bcc"),
        ({"events": {"min_severity": "LOUD"}}, "config.events.min_severity"),
        ({"events": {"selector": {"rack_id": "../x"}}}, "config.events.selector.rack_id"),
    ],
)
async def test_hostile_configs_are_refused(
    database: Database, over: dict[str, Any], field: str
) -> None:
    p = await _admin(database)
    async with database.session() as s:
        with pytest.raises(InvalidRequestError) as caught:
            await notify.create_channel(s, p, "mail", "email", _config(25, **over), egress=LOCAL)
    assert caught.value.details["field"] == field, caught.value.message
    assert caught.value.message.startswith(f"{field}: ")


@pytest.mark.parametrize("host", ["127.0.0.1", "10.1.2.3", "169.254.169.254", "[::1]"])
async def test_an_internal_smtp_host_needs_the_operator(database: Database, host: str) -> None:
    p = await _admin(database)
    async with database.session() as s:
        with pytest.raises(EgressRefusedError) as caught:
            await notify.create_channel(
                s, p, "mail", "email", _config(25, host=host), egress=EgressPolicy()
            )
    assert caught.value.details["field"] == "config.host"
    assert "webhook_allowed_hosts" in caught.value.message


async def test_a_name_that_turns_internal_is_refused_at_send(database: Database) -> None:
    answers = {"smtp.example.org": ["93.184.215.14"]}

    async def resolver(host: str, port: int) -> list[str]:
        return answers[host]

    policy = EgressPolicy((), resolver)
    p = await _admin(database)
    async with smtp_sink() as sink:
        async with database.session() as s:
            ch = await notify.create_channel(
                s, p, "mail", "email", _config(sink.port, host="smtp.example.org"), egress=policy
            )
        answers["smtp.example.org"] = ["127.0.0.1"]  # DNS now points inside
        await _queue(database, p, ch.id, alert_payload())
        assert (await deliver_pending(database, T0, egress=policy))["retry"] == 1
    assert sink.sessions == 0  # never connected
    d = await _delivery(database, p.tenant_id)
    assert d.last_error is not None
    assert "loopback" in d.last_error


async def test_the_password_is_kept_and_never_shown(database: Database) -> None:
    p = await _admin(database)
    cfg = _config(587, security="starttls", username="fleet", password="SMTP-PASSWORD")
    async with database.session() as s:
        ch = await notify.create_channel(s, p, "mail", "email", cfg, egress=LOCAL)
        view = notify.channel_view(ch)
        assert view["config"]["has_password"] is True
        assert "SMTP-PASSWORD" not in repr(view)
        # an update without the password keeps it
        changed = {k: v for k, v in cfg.items() if k != "password"} | {"to": ["a@example.org"]}
        await notify.update_channel(s, p, ch.id, config=changed, egress=LOCAL)
        assert ch.config["password"] == "SMTP-PASSWORD"
        # a new server needs it again: it is not sent to a host it was not given for
        moved = changed | {"host": "127.0.0.2"}
        with pytest.raises(InvalidRequestError) as caught:
            await notify.update_channel(
                s, p, ch.id, config=moved, egress=EgressPolicy(("127.0.0.2",))
            )
        assert caught.value.details["field"] == "config.password"
        from wrale.fleet.brain.models.audit import AuditEntry

        entries = (await s.scalars(select(AuditEntry))).all()
        assert entries
        assert all("SMTP-PASSWORD" not in repr(e.before) + repr(e.after) for e in entries)


async def test_non_ascii_text_arrives_intact(database: Database) -> None:
    p = await _admin(database)
    payload = alert_payload(message="Kühlraum-3: inlet 41 °C")
    payload["device"]["name"] = "Kühlraum-3"
    async with smtp_sink() as sink:
        ch = await _channel(database, p, _config(sink.port, subject_prefix="[flotte·ops]"))
        await _queue(database, p, ch, payload)
        assert (await deliver_pending(database, T0, egress=LOCAL))["delivered"] == 1
    (mail,) = sink.mails
    assert mail.message["Subject"] == "[flotte·ops] [CRITICAL] Kühlraum-3: inlet 41 °C"
    assert "What: inlet 41 °C" in mail.message.get_content()
