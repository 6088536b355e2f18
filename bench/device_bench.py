"""``wrale device run`` (metald + edge agent in one process, sim backend, metald's API on)
connected to a real ``wrale central``, sampling at 1 Hz: its resident memory (peak) and CPU
over ``--seconds`` (BENCH_SECONDS, default 60), after it is online and past its first report.
The process is started with the environment a unit would give it (nothing added for memory),
from bytecode compiled ahead as the package ships it (``packaging/build-deb.sh`` compiles
every module; without it each start compiles our source in memory, about 0.6 MiB more).

Run alone: ``python bench/device_bench.py --seconds 30``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from common import Figure, free_port
from fleet_harness import WRALE, Central, clean_env, stop, wait_for

SECONDS = float(os.environ.get("BENCH_SECONDS", "60"))
SRC = Path(__file__).resolve().parents[1] / "src" / "wrale"


def compile_ahead() -> None:
    """Our modules' bytecode beside them (``__pycache__``, git-ignored), as the .deb has it;
    the dependencies' was written by pip."""
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "-j", "0", str(SRC)],
        check=True,
        capture_output=True,
    )


def enroll_device(central: Central, state: Path, name: str) -> None:
    """Enroll one simulated board with a single-use token; its credential goes to ``state``."""
    api = central.login()
    r = api.post("/enrollment-tokens", json={"name": "bench device", "max_uses": 1})
    r.raise_for_status()
    subprocess.run(
        [
            WRALE,
            "enroll",
            *("--central", central.url, "--token", r.json()["token"]),
            *("--state-dir", str(state), "--name", name),
            *("--capability", "sim"),
        ],
        env=clean_env(),
        check=True,
        capture_output=True,
    )


def run(seconds: float = SECONDS) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="wrale-bench-") as tmp:
        root = Path(tmp)
        central = Central(root / "central")
        device: subprocess.Popen[bytes] | None = None
        try:
            compile_ahead()
            central.start()
            state = root / "device"
            enroll_device(central, state, "bench-device")
            log = (root / "device.log").open("wb")
            device = subprocess.Popen(
                [
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
            online = wait_for(lambda: central.online() >= 1, 60, "the device online", device)
            time.sleep(15)  # past start-up: first samples, first report, twin applied
            ps = psutil.Process(device.pid)
            c0, t0, pts0 = ps.cpu_times(), time.monotonic(), central.points()
            rss: list[int] = []
            while time.monotonic() - t0 < seconds:
                rss.append(ps.memory_info().rss)
                time.sleep(1)
            c1, t1 = ps.cpu_times(), time.monotonic()
            time.sleep(11)  # the window's last report arrives
            pts = central.points() - pts0
        finally:
            stop(device)
            stop(central.proc)
    used = (c1.user - c0.user) + (c1.system - c0.system)
    return [
        Figure("device.rss_mib", max(rss) / 2**20, "MiB (wrale device run, peak resident)", "< 30"),
        Figure("device.rss_mb", max(rss) / 1e6, "MB (decimal, same figure)", "< 30"),
        Figure("device.cpu_pct", 100 * used / (t1 - t0), "% of one core (1 Hz sampling)", "< 0.5"),
        Figure(
            "device.points_stored",
            float(pts),
            f"points stored by the central in {seconds:g} s (+11 s), "
            f"{'online' if online else 'NOT online'}",
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
