"""``EdgeLink``: one accepted device socket, whatever server carries it.

The device channel's WebSocket has two carriers: ``edge_wire`` (the central's own
protocol under uvicorn, no ASGI call per socket: what ``wrale central`` runs) and the ASGI
route in ``routes.edge`` (any ASGI server, and the tests' in-process sockets). Both hand
the link what they read and give it a ``Wire`` to write to; everything else is here.

A connected board holds no task while it is idle. A frame read is decoded at once and
queued; a worker task runs while frames wait (up to ``GROUP_MAX`` in one transaction) and
ends when none do. Command results (``frames.urgent``) have their own small queue and
worker: an operator waits for them, so they do not queue behind the board's telemetry.
A full queue (frames or bytes) stops reading the socket, so a flood slows the sender
instead of growing memory. The session's pusher, too, runs only while there is something
to deliver (``DeviceSession.want``). Silence (no hello within
``channel_hello_timeout_s``, no frame within ``offline_after_s``) is found by one sweep
over all links (``edge_watch.LinkWatch``), not a timer per socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from wrale.fleet.brain.channel.frames import urgent
from wrale.fleet.brain.channel.hub import ChannelHub
from wrale.fleet.brain.channel.session import DeviceSession, SessionEndedError, goodbye
from wrale.fleet.sync.protocol import (
    MAX_HELLO_BYTES,
    Goodbye,
    Hello,
    Message,
    ProtocolError,
    decode,
    encode,
)
from wrale.shared.errors import WraleError
from wrale.user.api.edge_watch import hub_links

log = logging.getLogger("wrale.central.edge")

GROUP_MAX = 32  # frames handled in one transaction
BUFFER_FRAMES = 64  # frames received but not handled yet, per connection
BUFFER_BYTES = 8 * 1024 * 1024  # and their bytes (one frame is always let in)
RESULT_FRAMES = 16  # command results received but not handled yet, per connection
RESULT_BYTES = 1024 * 1024
CLOSE_CODES = {
    "unauthorized": 4401,
    "revoked": 4401,
    "quarantined": 4403,
    "held": 4403,
    "protocol": 4400,
    "replaced": 4409,
    "shutdown": 1012,
    "error": 1011,
}
SHUTDOWN = 1012  # the server closes every socket with it when it stops: boards reconnect

HELLO, OPENING, OPEN, DONE = range(4)
_TASKS: set[asyncio.Task[Any]] = set()  # closing and opening tasks, held until done


def spawn(
    coro: Coroutine[Any, Any, Any], also: set[asyncio.Task[Any]] | None = None
) -> asyncio.Task[Any]:
    """Run ``coro`` as a task held until it ends (and in ``also``: uvicorn's tasks, which
    a graceful shutdown waits for)."""
    task = asyncio.get_running_loop().create_task(coro)
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)
    if also is not None:
        also.add(task)
        task.add_done_callback(also.discard)
    return task


class Wire(Protocol):
    """What a link needs of its socket."""

    def write(self, text: str) -> None:
        """Queue a text message (ConnectionError once the socket is closed)."""

    async def drain(self) -> None:
        """Wait while the peer reads slower than the link writes."""

    def pause(self) -> None:
        """Stop reading the socket."""

    def resume(self) -> None:
        """Read it again."""

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake; the socket closes after it (or a timeout)."""


class EdgeLink:
    """One device socket from accept to close: hello, open, frames in, messages out."""

    __slots__ = (
        "_inbox",
        "_inbox_bytes",
        "_paused",
        "_results",
        "_results_bytes",
        "_urgent",
        "_worker",
        "closing",
        "expected",
        "hub",
        "keep",
        "last_rx",
        "on_hello",
        "phase",
        "remote",
        "secret",
        "session",
        "wire",
    )

    def __init__(
        self,
        hub: ChannelHub,
        wire: Wire,
        device_id: str,
        secret: str,
        remote: str | None,
        *,
        on_hello: Callable[[], None] | None = None,
        keep: set[asyncio.Task[Any]] | None = None,
    ) -> None:
        self.hub, self.wire = hub, wire
        self.expected, self.secret, self.remote = device_id, secret, remote
        self.on_hello, self.keep = on_hello, keep  # on_hello: once, when past HELLO
        self.phase = HELLO
        self.last_rx = time.monotonic()
        self.session: DeviceSession | None = None
        # lists, not deques: at most 64 short entries, and 56 bytes empty against 624
        self._inbox: list[tuple[Message, int]] = []
        self._inbox_bytes = 0
        self._results: list[tuple[Message, int]] = []
        self._results_bytes = 0
        self._worker: asyncio.Task[None] | None = None
        self._urgent: asyncio.Task[None] | None = None
        self._paused = False
        self.closing: asyncio.Task[Any] | None = None  # recording the end, once finished
        hub_links(hub).add(self)

    # ------------------------------------------------------------------ in

    def received(self, data: str | bytes, size: int) -> None:
        """A whole message read from the socket."""
        if self.phase == DONE:
            return
        self.last_rx = time.monotonic()
        try:
            if self.phase == HELLO:
                self._hello(data, size)
                return
            msg = decode(data)
        except ProtocolError as exc:
            self.hub.ctx.counters.inc("bad_frames", "ws")
            tag = self.session.device_id if self.session else self.expected[:64]
            log.info("device %s: protocol error: %s", tag, exc)
            sid = self.session.id if self.session else ""
            self.finish("protocol", goodbye("protocol", str(exc), session=sid))
            return
        if self.session is not None and not self.session.admit(msg):
            return
        if urgent(msg):
            self._results.append((msg, size))
            self._results_bytes += size
        else:
            self._inbox.append((msg, size))
            self._inbox_bytes += size
        if self._full():
            self._pause()
        if self.phase == OPEN:
            self._start_workers()

    def _hello(self, data: str | bytes, size: int) -> None:
        if size > MAX_HELLO_BYTES:
            raise ProtocolError(f"a hello of {size} bytes exceeds {MAX_HELLO_BYTES}")
        msg = decode(data)
        if not isinstance(msg, Hello):
            raise ProtocolError(f"the first frame must be hello, not {msg.T}")
        self._past_hello()
        if msg.device_id != self.expected:
            mismatch = "X-Wrale-Device and hello.device_id differ"
            self.finish("unauthorized", goodbye("unauthorized", mismatch, retry=False))
            return
        self.phase = OPENING
        self._pause()  # what the board sends next waits in the socket until it is open
        spawn(self._open(msg), self.keep)

    def _past_hello(self) -> None:
        call, self.on_hello = self.on_hello, None
        if call is not None:
            call()

    def lost(self, code: int) -> None:
        """The socket is gone (``code``: the peer's close code, or 1006)."""
        self.finish("shutdown" if code == SHUTDOWN else "disconnected")

    def silent(self, now: float, hello_s: float, offline_s: float) -> bool:
        """Ended for silence (no hello in ``hello_s``, no frame in ``offline_s``)?"""
        if self.phase == HELLO and now - self.last_rx > hello_s:
            self.finish("silent", goodbye("protocol", "no hello in time"))
            return True
        if self.phase in (OPENING, OPEN) and now - self.last_rx > offline_s:
            self.finish("silent")
            return True
        return False

    # ------------------------------------------------------------------ open

    async def _open(self, hello: Hello) -> None:
        session = self.hub.session(self.send)
        try:
            first = await session.open(hello, self.secret, remote=self.remote)
        except Exception:
            log.exception("device %s: could not open a session", hello.device_id[:64])
            self.finish("error", goodbye("shutdown", "server error; reconnect later"))
            return
        if isinstance(first, Goodbye):
            self.finish("refused", first)
            return
        if self.phase == DONE:  # the socket went while the session opened
            await session.close("disconnected")
            return
        self.session = session
        session.on_end = self._ended
        self.hub.register(session)
        self.phase = OPEN
        try:
            await self.send(first)
            await session.deliver(urgent=False)  # shares the next group commit
        except ConnectionError:
            self.finish("disconnected")
            return
        except Exception:  # logged; the hub's sweep or the next push delivers it
            log.exception("device %s: delivery on connect failed", session.device_id)
        if self.phase != OPEN:
            return
        self._start_workers()
        if not self._full():
            self._resume()

    # ------------------------------------------------------------------ work

    def _full(self) -> bool:
        return (
            len(self._inbox) >= BUFFER_FRAMES
            or self._inbox_bytes > BUFFER_BYTES
            or len(self._results) >= RESULT_FRAMES
            or self._results_bytes > RESULT_BYTES
        )

    def _pause(self) -> None:
        if not self._paused:
            self._paused = True
            self.wire.pause()

    def _resume(self) -> None:
        if self._paused:
            self._paused = False
            self.wire.resume()

    def _start_workers(self) -> None:
        loop = asyncio.get_running_loop()
        if self._results and self._urgent is None:
            self._urgent = loop.create_task(self._work(True))
        if self._inbox and self._worker is None:
            self._worker = loop.create_task(self._work(False))

    async def _work(self, results: bool) -> None:
        queue = self._results if results else self._inbox
        session = self.session
        assert session is not None
        try:
            while queue and self.phase == OPEN:
                group = queue[:GROUP_MAX]
                del queue[:GROUP_MAX]
                taken = [msg for msg, _ in group]
                size = sum(n for _, n in group)
                if results:
                    self._results_bytes -= size
                else:
                    self._inbox_bytes -= size
                await session.handle(taken)
                if self.phase == OPEN and not self._full():
                    self._resume()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failed(exc)
        finally:
            if results:
                self._urgent = None
            else:
                self._worker = None

    def _failed(self, exc: BaseException) -> None:
        session = self.session
        sid = session.id if session else ""
        device = session.device_id if session else self.expected[:64]
        if isinstance(exc, ConnectionError):
            self.finish("disconnected")
        elif isinstance(exc, ProtocolError):
            self.hub.ctx.counters.inc("bad_frames", "ws")
            log.info("device %s: protocol error: %s", device, exc)
            self.finish("protocol", goodbye("protocol", str(exc), session=sid))
        elif isinstance(exc, SessionEndedError):
            self.finish(exc.goodbye.code, exc.goodbye)
        elif isinstance(exc, WraleError):  # refused by a service: the device must change
            log.warning("device %s: frame refused: %s", device, exc.message)
            self.finish("protocol", goodbye("protocol", exc.message, session=sid))
        else:
            log.error("device %s: session failed", device, exc_info=exc)
            self.finish("error", goodbye("shutdown", "server error; reconnect later", session=sid))

    # ------------------------------------------------------------------ out

    async def send(self, msg: Message) -> None:
        """The session's ``send``: write now, then wait while the peer is behind."""
        self.wire.write(encode(msg))
        await self.wire.drain()

    def _ended(self) -> None:
        """The server ended the session (``DeviceSession.end``: its Goodbye is said)."""
        bye = self.session.goodbye if self.session else None
        self.finish(bye.code if bye else "error", bye, said=True)

    # ------------------------------------------------------------------ end

    def finish(self, reason: str, bye: Goodbye | None = None, *, said: bool = False) -> None:
        """End the link: say ``bye`` (unless ``said``), close the socket, record the end."""
        if self.phase == DONE:
            return
        self.phase = DONE
        self._past_hello()
        hub_links(self.hub).discard(self)
        me = asyncio.current_task()
        for task in (self._worker, self._urgent):
            if task is not None and task is not me:
                task.cancel()
        if bye is not None and not said:
            with contextlib.suppress(ConnectionError):
                self.wire.write(encode(bye))
        if bye is not None:
            code = CLOSE_CODES.get(bye.code, 1008)
            text = bye.message.encode()[:120].decode(errors="ignore")
        else:
            code, text = (1000 if reason == "disconnected" else 1001), ""
        try:
            self.wire.close(code, text)
        except Exception:  # the socket's end must not keep the session's from being written
            log.exception("device channel: closing a socket failed")
        session = self.session
        if session is not None:
            self.hub.unregister(session)
            session.on_end = None
            self.closing = spawn(session.close(reason), self.keep)
