"""``EdgeLink`` (``user.api.edge_link``) on a real hub and database, fed as a socket feeds it:
a flood stops the reading and resumes it once handled, nothing lost; an idle board holds
no task; command results do not wait behind telemetry; the silence sweep. The ``Socket``
below is the test's end of the connection (the link needs a ``Wire``), not a mock of our
code."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.fleet.brain.channel_kit import SAFETY_S, Kit, make_kit
from wrale.fleet.brain.channel.hub import ChannelHub
from wrale.fleet.brain.db import Database
from wrale.fleet.sync.protocol import (
    Ack,
    Goodbye,
    Hello,
    Message,
    TelemetryBatch,
    Welcome,
    decode,
    encode,
)
from wrale.user.api.edge_link import BUFFER_FRAMES, DONE, OPEN, EdgeLink
from wrale.user.api.edge_watch import hub_links


@dataclass
class Socket:
    sent: list[Message] = field(default_factory=list)
    reading: bool = True
    pauses: int = 0
    closed: tuple[int, str] | None = None

    def write(self, text: str) -> None:
        if self.closed is not None:
            raise ConnectionError("closed")
        self.sent.append(decode(text))

    async def drain(self) -> None:
        return None

    def pause(self) -> None:
        self.reading = False
        self.pauses += 1

    def resume(self) -> None:
        self.reading = True

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


async def until(pred: object, what: str) -> None:
    deadline = time.monotonic() + SAFETY_S
    while not pred():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.01)


async def stop(hub: ChannelHub, *links: EdgeLink) -> None:
    """The hub stopped and the ends it caused written (no task left for the loop's end)."""
    await hub.stop()
    ends = [link.closing for link in links if link.closing is not None]
    await asyncio.wait_for(asyncio.gather(*ends, return_exceptions=True), SAFETY_S)


async def opened(kit: Kit, hub: ChannelHub, name: str) -> tuple[EdgeLink, Socket]:
    ((dev, secret),) = await kit.devices(name)
    sock = Socket()
    link = EdgeLink(hub, sock, dev, secret, "192.0.2.1:5000")
    link.received(encode(Hello(device_id=dev, agent_version="0.4.0")), 100)
    assert not sock.reading  # nothing more is read until the session is open
    await until(lambda: link.phase == OPEN and sock.reading, "opened")
    assert isinstance(sock.sent[0], Welcome)
    return link, sock


async def test_a_flood_pauses_reading_and_loses_nothing(database: Database, tmp_path: Path) -> None:
    kit = await make_kit(database, tmp_path)
    hub = ChannelHub(kit.ctx())
    await hub.start()
    links: list[EdgeLink] = []
    try:
        link, sock = await opened(kit, hub, "link-flood")
        links.append(link)
        await until(lambda: link._worker is None, "settled after connect")
        t0 = time.time() - 600
        n = 3 * BUFFER_FRAMES
        for seq in range(1, n + 1):  # what one read of a fast socket hands over at once
            batch = TelemetryBatch(seq=seq, prev=seq - 1, points=[("power_w", t0 + seq, 4.0)])
            link.received(encode(batch), 60)
        assert sock.pauses >= 1  # past BUFFER_FRAMES the socket was not read
        acked = lambda: [m.seq for m in sock.sent if isinstance(m, Ack)]  # noqa: E731
        await until(lambda: len(acked()) == n, "every batch acked")
        assert acked() == list(range(1, n + 1))
        assert sock.reading  # and reading resumed
        await until(lambda: link._worker is None and link._urgent is None, "idle")
        assert link.session is not None
        assert link.session._pusher is None  # an idle board holds no task
    finally:
        await stop(hub, *links)


async def test_bad_frames_and_silence_end_the_link(database: Database, tmp_path: Path) -> None:
    kit = await make_kit(database, tmp_path)
    hub = ChannelHub(kit.ctx())
    await hub.start()
    links: list[EdgeLink] = []
    try:
        link, sock = await opened(kit, hub, "link-bad")
        links.append(link)
        link.received("{not json", 9)
        assert link.phase == DONE
        bye = sock.sent[-1]
        assert isinstance(bye, Goodbye)
        assert bye.code == "protocol"
        assert sock.closed is not None
        assert sock.closed[0] == 4400
        assert link.closing is not None
        await asyncio.wait_for(link.closing, SAFETY_S)  # the end is recorded

        quiet, quiet_sock = await opened(kit, hub, "link-quiet")
        links.append(quiet)
        watch = hub_links(hub)
        assert quiet in watch.links
        now = time.monotonic()
        assert watch.sweep(now) == 0
        assert watch.sweep(now + kit.settings.offline_after_s + 1) == 1
        assert quiet.phase == DONE
        assert quiet_sock.closed == (1001, "")
        assert quiet not in watch.links

        ((dev, secret),) = await kit.devices("link-mute")
        mute_sock = Socket()
        mute = EdgeLink(hub, mute_sock, dev, secret, None)
        assert watch.sweep(time.monotonic() + kit.settings.channel_hello_timeout_s + 1) == 1
        assert mute.phase == DONE
        last = mute_sock.sent[-1]
        assert isinstance(last, Goodbye)
        assert (last.code, last.message) == ("protocol", "no hello in time")
    finally:
        await stop(hub, *links)


@dataclass
class RefusingSocket(Socket):
    """A socket whose close fails, as websockets' did when the peer had closed first."""

    def close(self, code: int, reason: str) -> None:
        raise RuntimeError("the peer closed first")


async def test_a_failing_socket_close_still_ends_the_session(
    database: Database, tmp_path: Path
) -> None:
    from sqlalchemy import select

    from wrale.fleet.brain.models.channel import ChannelSession

    kit = await make_kit(database, tmp_path)
    hub = ChannelHub(kit.ctx())
    await hub.start()
    links: list[EdgeLink] = []
    try:
        ((dev, secret),) = await kit.devices("link-refuses")
        sock = RefusingSocket()
        link = EdgeLink(hub, sock, dev, secret, "192.0.2.1:5000")
        links.append(link)
        link.received(encode(Hello(device_id=dev, agent_version="0.4.0")), 100)
        await until(lambda: link.phase == OPEN, "opened")
        session = link.session
        assert session is not None
        link.received("{not json", 9)  # the server ends it; the socket's close raises
        assert link.phase == DONE
        assert hub.sessions.get(dev) is not session  # unregistered all the same
        assert link.closing is not None
        await asyncio.wait_for(link.closing, SAFETY_S)
        async with kit.db.session() as s:
            row = await s.scalar(select(ChannelSession).where(ChannelSession.id == session.id))
            assert row is not None
            assert row.closed_at is not None  # and its end written
            assert row.close_reason is not None
    finally:
        await stop(hub, *links)
