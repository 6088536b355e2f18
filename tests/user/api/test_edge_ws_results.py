"""A command's result does not wait behind its board's telemetry: the WebSocket route
takes results into a buffer and worker of their own, and they take an urgent writer turn.
Before, a result sent after a telemetry batch waited for that batch's group commit (after
a reconnect, a board's backlog held results for seconds on the fleet bench)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import select, text

from tests.conftest import Central
from tests.user.api.test_edge_ws import API, dial, enroll, recv
from wrale.fleet.brain.bus import BusEvent
from wrale.fleet.brain.db import Database
from wrale.fleet.brain.models import Device
from wrale.fleet.sync.protocol import (
    Ack,
    Command,
    CommandResult,
    Message,
    TelemetryBatch,
    Welcome,
    encode,
)

SAFETY_S = 10.0
ORDER_KINDS = ("telemetry.summary", "command.updated")  # what is stored first, told first


async def _frame(sock: Any, kind: type[Message]) -> Message:
    while True:
        msg = await recv(sock)
        if isinstance(msg, kind):
            return msg


def _batch(seq: int) -> str:
    now = time.time()
    return encode(TelemetryBatch(seq=seq, prev=seq - 1, points=[("cpu_temp_c", now, 50.0)]))


async def test_a_result_is_stored_before_the_telemetry_sent_ahead_of_it(central: Central) -> None:
    dev, secret = await enroll(central, "result-first")
    sock, welcome = await dial(central, dev, secret, desired_version=1_000)
    assert isinstance(welcome, Welcome)
    await sock.send(_batch(1))  # the board's telemetry row exists from now on
    assert isinstance(await _frame(sock, Ack), Ack)
    r = await central.http.post(
        f"{API}/devices/{dev}/commands",
        headers=central.admin,
        json={"op": "arm", "args": {"level": "medium"}},
    )
    assert r.status_code == 201, r.text
    cmd = await _frame(sock, Command)
    assert isinstance(cmd, Command)
    order: list[str] = []

    def seen(event: BusEvent) -> None:
        if event.data.get("device_id") == dev:
            order.append(event.kind)

    stop = central.app.state.wrale.bus.listen(ORDER_KINDS, seen)
    try:
        async with TelemetryHeld(central.db, dev):
            await sock.send(_batch(2))
            await sock.send(encode(CommandResult(id=cmd.id, status="succeeded")))
            if not central.db.is_sqlite:
                await _stored(central, dev, cmd.id)  # while the telemetry waits
        assert isinstance(await _frame(sock, Ack), Ack)
        await _stored(central, dev, cmd.id)
    finally:
        stop()
    assert order.index("command.updated") < order.index("telemetry.summary")
    await sock.finish()


class TelemetryHeld:
    """Telemetry cannot be stored inside the block. SQLite: the test holds the writer turn
    (urgent turns go first when it ends, so the result is stored first if it was queued
    beside the batch rather than behind it). PostgreSQL: the board's sequence row is
    locked (the result, which does not touch it, is stored meanwhile)."""

    def __init__(self, db: Database, device_id: str) -> None:
        self.db, self.device_id = db, device_id
        self._cm: Any = None

    async def __aenter__(self) -> None:
        db = self.db
        self._cm = db.serial_session() if db.is_sqlite else db.session()
        s = await self._cm.__aenter__()
        if not db.is_sqlite:
            num = await s.scalar(select(Device.num).where(Device.id == self.device_id))
            await s.execute(
                text("SELECT last_seq FROM telemetry_seq WHERE device_num = :n FOR UPDATE"),
                {"n": num},
            )
        await asyncio.sleep(0.2)  # the frames sent meanwhile reach the server

    async def __aexit__(self, *exc: object) -> None:
        await self._cm.__aexit__(*exc)


async def _stored(central: Central, dev: str, cid: str) -> None:
    """The result is stored (read through the API) within the safety bound."""
    path = f"{API}/commands/{cid}"
    deadline = time.monotonic() + SAFETY_S
    while time.monotonic() < deadline:
        r = await central.http.get(path, headers=central.admin)
        if r.status_code == 200 and r.json()["status"] == "succeeded":
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"command {cid} not stored within {SAFETY_S} s")
