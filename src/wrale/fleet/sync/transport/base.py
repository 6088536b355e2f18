"""What every transport of the device channel provides, and the handshake they share.

A ``Connection`` sends and receives protocol ``Message``s (already decoded); a ``Dialer``
opens one to the central server, sends the agent's ``Hello`` and returns the connection
with the server's ``Welcome``. A server that says ``Goodbye`` instead raises ``Refused``;
a network that fails raises ``DialError``. The agent needs nothing else of a transport.

    ConnectionClosed          the link is gone (clean close or cut); redial
    DialError                 could not connect at all (DNS, refused, TLS, timeout); redial
    Refused                   the server said Goodbye; ``goodbye.retry`` says if redialing helps
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol
from urllib.parse import urlsplit

from wrale.fleet.sync.protocol import Goodbye, Hello, Message, ProtocolError, Welcome
from wrale.shared.errors import ConfigError

log = logging.getLogger(__name__)

CLOSE_UNAUTHORIZED = 4401  # WebSocket close code of a refused credential


class ConnectionClosed(Exception):  # noqa: N818 - the name the contract uses
    """The link is gone; ``code``/``reason`` as the far end (or the transport) gave them."""

    def __init__(self, reason: str = "connection closed", code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class DialError(Exception):
    """No connection could be opened (the server was never reached or the handshake failed)."""


class Refused(Exception):  # noqa: N818 - pairs with ConnectionClosed
    """The server ended the session with ``Goodbye`` (during the handshake or later)."""

    def __init__(self, goodbye: Goodbye) -> None:
        super().__init__(f"{goodbye.code}: {goodbye.message}")
        self.goodbye = goodbye


class Connection(Protocol):
    """One session's link to the central server."""

    async def send(self, msg: Message) -> None:
        """Send one message; ``ConnectionClosed`` if the link is gone."""
        ...

    async def recv(self) -> Message:
        """The next message; ``ConnectionClosed`` when the link is gone, ``ProtocolError``
        for a frame that is not a valid message (the link stays usable)."""
        ...

    async def close(self) -> None:
        """Close the link (idempotent)."""
        ...


Dialer = Callable[[Hello], Awaitable[tuple[Connection, Welcome]]]
"""Open a connection, send ``hello`` and wait for ``Welcome``: ``(connection, welcome)``.
Raises ``DialError``, ``Refused`` or ``ConnectionClosed``; never returns half-open."""


async def handshake(conn: Connection, hello: Hello, timeout_s: float = 10.0) -> Welcome:
    """Send ``hello`` on a fresh connection and wait for the server's first answer.

    ``Welcome`` is returned; ``Goodbye`` raises ``Refused``; silence for ``timeout_s`` or
    any other first message raises ``DialError``. The connection is closed on failure.
    """
    try:
        await conn.send(hello)
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that arrives
        # as the answer does, and an agent being stopped would then carry on dialling.
        async with asyncio.timeout(timeout_s):
            first = await conn.recv()
    except TimeoutError:
        await conn.close()
        raise DialError(f"no answer to hello within {timeout_s:g} s") from None
    except ProtocolError as exc:
        await conn.close()
        raise DialError(f"the server answered hello with a bad frame: {exc}") from None
    except BaseException:
        await conn.close()
        raise
    if isinstance(first, Goodbye):
        await conn.close()
        raise Refused(first)
    if not isinstance(first, Welcome):
        await conn.close()
        raise DialError(f"the server answered hello with {first.T!r}, not welcome")
    return first


# ----------------------------------------------------------------------------- URL security


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` names this machine (``localhost``, 127.0.0.0/8, ::1)."""
    if not host:
        return False
    if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(
        ".localhost"
    ):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def require_secure(url: str, *, insecure: bool, what: str = "the central server") -> bool:
    """Check that ``url`` may be used: TLS (``https``/``wss``/``mqtts``) always, plain text
    only to loopback or with ``insecure`` (then a warning is logged). Returns whether the
    URL uses TLS; ``ConfigError`` for a refused or malformed URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("https", "wss", "mqtts"):
        if not parts.hostname:
            raise ConfigError(f"{what}: {url!r} has no host")
        return True
    if scheme not in ("http", "ws", "mqtt"):
        raise ConfigError(f"{what}: {url!r} must start with https://, wss:// (or mqtts://)")
    if not parts.hostname:
        raise ConfigError(f"{what}: {url!r} has no host")
    if is_loopback(parts.hostname):
        return False
    if not insecure:
        raise ConfigError(
            f"{what}: {url!r} is not encrypted; use https:// / wss://, or --insecure "
            "(credentials would travel in clear text)"
        )
    log.warning(
        "INSECURE: talking to %s at %s without TLS; the device credential travels in clear",
        what,
        url,
    )
    return False
