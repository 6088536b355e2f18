"""``GET /commands/{id}?wait_s=``, the long poll, on both databases: woken by the
command's result event, or by its periodic read when no event reaches this replica;
answering as the command is when the wait ends; validated; no listener left behind."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.conftest import Central
from wrale.fleet.brain.bus import EventBus
from wrale.fleet.brain.models import Device
from wrale.fleet.brain.services import commands
from wrale.user.api.routes import commands as route

API = "/api/v1"


def bus_of(central: Central) -> EventBus:
    bus: EventBus = central.app.state.wrale.bus
    return bus


async def queued(central: Central, name: str) -> tuple[str, str]:
    r = await central.http.post(f"{API}/devices", headers=central.admin, json={"name": name})
    assert r.status_code == 201, r.text
    device_id = r.json()["id"]
    r = await central.http.post(
        f"{API}/devices/{device_id}/commands", headers=central.admin, json={"op": "run_diag"}
    )
    assert r.status_code == 201, r.text
    return device_id, r.json()["id"]


async def answer(central: Central, device_id: str, command_id: str, bus: Any) -> None:
    """The board's result, stored as the device channel stores it."""
    async with central.db.session() as s:
        device = await s.get(Device, device_id)
        assert device is not None
        await commands.mark_sent(s, [command_id], time.time(), bus)
        await commands.record_result(
            s, device, command_id, "succeeded", "", {"ok": 1}, time.time(), bus
        )


async def test_woken_by_the_result_event(central: Central, monkeypatch: pytest.MonkeyPatch) -> None:
    device_id, cid = await queued(central, "wait-ev")
    monkeypatch.setattr(route, "WAIT_READ_S", 30.0)  # only the event can wake it early
    listeners = len(bus_of(central)._listeners)
    waiting = asyncio.create_task(
        central.http.get(f"{API}/commands/{cid}", params={"wait_s": 30}, headers=central.admin)
    )
    await asyncio.sleep(0.3)
    assert not waiting.done()  # queued: it waits
    await answer(central, device_id, cid, bus_of(central))
    r = await asyncio.wait_for(waiting, 10)  # well before its 30 s: the event woke it
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["result"]) == ("succeeded", {"ok": 1})
    assert len(bus_of(central)._listeners) == listeners


async def test_woken_by_a_read_when_no_event_comes(
    central: Central, monkeypatch: pytest.MonkeyPatch
) -> None:
    device_id, cid = await queued(central, "wait-read")
    monkeypatch.setattr(route, "WAIT_READ_S", 0.05)
    waiting = asyncio.create_task(
        central.http.get(f"{API}/commands/{cid}", params={"wait_s": 30}, headers=central.admin)
    )
    await asyncio.sleep(0.2)
    await answer(central, device_id, cid, None)  # stored where no event reaches this replica
    r = await asyncio.wait_for(waiting, 10)
    assert r.json()["status"] == "succeeded"


async def test_the_wait_ends_with_the_command_as_it_is(central: Central) -> None:
    _device_id, cid = await queued(central, "wait-end")
    listeners = len(bus_of(central)._listeners)
    r = await central.http.get(
        f"{API}/commands/{cid}", params={"wait_s": 0.3}, headers=central.admin
    )
    assert (r.status_code, r.json()["status"]) == (200, "queued")
    assert len(bus_of(central)._listeners) == listeners


async def test_finished_already_is_answered_at_once_and_bad_waits_refused(
    central: Central,
) -> None:
    device_id, cid = await queued(central, "wait-done")
    await answer(central, device_id, cid, bus_of(central))
    listeners = len(bus_of(central)._listeners)
    r = await asyncio.wait_for(
        central.http.get(f"{API}/commands/{cid}", params={"wait_s": 30}, headers=central.admin),
        10,
    )
    assert r.json()["status"] == "succeeded"
    for bad in ("31", "-1", "soon", "nan"):
        r = await central.http.get(
            f"{API}/commands/{cid}", params={"wait_s": bad}, headers=central.admin
        )
        assert r.status_code == 422, (bad, r.text)
    other = await central.other_tenant_admin()
    r = await central.http.get(f"{API}/commands/{cid}", params={"wait_s": 5}, headers=other)
    assert r.status_code == 404
    assert len(bus_of(central)._listeners) == listeners
