"""Where a connected board's memory goes in the central, piece by piece (not part of
``make bench``: a probe for the breakdown in docs/central/scaling.md).

Starts a ``wrale central`` on SQLite, enrolls N boards and opens N device WebSockets from
this process (hello only, no simulator), then sends three rounds of one 170-point batch a
board (what a board reports every 10 s), and prints the central's resident memory above
its idle size, per board, after each step and after every socket is closed:

    python bench/conn_memory.py 1000 deflate   # or: none (no per-message deflate)
    python bench/conn_memory.py 400 deflate heap   # the traced breakdown (slow)
    python bench/conn_memory.py 1000 deflate nocontext   # channel_deflate_context off

With ``heap`` the central runs under ``tracemalloc`` (``central_heap.py``); the sockets dial
four at a time so the traced server keeps up, and what the Python heap grew by between
N/2 and N connected (and over one batch from each) is printed per board by site.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from typing import Any

import psutil
from websockets.asyncio.client import ClientConnection, connect

from central_heap import compare
from fleet_harness import Central, scratch
from wrale.fleet.sync.protocol import Ack, Hello, TelemetryBatch, Welcome, decode, encode

METRICS = [f"m{i}_c" for i in range(17)]
POINTS = 170


async def _probe(
    c: Central, creds: list[tuple[str, str]], rss: Callable[[], float], deflate: bool
) -> None:
    url = c.url.replace("http", "ws") + "/api/v1/edge/ws"
    gate = asyncio.Semaphore(4 if c.heap else 50)
    base = rss()

    def show(what: str) -> None:
        now = rss()
        print(f"  {what:16s} {now / 1024:7.1f} MiB  {(now - base) / len(creds):6.1f} KiB/board")

    async def dial(device_id: str, secret: str) -> ClientConnection:
        async with gate:
            headers = {"X-Wrale-Device": device_id, "Authorization": f"Bearer {secret}"}
            ws = await connect(
                url,
                additional_headers=headers,
                compression="deflate" if deflate else None,
                open_timeout=60,
            )
            await ws.send(encode(Hello(device_id=device_id, agent_version="0.9.0")))
            while not isinstance(decode(await ws.recv()), Welcome):
                pass
            return ws

    async def report(ws: ClientConnection, seq: int) -> None:
        t = time.time()
        pts = [(METRICS[i % 17], t - 10 + i // 17, 40.0 + i / 10) for i in range(POINTS)]
        await ws.send(encode(TelemetryBatch(seq=seq, prev=seq - 1, points=pts)))
        while True:
            m = decode(await asyncio.wait_for(ws.recv(), 120))
            if isinstance(m, Ack) and m.stream == "telemetry":
                return

    print(f"{len(creds)} boards, per-message deflate {'on' if deflate else 'off'}")
    if c.heap:
        await _traced(c, creds, dial, report)
        return
    socks = await asyncio.gather(*(dial(d, s) for d, s in creds))
    await asyncio.sleep(5)
    show("connected")
    for seq in (1, 2, 3):
        await asyncio.gather(*(report(ws, seq) for ws in socks))
        await asyncio.sleep(3)
        show(f"after batch {seq}")
    for ws in socks:
        await ws.close()
    await asyncio.sleep(5)
    show("all closed")


async def _traced(c: Central, creds: list[tuple[str, str]], dial: Any, report: Any) -> None:
    half = len(creds) // 2
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, c.snapshot)  # tracing starts: the idle server
    socks = await asyncio.gather(*(dial(d, s) for d, s in creds[:half]))
    await asyncio.sleep(3)
    at_half = await loop.run_in_executor(None, c.snapshot)
    socks += await asyncio.gather(*(dial(d, s) for d, s in creds[half:]))
    await asyncio.sleep(3)
    at_all = await loop.run_in_executor(None, c.snapshot)
    for i in range(0, len(socks), 20):  # twenty boards' batches at a time: it keeps up
        await asyncio.gather(*(report(ws, 1) for ws in socks[i : i + 20]))
    await asyncio.sleep(3)
    batched = await loop.run_in_executor(None, c.snapshot)
    for title, a, b, per in (
        (
            f"connected: the heap's growth from {half} to {len(creds)} boards",
            at_half,
            at_all,
            len(creds) - half,
        ),
        (f"one 170-point batch from each of {len(creds)} boards", at_all, batched, len(creds)),
    ):
        print(f"\n{title}, per board")
        for where, kib, blocks in compare(a, b, per, top=20):
            print(f"  {kib:7.2f} KiB {blocks:>8} blocks  {where}")
    for ws in socks:
        await ws.close()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    deflate = (sys.argv[2] if len(sys.argv) > 2 else "deflate") != "none"
    heap = "heap" in sys.argv[3:]
    settings = {"WRALE_CHANNEL_DEFLATE_CONTEXT": "false"} if "nocontext" in sys.argv[3:] else {}
    with scratch() as (central_dir, _shm):
        c = Central(central_dir, heap=heap, settings=settings)
        c.start()
        try:
            api = c.login()
            creds: list[tuple[str, str]] = []
            for i in range(0, n, 1000):
                names = [{"name": f"probe-{j}"} for j in range(i, min(n, i + 1000))]
                r = api.post("/enroll/bulk", json={"devices": names}, timeout=300)
                r.raise_for_status()
                creds += [(x["device_id"], x["device_secret"]) for x in r.json()["items"]]
            assert c.proc is not None
            proc = psutil.Process(c.proc.pid)
            time.sleep(3)
            asyncio.run(_probe(c, creds, lambda: proc.memory_info().rss / 1024, deflate))
        finally:
            if c.proc is not None:
                c.proc.terminate()
                c.proc.wait(30)


if __name__ == "__main__":
    main()
