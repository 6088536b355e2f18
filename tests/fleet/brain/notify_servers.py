"""Real receivers for the notification tests, on 127.0.0.1 in the test's event loop: an
SMTP server (aiosmtpd) that keeps every message it accepts, and an HTTP/1.1 server that
keeps every request (headers and body) and answers 200. Not mocks: the channels talk to
them over real sockets."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


@dataclass
class SmtpSink:
    """aiosmtpd's SMTP protocol on a loopback port; ``mails`` in arrival order."""

    port: int = 0
    mails: list[Mail] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    sessions: int = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        self.mails.append(Mail(str(envelope.mail_from), list(envelope.rcpt_tos), msg))
        self.arrived.set()
        return "250 OK"

    def protocol(self) -> SMTP:
        self.sessions += 1
        # no TLS context: the server offers no STARTTLS
        return SMTP(self, hostname="sink.test", ident="wrale test sink")


def free_port() -> int:
    """A loopback port nothing listens on (for "connection refused")."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def smtp_sink(port: int = 0) -> AsyncIterator[SmtpSink]:
    sink = SmtpSink()
    server = await asyncio.get_running_loop().create_server(sink.protocol, "127.0.0.1", port)
    sink.port = int(server.sockets[0].getsockname()[1])
    try:
        yield sink
    finally:
        server.close()
        await server.wait_closed()


@dataclass
class HttpSink:
    """A tiny HTTP/1.1 server: each request's (method, path, headers, body), then 200."""

    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            first, *lines = head.decode("latin-1").split("\r\n")
            method, path, _ = first.split(" ", 2)
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (ln.partition(":") for ln in lines if ln)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append((method, path, headers, body))
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def http_sink() -> AsyncIterator[HttpSink]:
    sink = HttpSink()
    server = await asyncio.start_server(sink.handle, "127.0.0.1", 0)
    sink.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield sink
    finally:
        server.close()


def alert_payload(**alert: Any) -> dict[str, Any]:
    """A queued payload as the alert paths write it (``notify_route.payload``)."""
    base: dict[str, Any] = {
        "id": "a" * 32,
        "rule_id": None,
        "rule_name": "event:TAMPER",
        "key": "d" * 32,
        "device_id": "d" * 32,
        "rack_id": None,
        "metric": "event:TAMPER:case",
        "severity": "CRITICAL",
        "state": "active",
        "value": None,
        "threshold": None,
        "message": "rack-a-03: case opened",
        "raised_at": 1_800_000_000.0,
        "updated_at": 1_800_000_000.0,
        "cleared_at": None,
        "flapping": False,
    }
    base.update(alert)
    return {
        "event": "alert.raised",
        "action": "raise",
        "alert": base,
        "device": {"id": base["device_id"], "name": "rack-a-03"},
    }
