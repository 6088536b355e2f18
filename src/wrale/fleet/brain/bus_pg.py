"""``PgRelay``: the event bus across replicas on PostgreSQL, with LISTEN/NOTIFY on one
dedicated asyncpg connection per replica (outside the pool: a LISTEN lives as long as its
connection).

- ``publish`` hands each event to an outbox (bounded, never blocks); a sender task packs
  the outbox into NOTIFY payloads (``bus_wire``) and sends them in one statement.
- Notifications from the other replicas go to ``EventBus.deliver_remote``; this
  replica's own echoes (its ``replica_id``) are dropped.
- The connection is watched (termination callback, a ping when idle); when it drops, the
  relay reconnects with backoff. What others sent meanwhile is lost, and what this
  replica publishes meanwhile waits in the outbox (at most ``OUTBOX_MAX``, at most
  ``STALE_S`` old): events are live hints, the state is always in the database.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

from wrale.fleet.brain import bus_wire
from wrale.fleet.brain.bus import BusEvent, EventBus
from wrale.fleet.sync.backoff import Backoff

log = logging.getLogger("wrale.central.bus")

CHANNEL = "wrale_events"
OUTBOX_MAX = 10_000  # events waiting to be sent; beyond, the oldest are dropped
STALE_S = 30.0  # an event waiting longer (the connection was down) is dropped
PING_S = 10.0  # an idle connection is checked this often
TIMEOUT_S = 10.0  # for connecting and for each statement
NOTIFY_SQL = "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p"


def asyncpg_dsn(database_url: str) -> str:
    """``postgresql+asyncpg://…`` (SQLAlchemy's URL) as the DSN asyncpg takes."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


Queued = tuple[float, BusEvent, int]  # (queued at, event, failed sends)


@dataclass
class RelayStats:
    sent: int = 0  # events sent
    received: int = 0  # events from other replicas delivered here
    dropped: int = 0  # events never sent (outbox full, stale, or too large)
    missed: int = 0  # payloads of other replicas known lost (gaps in their numbers)
    malformed: int = 0  # notifications that were not ours
    connects: int = 0

    def prometheus(self) -> list[str]:
        """The counters in the Prometheus text format (``/metrics`` on PostgreSQL)."""
        lines: list[str] = []
        for name, help_text in RELAY_HELP.items():
            metric = f"wrale_bus_relay_{name}_total"
            lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} counter"]
            lines.append(f"{metric} {getattr(self, name)}")
        return lines


RELAY_HELP = {
    "sent": "Live events this replica sent to the others (PostgreSQL NOTIFY).",
    "received": "Live events of other replicas delivered here.",
    "dropped": "Live events never sent: relay outbox full, stale, or too large.",
    "missed": "Payloads of other replicas known lost (gaps in their numbers).",
    "malformed": "Notifications on the channel that were not the relay's.",
    "connects": "Times the relay (re)connected to listen.",
}


class PgRelay:
    def __init__(self, bus: EventBus, database_url: str, *, backoff_cap_s: float = 5.0) -> None:
        self.bus = bus
        self.dsn = asyncpg_dsn(database_url)
        self.stats = RelayStats()
        self.connected = asyncio.Event()  # listening now
        self._backoff = Backoff(base_s=0.2, cap_s=backoff_cap_s)
        # (queued at, event, sends tried): one retry after a failed send, then dropped
        self._outbox: collections.deque[Queued] = collections.deque()
        self._wake = asyncio.Event()
        self._lost = asyncio.Event()
        self._number = 0
        self._expected: dict[str, int] = {}  # replica → the number due next from it
        self._task: asyncio.Task[None] | None = None
        self._conn: Any = None

    # ------------------------------------------------------------------ publish side

    def offer(self, event: BusEvent) -> None:
        """The bus's relay hook: queue ``event`` for the other replicas; never blocks."""
        if len(self._outbox) >= OUTBOX_MAX:
            self._outbox.popleft()
            self.stats.dropped += 1
        self._outbox.append((time.monotonic(), event, 0))
        self._wake.set()

    def _take(self) -> list[Queued]:
        cutoff = time.monotonic() - STALE_S
        out: list[Queued] = []
        while self._outbox:
            item = self._outbox.popleft()
            if item[0] < cutoff:
                self.stats.dropped += 1
            else:
                out.append(item)
        return out

    def _put_back(self, items: list[Queued]) -> None:
        """Events whose send failed (the connection broke, mostly): first in line for the
        next connection, once. If the statement did reach the database before it broke,
        they arrive twice: a wake-up or a dashboard refresh twice is harmless, one lost is
        a delay."""
        again = [(at, ev, tries + 1) for at, ev, tries in items if tries == 0]
        again = again[max(0, len(again) - (OUTBOX_MAX - len(self._outbox))) :]
        self.stats.dropped += len(items) - len(again)
        self._outbox.extendleft(reversed(again))

    async def _send(self, conn: Any, events: list[BusEvent]) -> None:
        payloads = bus_wire.encode(self.bus.replica_id, self._number, events)
        self._number += len(payloads)
        if not payloads:
            self.stats.dropped += len(events)
            return
        await conn.execute(NOTIFY_SQL, CHANNEL, payloads, timeout=TIMEOUT_S)
        self.stats.sent += len(events)

    # ------------------------------------------------------------------ receive side

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            packet = bus_wire.decode(payload)
        except ValueError as exc:
            self.stats.malformed += 1
            log.warning("bus: ignored a notification on %s: %s", CHANNEL, exc)
            return
        if packet.replica == self.bus.replica_id:
            return  # our own echo: delivered here when published
        gap = bus_wire.missed(self._expected.get(packet.replica), packet.number)
        if gap:
            self.stats.missed += gap
            log.info("bus: %d payload(s) of replica %s were lost", gap, packet.replica)
        self._expected[packet.replica] = packet.number + 1
        for ev in packet.events:
            self.stats.received += 1
            self.bus.deliver_remote(ev)

    # ------------------------------------------------------------------ life

    async def start(self) -> None:
        """Begin relaying; returns at once (the first connection is made in the
        background, with the same backoff as a reconnect)."""
        if self._task is None:
            self.bus.relay_to(self.offer)
            self._task = asyncio.create_task(self._run(), name="wrale-bus-relay")

    async def stop(self) -> None:
        self.bus.relay_to(None)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._close()

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        self.connected.clear()
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2)
            with contextlib.suppress(Exception):
                conn.terminate()

    async def _run(self) -> None:
        down_since: float | None = None
        while True:
            try:
                await self._connect()
                if down_since is not None:
                    log.warning(
                        "bus: listening again after %.1f s (events of the other replicas "
                        "in that time were not received)",
                        time.monotonic() - down_since,
                    )
                down_since = None
                self._backoff.reset()
                await self._pump()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database went away, a timeout, a refused login
                if down_since is None:
                    down_since = time.monotonic()
                    log.warning("bus: lost the database listener (%s); reconnecting", exc)
            await self._close()
            await asyncio.sleep(self._backoff.next_delay())

    async def _connect(self) -> None:
        self._lost.clear()
        conn = await asyncpg.connect(self.dsn, timeout=TIMEOUT_S)
        self._conn = conn
        conn.add_termination_listener(self._on_terminated)
        await conn.add_listener(CHANNEL, self._on_notify)
        self.stats.connects += 1
        self.connected.set()
        if self._outbox:  # published while the connection was down: send now
            self._wake.set()

    def _on_terminated(self, conn: Any) -> None:
        if conn is not self._conn:  # one closed earlier: its callback may come late
            return
        self._lost.set()
        self._wake.set()

    async def _pump(self) -> None:
        conn = self._conn
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11 a wait_for whose event is set in
            # the turn the task is cancelled returns normally and the cancellation is lost
            # (stop() then waited for ever: the hang of a test's teardown, now and then)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PING_S):
                    await self._wake.wait()
            self._wake.clear()
            if self._lost.is_set() or conn.is_closed():
                raise ConnectionError("the listening connection closed")
            items = self._take()
            if items:
                try:
                    await self._send(conn, [ev for _, ev, _ in items])
                except Exception:
                    self._put_back(items)
                    raise
            else:
                await conn.fetchval("SELECT 1", timeout=TIMEOUT_S)


async def start_relay(bus: EventBus, database_url: str) -> PgRelay | None:
    """A started relay for ``bus`` when the database is PostgreSQL; None on SQLite (one
    process: the bus alone reaches everyone)."""
    if not database_url.startswith("postgresql"):
        return None
    relay = PgRelay(bus, database_url)
    await relay.start()
    return relay
