"""Storage wear of ``wrale device run`` (metald + edge agent, sim backend, ``--dev``) connected
to a real ``wrale central``: fsync-family calls and bytes written to disk per hour, in steady
state (after it is online and past its first reports), over ``--seconds`` (BENCH_SECONDS,
default 120).

The device runs under ``strace -f --seccomp-bpf -ttt`` traced only for the sync calls
(fsync, fdatasync, msync, sync_file_range, sync, syncfs); the calls whose timestamp falls in
the window are counted. Bytes: ``write_bytes`` of ``/proc/PID/io`` (what reached the block
layer on the device's behalf), its state on a disk, not tmpfs.
Run alone: ``python bench/device_io_bench.py --seconds 120``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import psutil

from common import Figure, free_port
from device_bench import enroll_device
from fleet_harness import WRALE, Central, clean_env, stop, wait_for

SECONDS = float(os.environ.get("BENCH_SECONDS", "120"))
WARMUP_S = 20.0  # past start-up: first samples, first reports, twin applied
SYNC_CALLS = ("fsync", "fdatasync", "msync", "sync_file_range", "sync", "syncfs")
_LINE = re.compile(r"^(?:\[pid\s+)?\d*\]?\s*(\d+\.\d+) (\w+)\(")


def _write_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise RuntimeError(f"no write_bytes in /proc/{pid}/io")


def count_syncs(trace: Path, t0: float, t1: float) -> Counter[str]:
    """Sync calls in ``strace -ttt`` output whose start time is within [t0, t1)."""
    calls: Counter[str] = Counter()
    for line in trace.read_text(errors="replace").splitlines():
        m = _LINE.match(line.strip())
        if m and m.group(2) in SYNC_CALLS and t0 <= float(m.group(1)) < t1:
            calls[m.group(2)] += 1
    return calls


def stop_traced(traced: subprocess.Popen[bytes] | None) -> None:
    """The device first, then strace: a stopped strace detaches and leaves its tracee
    running (every ``make bench`` left a ``wrale device run`` behind)."""
    if traced is None:
        return
    try:
        kids = psutil.Process(traced.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        kids = []
    for kid in kids:
        with contextlib.suppress(psutil.NoSuchProcess):
            kid.terminate()
    _, alive = psutil.wait_procs(kids, timeout=10)
    for kid in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            kid.kill()
    stop(traced)


def run(seconds: float = SECONDS) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="wrale-bench-io-") as tmp:
        root = Path(tmp)
        central = Central(root / "central")
        traced: subprocess.Popen[bytes] | None = None
        trace = root / "sync.trace"
        try:
            central.start()
            state = root / "device"
            enroll_device(central, state, "bench-io-device")
            log = (root / "device.log").open("wb")
            traced = subprocess.Popen(
                [
                    "strace",
                    *("-f", "--seccomp-bpf", "-ttt", "-o", str(trace)),
                    *("-e", f"trace={','.join(SYNC_CALLS)}"),
                    WRALE,
                    "device",
                    "run",
                    *("--state-dir", str(state), "--backend", "sim", "--dev"),
                    *("--listen", f"127.0.0.1:{free_port()}", "--log-level", "WARNING"),
                ],
                env=clean_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            online = wait_for(lambda: central.online() >= 1, 60, "the device online", traced)
            time.sleep(WARMUP_S)
            kids = psutil.Process(traced.pid).children()
            if len(kids) != 1:
                raise RuntimeError(f"strace should have one child, has {len(kids)}")
            pid = kids[0].pid
            w0, t0 = _write_bytes(pid), time.time()
            time.sleep(seconds)
            w1, t1 = _write_bytes(pid), time.time()
            pts = central.points()
        finally:
            stop_traced(traced)
            stop(central.proc)
        calls = count_syncs(trace, t0, t1)
    per_hour = 3600.0 / (t1 - t0)
    detail = ", ".join(f"{k} {v}" for k, v in sorted(calls.items())) or "none"
    return [
        Figure(
            "device.fsyncs_per_hour",
            sum(calls.values()) * per_hour,
            f"sync calls/h (wrale device run, steady state; {detail} in {t1 - t0:.0f} s)",
            "<= 60",
        ),
        Figure(
            "device.disk_write_kib_per_hour",
            (w1 - w0) / 1024 * per_hour,
            "KiB/h written to disk (/proc/PID/io write_bytes)",
            "",
        ),
        Figure(
            "device.io_points_stored",
            float(pts),
            f"points stored by the central, {'online' if online else 'NOT online'}",
            "",
        ),
    ]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=SECONDS)
    a = p.parse_args()
    for f in run(a.seconds):
        print(f.line(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
