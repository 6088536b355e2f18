"""Helpers of the device-channel tests: a tenant with enrolled devices, and a ``Wire`` —
the test's own transport, which keeps what a session sends (the session only needs a
``send`` callable; this is the unmanaged edge, not a mock of our code)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wrale.fleet.brain.bus import EventBus
from wrale.fleet.brain.channel.session import ChannelContext, DeviceSession
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Tenant
from wrale.fleet.brain.services import enrollment, twin
from wrale.fleet.brain.services.principal import Principal, Role
from wrale.fleet.sync.protocol import Desired, Hello, Message, Welcome, decode, encode
from wrale.shared.central_settings import CentralSettings
from wrale.shared.clock import FakeClock

SAFETY_S = 10.0  # bound on waiting for something that should come at once; never a timing


@dataclass
class Wire:
    """What the server sent, in order (each message through encode/decode, as on a wire)."""

    sent: list[Message] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def send(self, msg: Message) -> None:
        self.sent.append(decode(encode(msg)))
        self.arrived.set()

    def take(self) -> list[Message]:
        out, self.sent = self.sent, []
        return out

    async def wait_for(self, pred: Callable[[Message], bool]) -> Message:
        async def scan() -> Message:
            while True:
                for m in self.sent:
                    if pred(m):
                        return m
                self.arrived.clear()
                await self.arrived.wait()

        return await asyncio.wait_for(scan(), SAFETY_S)


@dataclass
class Kit:
    db: Database
    bus: EventBus
    settings: CentralSettings
    clock: FakeClock
    admin: Principal
    replica: str = "replica-a"

    def ctx(self, replica: str | None = None) -> ChannelContext:
        return ChannelContext(
            self.db, self.bus, self.settings, replica or self.replica, clock=self.clock.now
        )

    async def devices(self, *names: str) -> list[tuple[str, str]]:
        """Enrolled devices: (device_id, secret) each."""
        async with self.db.session() as s:
            made = await enrollment.enroll_bulk(s, self.admin, [{"name": n} for n in names])
        return [(e.device.id, e.secret) for e in made]

    async def connect(
        self, device_id: str, secret: str, *, ctx: ChannelContext | None = None, **hello: Any
    ) -> tuple[DeviceSession, Wire, Message]:
        wire = Wire()
        session = DeviceSession(ctx or self.ctx(), wire.send)
        first = await session.open(
            Hello(device_id=device_id, agent_version="9.9.1", **hello), secret
        )
        return session, wire, first

    async def open(
        self, device_id: str, secret: str, **hello: Any
    ) -> tuple[DeviceSession, Wire, Welcome]:
        session, wire, first = await self.connect(device_id, secret, **hello)
        assert isinstance(first, Welcome), first
        return session, wire, first

    async def fan_override(self, wire: Wire, device_id: str, version: int, pct: float) -> Desired:
        """An operator's twin patch (a fan override on desired ``version``), and the
        desired document the hub then pushes to the device's session on ``wire``."""
        async with self.db.session() as s:
            t = await twin.patch_twin(
                s, self.admin, device_id, version, {"fan": {"override_pct": pct}}, self.bus
            )
            new = t.desired_version
        pushed = await wire.wait_for(lambda m: isinstance(m, Desired) and m.version == new)
        assert isinstance(pushed, Desired)
        return pushed


async def make_kit(db: Database, tmp_path: Path, **settings: Any) -> Kit:
    async with db.session() as s:
        t = Tenant(name=f"acme-{time.time_ns()}")
        s.add(t)
        await s.flush()
        admin = Principal(t.id, Role.ADMIN, "user", "a" * 32, "alice")
    conf = CentralSettings(
        data_dir=tmp_path, secret_key="test-secret-key-0123456789abcdef", dev=True, **settings
    )
    return Kit(db, EventBus(), conf, FakeClock(time.time()), admin)
