"""The "email" channel type: a plain-text message over SMTP (STARTTLS, implicit TLS or none),
sent by ``smtplib`` in a worker thread so the event loop never blocks. The SMTP host goes
through the egress policy like a webhook URL, and the connection goes to the very address
that was checked (TLS still verifies the host's name)."""

from __future__ import annotations

import asyncio
import smtplib
import socket
import ssl
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from wrale.fleet.brain.services.egress import EgressRefusedError
from wrale.fleet.brain.services.notify_render import render
from wrale.fleet.brain.services.notify_types import DeliveryError, SendContext, validated

# an address as people write it in a form: local@domain.tld, printable ASCII only (no
# display names, comments, CR/LF or commas: nothing that could add a header or a recipient)
EMAIL_RE = (
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@"
    r"([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
# a host name or an IP address (IPv6 with or without brackets); length bounded by the field
HOST_RE = r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$|^\[?[0-9A-Fa-f:.]+\]?$"
PRINTABLE = r"^[^\x00-\x1f\x7f]+$"  # one line: no CR, LF or other control character
DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}
EHLO_NAME = "wrale-central"


class EmailConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field(pattern=HOST_RE, max_length=255)
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = Field(default=None, min_length=1, max_length=256, pattern=PRINTABLE)
    password: str | None = Field(default=None, min_length=1, max_length=256, pattern=PRINTABLE)
    from_addr: str = Field(pattern=EMAIL_RE, max_length=254)
    to: list[Annotated[str, Field(pattern=EMAIL_RE, max_length=254)]] = Field(
        min_length=1, max_length=20
    )
    subject_prefix: str = Field(default="", max_length=40, pattern=r"^[^\x00-\x1f\x7f]*$")
    timeout_s: float = Field(default=10.0, gt=0, le=30)

    @model_validator(mode="after")
    def _check(self) -> EmailConfig:
        self.to = list(dict.fromkeys(self.to))
        if self.port is None:
            self.port = DEFAULT_PORTS[self.security]
        if (self.username is None) != (self.password is None):
            raise ValueError("password: username and password go together")
        if self.password is not None and self.security == "none":
            raise ValueError("password: refused with security none (it would cross in clear)")
        return self


HINTS = {
    "host": "a host name or an IP address",
    "from_addr": "an e-mail address (local@domain.tld), nothing else",
    "to": "an e-mail address (local@domain.tld), one a line, nothing else",
    "username": "one line of printable characters",
    "password": "one line of printable characters",
    "subject_prefix": "one line of printable characters",
}


def message(
    config: dict[str, Any], payload: dict[str, Any], public_url: str | None
) -> EmailMessage:
    """The plain-text mail of one payload; header values come from ``render`` (one line)."""
    r = render(payload, public_url)
    msg = EmailMessage()
    prefix = config.get("subject_prefix") or ""
    msg["Subject"] = f"{prefix} {r.title}".strip() if prefix else r.title
    msg["From"] = Address(addr_spec=config["from_addr"])
    msg["To"] = [Address(addr_spec=a) for a in config["to"]]
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(domain=config["from_addr"].rpartition("@")[2])
    msg["Auto-Submitted"] = "auto-generated"
    body = [*r.lines, ""]
    if r.link:
        body.append(f"Dashboard: {r.link}")
    body += ["", "-- ", "Wrale Fleet notifications"]
    msg.set_content("\n".join(body) + "\n")
    return msg


class _PinnedSMTP(smtplib.SMTP):
    """Connects to the checked address; the host name stays for EHLO and STARTTLS's SNI."""

    def __init__(self, address: str, **kwargs: Any) -> None:
        self._address = address
        super().__init__(**kwargs)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return socket.create_connection((self._address, port), timeout)


class _PinnedSMTPS(smtplib.SMTP_SSL):
    """``_PinnedSMTP`` with TLS from the first byte, verified against the host name."""

    def __init__(self, address: str, **kwargs: Any) -> None:
        self._address = address
        super().__init__(**kwargs)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        raw = socket.create_connection((self._address, port), timeout)
        return self.context.wrap_socket(raw, server_hostname=host)  # the name, not the address


def _send_blocking(config: dict[str, Any], addresses: list[str], msg: EmailMessage) -> None:
    """Try each checked address in turn (in a worker thread)."""
    last: Exception | None = None
    timeout = float(config.get("timeout_s", 10))
    tls = ssl.create_default_context()
    for address in addresses:
        try:
            if config["security"] == "tls":
                smtp: smtplib.SMTP = _PinnedSMTPS(
                    address, local_hostname=EHLO_NAME, timeout=timeout, context=tls
                )
            else:
                smtp = _PinnedSMTP(address, local_hostname=EHLO_NAME, timeout=timeout)
            smtp.connect(config["host"], config["port"])
        except (OSError, smtplib.SMTPException) as exc:
            last = exc
            continue
        with smtp:
            smtp.ehlo()
            if config["security"] == "starttls":
                if not smtp.has_extn("starttls"):
                    raise DeliveryError("the server offers no STARTTLS: not sending in clear")
                smtp.starttls(context=tls)
                smtp.ehlo()
            if config.get("username"):
                smtp.login(config["username"], config["password"])
            refused = smtp.send_message(msg)
            if refused:
                raise DeliveryError(f"recipients refused: {', '.join(sorted(refused))}")
            return
    raise OSError(str(last) if last else "no address to connect to")


class EmailChannel:
    """Plain-text mail to ``to`` from ``from_addr`` through the configured SMTP server."""

    type: ClassVar[str] = "email"
    secret_fields: ClassVar[tuple[str, ...]] = ("password",)

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        return validated(EmailConfig, config, HINTS)

    async def send(self, config: dict[str, Any], payload: dict[str, Any], ctx: SendContext) -> None:
        host, port = config["host"], int(config["port"])
        try:
            found = await ctx.egress.addresses(host, port, field="config.host")
        except EgressRefusedError as exc:
            raise DeliveryError(exc.message) from None
        except (OSError, TimeoutError, UnicodeError) as exc:
            raise DeliveryError(f"cannot resolve {host}: {type(exc).__name__}") from None
        msg = message(config, payload, ctx.public_url)
        deadline = float(config.get("timeout_s", 10)) * 3  # connect, TLS and the exchange
        try:
            async with asyncio.timeout(deadline):
                await asyncio.to_thread(_send_blocking, config, [str(a) for a in found], msg)
        except TimeoutError:
            raise DeliveryError(f"no answer within {deadline:g} s") from None
        except smtplib.SMTPException as exc:
            raise DeliveryError(f"SMTP: {type(exc).__name__}: {str(exc)[:200]}") from None
        except (OSError, ssl.SSLError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {str(exc)[:200]}") from None
