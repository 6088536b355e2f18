"""The link to the central server: dial with backoff (full jitter), and per session
``Hello`` → ``Welcome``, then a receiver, the sender (``outflow``) and ``Status``
heartbeats until the link drops or the server says ``Goodbye``. A part of ``EdgeAgent``;
it hands what it receives to the other parts and applies nothing itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from wrale.fleet.edge.agentcore import AgentCore, Flow, Mode, log
from wrale.fleet.sync.protocol import (
    STREAMS,
    Ack,
    Command,
    CommandResult,
    Desired,
    Goodbye,
    Hello,
    ProtocolError,
    Status,
    Welcome,
)
from wrale.fleet.sync.transport.base import Connection, ConnectionClosed, DialError, Refused

RESULT_RESEND_S = 600.0  # results this recent are sent again at every new session


class AgentLink(AgentCore):
    """The agent's session loop."""

    async def _hello(self) -> Hello:
        acked = {s: await self._io(self.store.acked, s) for s in STREAMS}
        return Hello(
            device_id=self.device_id,
            agent_version=self.agent_version,
            acked=acked,
            desired_version=self._desired.version if self._desired else 0,
            reported_version=self._reported.version if self._reported else 0,
            mode=self._mode.value,
            session=uuid.uuid4().hex,
        )

    async def _link_loop(self) -> None:
        """Dial, run the session, and after it ends wait (backoff with full jitter)."""
        failures = 0
        while True:
            self._counts["dials"] += 1
            try:
                conn, welcome = await self.dialer(await self._hello())
            except Refused as exc:
                await self._on_goodbye(exc.goodbye)
            except (DialError, ConnectionClosed, OSError, TimeoutError) as exc:
                self._counts["dial_failures"] += 1
                failures += 1
                level = logging.WARNING if failures == 1 else logging.DEBUG
                log.log(level, "cannot reach the central server: %s", exc)
            else:
                failures = 0
                started = self.clock.monotonic()
                try:
                    await self._session(conn, welcome)
                except Refused as exc:
                    await self._on_goodbye(exc.goodbye)
                except ConnectionClosed as exc:
                    log.info("link to the central server lost: %s", exc.reason)
                finally:
                    self._conn = None
                    self._flows = {}
                    self._disconnected_since = self.clock.monotonic()
                    with contextlib.suppress(Exception):
                        await conn.close()
                if self.clock.monotonic() - started >= self.settings.backoff_reset_s:
                    self._backoff.reset()
            if self._refused is not None and not self._refused.retry:
                log.error(
                    "the central server refused this device for good (%s: %s); not "
                    "reconnecting. Telemetry keeps being stored; restart the agent once "
                    "the device is allowed again.",
                    self._refused.code,
                    self._refused.message,
                )
                return
            await self.clock.sleep(self._backoff.next_delay())

    async def _on_goodbye(self, goodbye: Goodbye) -> None:
        self._refused = goodbye
        log.warning(
            "the central server ended the session: %s (%s)%s",
            goodbye.code,
            goodbye.message,
            "" if goodbye.retry else "; it says not to retry",
        )
        if goodbye.code == "quarantined":
            await self._set_mode(Mode.SAFE)

    async def _session(self, conn: Connection, welcome: Welcome) -> None:
        self._counts["sessions"] += 1
        self._refused = None
        flows: dict[str, Flow] = {}
        for stream in STREAMS:
            acked = await self._io(self.store.welcome, stream, welcome.acked.get(stream, 0))
            flows[stream] = Flow(acked, acked)
        self._flows = flows
        self._conn = conn
        self._disconnected_since = None
        log.info(
            "connected to the central server (server %s; stored telemetry %d, events %d)",
            welcome.server_version,
            flows["telemetry"].acked,
            flows["events"].acked,
        )
        if self._mode is Mode.AUTONOMOUS:
            await self._set_mode(Mode.NORMAL)
        await self._report(resend=True)
        for cid, body in await self._io(
            self.store.results_to_send, self.clock.now() - RESULT_RESEND_S
        ):
            if await self._send(CommandResult(**body)):
                await self._io(self.store.mark_sent, cid)
        heartbeat_s = welcome.heartbeat_s if welcome.heartbeat_s > 0 else self.settings.heartbeat_s
        tasks = [
            asyncio.create_task(self._receiver(conn)),
            asyncio.create_task(self._sender(conn)),
            asyncio.create_task(self._heartbeat(conn, heartbeat_s)),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                t.result()
            raise ConnectionClosed("session ended")
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _receiver(self, conn: Connection) -> None:
        while True:
            try:
                msg = await conn.recv()
            except ProtocolError as exc:
                log.warning("ignored a bad frame from the central server: %s", exc)
                continue
            if isinstance(msg, Ack):
                await self._on_ack(msg)
            elif isinstance(msg, Desired):
                await self._on_desired(msg)
            elif isinstance(msg, Command):
                self._on_command(msg)
            elif isinstance(msg, Goodbye):
                raise Refused(msg)
            else:
                log.debug("ignored %s from the central server", msg.T)

    async def _heartbeat(self, conn: Connection, interval_s: float) -> None:
        while True:
            await self.clock.sleep(interval_s)
            status = Status(
                ts=self.clock.now(),
                mode=self._mode.value,
                outbox={s: self.store.depth(s) for s in STREAMS},
                dropped={s: self.store.dropped(s) for s in STREAMS},
                live=dict(self._live),
            )
            await conn.send(status)
            await self._report()
