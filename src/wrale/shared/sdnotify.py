"""systemd's notification protocol (``sd_notify``) in the standard library: one AF_UNIX
datagram per message to ``$NOTIFY_SOCKET`` (a path, or ``@name`` for an abstract socket).

Outside systemd (no ``$NOTIFY_SOCKET``) every call is a no-op. A failed send is logged once
and never raised: telling systemd about progress must never stop the daemon itself.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger("wrale.sdnotify")

# systemd reads at most this much per datagram (NOTIFY_BUFFER_MAX in src/core/manager.c).
MAX_MESSAGE_BYTES = 4096


def socket_address(value: str) -> str | bytes | None:
    """The ``sendto`` address of a ``$NOTIFY_SOCKET`` value: ``/path`` as is, ``@name`` as
    the abstract name ``\\0name``; anything else (``vsock:``, relative paths) is refused."""
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return b"\0" + value[1:].encode("utf-8")
    return None


class Notifier:
    """Sends state lines to the service manager (``READY=1``, ``STATUS=…``, ``WATCHDOG=1``,
    ``STOPPING=1``). Build it once with :meth:`from_environ` in the daemon's entry point."""

    def __init__(self, address: str | bytes | None, *, watchdog_usec: int | None = None) -> None:
        self.address = address
        self.watchdog_usec = watchdog_usec
        self._sock: socket.socket | None = None
        self._warned = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """Read ``NOTIFY_SOCKET`` and the watchdog (``WATCHDOG_USEC`` for this process:
        ``WATCHDOG_PID`` unset or our pid), as ``sd_notify(3)`` and ``sd_watchdog_enabled(3)``
        describe them."""
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET", "")
        address = socket_address(raw) if raw else None
        if raw and address is None:
            log.warning("NOTIFY_SOCKET=%r is not a unix socket address; not notifying", raw)
        usec: int | None = None
        pid = env.get("WATCHDOG_PID", "")
        if pid in ("", str(os.getpid())):
            value = env.get("WATCHDOG_USEC", "")
            usec = int(value) if value.isdigit() and int(value) > 0 else None
        return cls(address, watchdog_usec=usec)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    @property
    def watchdog_s(self) -> float | None:
        """The watchdog timeout systemd expects pings within, in seconds (None: no watchdog)."""
        return None if self.watchdog_usec is None else self.watchdog_usec / 1_000_000

    def notify(self, **fields: str | int) -> bool:
        """Send ``KEY=value`` lines, e.g. ``notify(READY=1, STATUS="sampling")``. Returns
        whether a datagram was sent."""
        if self.address is None or not fields:
            return False
        lines = []
        for key, value in fields.items():
            text = str(value).replace("\n", " ")
            lines.append(f"{key}={text}")
        data = "\n".join(lines).encode("utf-8")[:MAX_MESSAGE_BYTES]
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(data, self.address)
        except OSError as exc:
            if not self._warned:
                log.warning("cannot notify systemd at %r: %s", self.address, exc)
                self._warned = True
            return False
        if self._warned:
            log.info("notifying systemd again")
            self._warned = False
        return True

    def ready(self, status: str) -> bool:
        return self.notify(READY=1, STATUS=status)

    def status(self, status: str) -> bool:
        return self.notify(STATUS=status)

    def watchdog(self) -> bool:
        return self.notify(WATCHDOG=1)

    def stopping(self, status: str = "stopping") -> bool:
        return self.notify(STOPPING=1, STATUS=status)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
