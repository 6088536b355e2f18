"""metald on the simulated board at 1 Hz sampling: resident memory and CPU over a minute
(a real `wrale metald` process), and the safety reaction latency (temperature crossing
the critical threshold → fan at 100 % and throttling on, on the real clock)."""

from __future__ import annotations

import asyncio
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

from common import Figure, free_port
from wrale.metal.core.engine import MetalCore
from wrale.metal.core.store import DeviceStore
from wrale.metal.hw.base import Fault, FaultKind
from wrale.metal.hw.sim import SimBoard
from wrale.shared.clock import SystemClock
from wrale.shared.config import SimSettings

SECONDS = float(os.environ.get("BENCH_SECONDS", "60"))
TRIALS = int(os.environ.get("BENCH_TRIALS", "8"))
KEY = "wrale-dev-key"


def process_figures() -> list[Figure]:
    port = free_port()
    wrale = Path(sys.executable).parent / "wrale"
    with tempfile.TemporaryDirectory() as data:
        proc = subprocess.Popen(
            [
                str(wrale),
                "metald",
                "--backend",
                "sim",
                "--dev",
                "--listen",
                f"127.0.0.1:{port}",
                "--data-dir",
                data,
                "--log-level",
                "WARNING",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    raise RuntimeError(f"metald did not start: {err}")
                time.sleep(0.1)
            ps = psutil.Process(proc.pid)
            time.sleep(5)  # warm-up: first samples, first events written
            cpu0, t0 = ps.cpu_times(), time.monotonic()
            rss: list[float] = []
            while time.monotonic() - t0 < SECONDS:
                rss.append(ps.memory_info().rss)
                time.sleep(1)
            cpu1, t1 = ps.cpu_times(), time.monotonic()
            seq = httpx.get(
                f"{url}/v1/state", headers={"Authorization": f"Bearer {KEY}"}, timeout=5
            ).json()["seq"]
        finally:
            proc.terminate()
            proc.wait(10)
    used = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    return [
        Figure("metald.rss_mib", max(rss) / 2**20, "MiB (peak resident, as top shows)", "< 40"),
        Figure("metald.rss_mb", max(rss) / 1e6, "MB (decimal, same figure)", ""),
        Figure("metald.cpu_pct", 100 * used / (t1 - t0), "% of one core", "< 1"),
        Figure("metald.samples_in_window", float(seq), "samples", "1 Hz"),
    ]


async def reaction_trial(seed: int) -> float:
    clock = SystemClock()
    board = SimBoard(SimSettings(seed=seed, noise=False), clock=clock)
    core = MetalCore(board, store=DeviceStore(":memory:"), clock=clock, sample_interval_s=1.0)
    critical = core.thermal_policy.cpu_critical_c
    stop = asyncio.Event()
    await core.start()
    task = asyncio.create_task(core.run(stop))
    await asyncio.sleep(0.1 + (seed % 10) / 10)  # vary the phase against the sampler
    board.sim.set_load(100)
    board.sim.inject_fault(Fault(FaultKind.FAN_FAILURE, {"mode": "stalled"}))
    board.sim.inject_fault(Fault(FaultKind.HEAT_SPIKE, {"watts": 100.0, "duration_s": 120.0}))
    crossed: float | None = None
    try:
        while True:
            await asyncio.sleep(0.002)
            now = time.monotonic()
            if crossed is None and (board.thermal.read_thermal().cpu_temp_c or 0) >= critical:
                crossed = now
            snap = core.snapshot
            if (
                crossed is not None
                and snap is not None
                and snap.decision.fan_pct == 100.0
                and board.fan.read_fan().duty_pct >= 99.5
                and board.throttle.read_throttle().max_freq_pct < 100.0
            ):
                return now - crossed
            if now - (crossed or now) > 10:
                raise RuntimeError("no reaction within 10 s")
    finally:
        stop.set()
        await task


def reaction_figures() -> list[Figure]:
    latencies = [asyncio.run(reaction_trial(seed)) for seed in range(TRIALS)]
    return [
        Figure(
            "metald.safety_reaction_s",
            max(latencies),
            "s (worst of trials)",
            "<= 1 sampling interval (1 s)",
        ),
        Figure("metald.safety_reaction_p50_s", statistics.median(latencies), "s", ""),
    ]


def run() -> list[Figure]:
    logging.getLogger("wrale").setLevel(logging.ERROR)
    return process_figures() + reaction_figures()
