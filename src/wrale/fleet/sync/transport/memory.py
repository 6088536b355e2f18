"""An in-memory transport for tests: a connected pair of ``Connection``s, and a
``MemoryNetwork`` whose ``dial`` is a ``Dialer`` to an in-process server loop.

Every frame goes through ``encode``/``decode`` like on a real wire. ``cut()`` breaks a link
the way a network does: frames not yet received are lost and both ends see
``ConnectionClosed``; ``close()`` is a clean close that delivers what was sent first.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Final

from wrale.fleet.sync.protocol import Hello, Message, Welcome, decode, encode
from wrale.fleet.sync.transport.base import Connection, ConnectionClosed, DialError, handshake

_CLOSE: Final = "\x00close"


class MemoryConnection:
    """One end of an in-memory link (make them with ``memory_pair``)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.peer: MemoryConnection | None = None
        self._inbox: asyncio.Queue[str] = asyncio.Queue()
        self.closed = False
        self.close_reason = ""
        self.sent = 0

    async def send(self, msg: Message) -> None:
        if self.closed or self.peer is None:
            raise ConnectionClosed(self.close_reason or "connection closed")
        frame = encode(msg)  # a message the codec refuses never reaches the wire
        self.sent += 1
        self.peer._inbox.put_nowait(frame)
        await asyncio.sleep(0)

    async def recv(self) -> Message:
        if self.closed and self._inbox.empty():
            raise ConnectionClosed(self.close_reason or "connection closed")
        frame = await self._inbox.get()
        if frame == _CLOSE:
            self.closed = True
            raise ConnectionClosed(self.close_reason or "closed by the peer")
        return decode(frame)

    async def close(self) -> None:
        """Clean close: the peer receives what was sent, then ``ConnectionClosed``."""
        if self.closed:
            return
        self._shut("closed")
        if self.peer is not None and not self.peer.closed:
            self.peer.close_reason = "closed by the peer"
            self.peer._inbox.put_nowait(_CLOSE)

    def cut(self, reason: str = "link cut") -> None:
        """Break the link: frames in flight in both directions are lost."""
        for end in (self, self.peer):
            if end is not None and not end.closed:
                end._drop()
                end._shut(reason)

    def _drop(self) -> None:
        while not self._inbox.empty():
            self._inbox.get_nowait()

    def _shut(self, reason: str) -> None:
        self.closed = True
        self.close_reason = reason
        self._inbox.put_nowait(_CLOSE)  # wakes a pending recv


def memory_pair(a: str = "device", b: str = "server") -> tuple[MemoryConnection, MemoryConnection]:
    """Two connected ends."""
    x, y = MemoryConnection(a), MemoryConnection(b)
    x.peer, y.peer = y, x
    return x, y


Serve = Callable[[Connection], Awaitable[None]]


class MemoryNetwork:
    """Connects dialing agents to ``serve`` (the server's side of each connection).

    ``dial`` is a ``Dialer``. ``cut()`` breaks every open link; ``down()`` also refuses new
    dials until ``up()``; ``aclose()`` cancels the server tasks.
    """

    def __init__(self, serve: Serve, *, handshake_timeout_s: float = 5.0) -> None:
        self.serve = serve
        self.handshake_timeout_s = handshake_timeout_s
        self.is_up = True
        self.dials = 0
        self.links: list[MemoryConnection] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def dial(self, hello: Hello) -> tuple[Connection, Welcome]:
        self.dials += 1
        if not self.is_up:
            raise DialError("network is down")
        device, server = memory_pair()
        self.links.append(device)
        task = asyncio.create_task(self._serve(server))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        welcome = await handshake(device, hello, self.handshake_timeout_s)
        return device, welcome

    async def _serve(self, conn: MemoryConnection) -> None:
        try:
            await self.serve(conn)
        except ConnectionClosed:
            pass
        finally:
            await conn.close()

    def cut(self) -> None:
        for link in self.links:
            link.cut()
        self.links = [link for link in self.links if not link.closed]

    def down(self) -> None:
        self.is_up = False
        self.cut()

    def up(self) -> None:
        self.is_up = True

    async def aclose(self) -> None:
        self.down()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
