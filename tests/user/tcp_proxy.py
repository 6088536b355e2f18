"""A loopback TCP proxy that a test can cut and restore: the network between an agent and the
central server, failing the way a real link does (open connections dropped, new ones refused).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass, field


@dataclass
class CuttableProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target_port`` in its own thread and event loop."""

    target_port: int
    port: int = 0
    _loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    _thread: threading.Thread | None = None
    _server: asyncio.Server | None = None
    _open: set[asyncio.StreamWriter] = field(default_factory=set)
    _cut: bool = False

    def start(self) -> CuttableProxy:
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._accept, "127.0.0.1", self.port)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="cuttable-proxy", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut:
            writer.transport.abort()
            return
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._open.update((writer, up_w))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    if self._cut:
                        break
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))
        self._open.difference_update((writer, up_w))

    def _call(self, fn: object) -> None:
        fut = asyncio.run_coroutine_threadsafe(fn, self._loop)  # type: ignore[arg-type]
        fut.result(10)

    async def _abort_all(self) -> None:
        for w in list(self._open):
            w.transport.abort()
        self._open.clear()

    def cut(self) -> None:
        """Drop every open connection and refuse new ones until ``restore``."""
        self._cut = True
        self._call(self._abort_all())

    def restore(self) -> None:
        self._cut = False

    def retarget(self, port: int) -> None:
        """Forward new connections to ``port`` (a restarted server on another port)."""
        self.target_port = port

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._abort_all()

    def stop(self) -> None:
        # closed on the proxy's own loop: asyncio.Server.close() from another thread races
        # with a connection detaching there (TypeError out of Server._wakeup on 3.11)
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
