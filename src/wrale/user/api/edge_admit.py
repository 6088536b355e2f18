"""Who may open a device socket, asked before it is accepted (both carriers of the device
channel: ``edge_wire`` and the ASGI route ``routes.edge``)."""

from __future__ import annotations

import logging
from typing import Any

from wrale.fleet.brain.channel.hub import ChannelHub

log = logging.getLogger("wrale.central.edge")


def bearer(header: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


DENIED = "X-Wrale-Device and a current device secret needed"
TOO_MANY = "too many connections from this address"


def denial(code: str, message: str) -> dict[str, Any]:
    """The JSON body of a refused device socket (HTTP 403 / 429)."""
    return {"error": {"code": code, "message": message, "details": {}}}


async def admission(hub: ChannelHub, host: str, device_id: str, secret: str | None) -> int:
    """Whether a device socket may be accepted: 0, or the HTTP status refusing it (429:
    too many sockets of ``host`` before their hello; 403: not a current credential).
    The caller counts the socket in ``hub.pending`` until its hello (``pending``)."""
    ctx = hub.ctx
    if hub.pending[host] >= ctx.settings.channel_max_pending_per_address:
        ctx.counters.inc("refused_sockets", "ws")
        if ctx.log_gate.ok(f"ws-pending:{host}"):
            log.warning("device channel: %s has too many sockets before hello; refusing", host)
        return 429
    ok = False
    if device_id and secret:
        hub.pending[host] += 1
        try:
            ok = await hub.credentials.ok(device_id, secret)
        finally:
            settle(hub, host)
    if not ok:
        ctx.counters.inc("refused_sockets", "ws")
        if ctx.log_gate.ok(f"ws-denied:{host}"):
            log.info("device channel: refused a socket from %s: bad credential", host)
        return 403
    return 0


def settle(hub: ChannelHub, host: str) -> None:
    """One socket of ``host`` is past its hello (or gone): it no longer counts as pending."""
    hub.pending[host] -= 1
    if hub.pending[host] <= 0:
        del hub.pending[host]
