"""The fleet against one central process, all real processes on this machine:

* a ``wrale central`` on SQLite (its database in a temporary directory on disk);
* ``wrale sim`` processes of ``--per-process`` simulated boards each (sim board + metal core
  + edge agent per board, sampling at 1 Hz, reporting every 10 s), their state on /dev/shm.
  The boards are enrolled beforehand in bulk through the API (``/enroll/bulk``, 1,000 per
  request: setup, not what is measured), so each ``wrale sim`` finds its credentials;
* first ``--command-devices`` boards connect, and the command round trip is measured: POST a
  command (``arm``) to a random board → its ``succeeded`` read back through the API (its
  long poll, ``GET /commands/{id}?wait_s=``, as ``wrale commands send --wait`` does; it
  was polled every 2 ms before the API had one): one round of ``--commands`` right after
  the storm (``fleet.command_rtt_storm_p99_ms``), then, one report interval later, three
  rounds in a row with telemetry flowing: p50 / p99 (the server's own created → finished
  too);
* then the rest up to ``--devices`` start, and over ``--seconds``: how many are connected
  (devices ``online`` in the central's database), the central's resident memory (peak, and
  per device above its idle size) and CPU, the simulators' CPU, and the telemetry points
  per second stored (rows added to ``telemetry_raw``).

Figures that cannot be had (a phase times out) are reported as what was reached.
Run alone: ``python bench/fleet_bench.py --devices 200 --command-devices 100 --seconds 20``.

``--sample-s S`` (the 5,000-board phase: ``--devices 5000 --sample-s 10``): before any
board starts, a fleet-wide ``sampling`` policy is set through the API as an operator would
(``interval_s`` S, ``report_interval_s`` the larger of S and 10) and its recomposition
waited for, so every agent samples every S seconds from its first session. What differs
from the 1 Hz run: a report carries S times fewer points (17 a sample, one sample per S
seconds; 1.7 points/s a board at 10 s), so the central stores and the boards encode that
much less; the boards' metal cores still run their safety loops every second, and the
report interval, heartbeats and the command test are unchanged. Either way the sims' own
cost is reported per board (``fleet.sim_cpu_pct_per_board``, % of one core a board).
``--metal-sample-s M`` also runs every board's metal core (its safety loops, metald's
``sample_interval_s``) every M seconds instead of every second: about half of a board's
cost in the sim at a 10 s sampling policy; the central sees the same reports either way.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass

import httpx
import psutil

from common import Figure
from fleet_commands import command_figures
from fleet_harness import (
    Central,
    Sim,
    keep_logs,
    make_sims,
    scratch,
    sim_creds,
    stop,
    wait_for,
)

POINTS_PER_SAMPLE = 17  # metrics per board per sample (fleet/edge/telemetry.py)


@dataclass
class Options:
    devices: int = int(os.environ.get("BENCH_FLEET_DEVICES", "2000"))
    command_devices: int = int(os.environ.get("BENCH_FLEET_COMMAND_DEVICES", "1000"))
    per_process: int = int(os.environ.get("BENCH_FLEET_PER_PROCESS", "1000"))
    seconds: float = float(os.environ.get("BENCH_FLEET_SECONDS", "30"))
    commands: int = int(os.environ.get("BENCH_FLEET_COMMANDS", "100"))
    connect_timeout_s: float = float(os.environ.get("BENCH_FLEET_CONNECT_TIMEOUT", "150"))
    ramp_s: float = float(os.environ.get("BENCH_FLEET_RAMP_S", "0"))
    heap: bool = False  # tracemalloc breakdown of the central's growth (slow: not for speed)
    # a fleet sampling policy (seconds) set before the boards start; None: the 1 s default
    sample_s: float | None = float(os.environ.get("BENCH_FLEET_SAMPLE_S", "0")) or None
    # how often each board's metal core runs its safety loops (metald's sample_interval_s)
    metal_sample_s: float = float(os.environ.get("BENCH_FLEET_METAL_SAMPLE_S", "1"))


# ----------------------------------------------------------------------------- measures


def window(central: Central, sims: list[Sim], seconds: float) -> dict[str, float]:
    """Central RSS (peak) and CPU, sims' CPU, points stored per second over ``seconds``."""
    assert central.proc is not None
    cp = psutil.Process(central.proc.pid)
    sp = [psutil.Process(s.proc.pid) for s in sims if s.proc is not None]
    c0, s0 = cp.cpu_times(), [p.cpu_times() for p in sp]
    pts0, t0 = central.points(), time.monotonic()
    rss: list[int] = []
    online: list[int] = []
    while time.monotonic() - t0 < seconds:
        rss.append(cp.memory_info().rss)
        online.append(central.online())
        time.sleep(2)
    pts1, t1 = central.points(), time.monotonic()
    c1, s1 = cp.cpu_times(), [p.cpu_times() for p in sp]
    dt = t1 - t0

    def used(a: psutil._common.pcputimes, b: psutil._common.pcputimes) -> float:
        return (b.user - a.user) + (b.system - a.system)

    return {
        "rss": float(max(rss)),
        "online_min": float(min(online)),
        "online_end": float(central.online()),
        "central_cpu": 100 * used(c0, c1) / dt,
        "sim_cpu": 100 * sum(used(a, b) for a, b in zip(s0, s1, strict=True)) / dt,
        "points_s": (pts1 - pts0) / dt,
    }


def set_sampling(api: httpx.Client, interval_s: float) -> str:
    """A fleet-wide sampling policy (as an operator sets one), its twins recomposed before
    any board starts; returns what was set."""
    report_s = max(interval_s, 10.0)
    doc = {"interval_s": interval_s, "report_interval_s": report_s}
    r = api.post("/policies", json={"scope_type": "fleet", "kind": "sampling", "document": doc})
    r.raise_for_status()
    job = r.json().get("recompose")
    if job:
        url = f"/policies/recompose/{job['id']}"
        wait_for(lambda: api.get(url).json()["state"] == "done", 300, "the policy's recompose")
    return f"sampling every {interval_s:g} s, reporting every {report_s:g} s"


def heap_breakdown(central: Central, boards: int) -> None:
    """Print what the central's Python heap grew by per board added in phase 2 (one-time
    costs, e.g. lazily built routes and imports, were paid in phase 1), by site."""
    from central_heap import compare

    before = central.snapshots[-1]
    after = central.snapshot()
    print(f"  heap growth per board added ({boards} boards), by allocation site:", flush=True)
    for where, kib, blocks in compare(before, after, max(boards, 1)):
        print(f"  {kib:9.2f} KiB/board {blocks:>9} blocks  {where}", flush=True)


# ----------------------------------------------------------------------------- the run


def run(opts: Options | None = None) -> list[Figure]:
    opts = opts or Options()
    figures: list[Figure] = []
    sims: list[Sim] = []
    first = min(opts.command_devices, opts.devices)
    with scratch() as (central_dir, fleet_dir):
        central = Central(central_dir, heap=opts.heap)
        try:
            central.start()
            assert central.proc is not None
            time.sleep(3)
            idle_rss = psutil.Process(central.proc.pid).memory_info().rss
            if opts.heap:
                central.snapshot()
            api = central.login()
            sampling = "sampling every 1 s, reporting every 10 s"
            if opts.sample_s is not None:
                sampling = set_sampling(api, opts.sample_s)
            if opts.metal_sample_s != 1.0:
                sampling += f", metal cores every {opts.metal_sample_s:g} s"
            sims = make_sims(api, central, fleet_dir, opts.devices, opts.per_process)

            # Phase 1: the boards of the command test, and the command round trip.
            t0, started = time.monotonic(), 0
            for sim in sims:
                if started >= first:
                    break
                sim.start(central, opts.ramp_s, opts.metal_sample_s)
                started += sim.n
            wait_for(
                lambda: central.online() >= started, opts.connect_timeout_s, f"{started} online"
            )
            online = central.online()
            figures.append(
                Figure(
                    "fleet.connect_first_s",
                    time.monotonic() - t0,
                    f"s ({online} of {started} boards online)",
                )
            )
            ids = [cred.device_id for s in sims if s.proc is not None for cred in sim_creds(s)]
            if opts.commands > 0:
                figures += command_figures(api, ids, opts.commands, online)

            # Phase 2: the rest of the fleet, then the steady state.
            rss1, online1 = psutil.Process(central.proc.pid).memory_info().rss, central.online()
            if opts.heap:
                central.snapshot()
            t1 = time.monotonic()
            for sim in sims:
                if sim.proc is None:
                    sim.start(central, opts.ramp_s, opts.metal_sample_s)
            wait_for(
                lambda: central.online() >= opts.devices,
                opts.connect_timeout_s,
                f"{opts.devices} online",
            )
            figures.append(
                Figure(
                    "fleet.connect_all_s",
                    time.monotonic() - t1,
                    f"s (the other {opts.devices - started})",
                )
            )
            time.sleep(10)  # past the first reports' burst
            w = window(central, sims, opts.seconds)
            connected = w["online_end"]
            interval = opts.sample_s or 1.0
            if opts.heap:
                heap_breakdown(central, int(connected - online1))
            figures += [
                Figure(
                    "fleet.devices_connected",
                    connected,
                    f"devices (of {opts.devices}, one central)",
                    f">= {opts.devices}",
                ),
                Figure(
                    "fleet.devices_connected_min",
                    w["online_min"],
                    "devices (lowest in the window)",
                    "",
                ),
                Figure("fleet.central_rss_mib", w["rss"] / 2**20, "MiB (peak resident)", ""),
                Figure(
                    "fleet.central_kib_per_device",
                    (w["rss"] - idle_rss) / 1024 / max(connected, 1),
                    f"KiB/device (peak resident above the idle server, at {connected:.0f})",
                    "<= 50",
                ),
                Figure("fleet.central_cpu_pct", w["central_cpu"], "% of one core", ""),
                Figure(
                    "fleet.sim_cpu_pct",
                    w["sim_cpu"],
                    f"% of one core ({len(sims)} sim processes)",
                    "",
                ),
                Figure(
                    "fleet.sim_cpu_pct_per_board",
                    w["sim_cpu"] / max(opts.devices, 1),
                    f"% of one core a board ({opts.devices} boards, {sampling})",
                    "",
                ),
                Figure(
                    "fleet.telemetry_points_s",
                    w["points_s"],
                    f"points/s stored (offered {connected * POINTS_PER_SAMPLE / interval:.0f}/s)",
                    "",
                ),
            ]
            if connected > online1:  # the growth per board added in phase 2
                added = (w["rss"] - rss1) / 1024 / (connected - online1)
                growth = f"KiB/device (growth from {online1} to {connected:.0f} boards)"
                figures.append(Figure("fleet.central_kib_per_added_device", added, growth, ""))
        finally:
            for sim in sims:
                stop(sim.proc)
            stop(central.proc)
            keep_logs(central, sims)
    return figures


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    d = Options()
    p.add_argument("--devices", type=int, default=d.devices)
    p.add_argument("--command-devices", type=int, default=d.command_devices)
    p.add_argument("--per-process", type=int, default=d.per_process)
    p.add_argument("--seconds", type=float, default=d.seconds)
    p.add_argument("--commands", type=int, default=d.commands)
    p.add_argument("--connect-timeout", type=float, default=d.connect_timeout_s)
    p.add_argument("--ramp-s", type=float, default=d.ramp_s, help="spread each sim's dials")
    p.add_argument("--heap", action="store_true", help="where the central's memory goes")
    p.add_argument(
        "--sample-s",
        type=float,
        default=None,
        help="a fleet sampling policy (seconds) set before the boards start (default: 1 s)",
    )
    p.add_argument(
        "--metal-sample-s",
        type=float,
        default=d.metal_sample_s,
        help="the boards' metal cores sample this often (default 1 s, as metald's default)",
    )
    a = p.parse_args()
    opts = Options(
        a.devices,
        a.command_devices,
        a.per_process,
        a.seconds,
        a.commands,
        a.connect_timeout,
        a.ramp_s,
        a.heap,
        a.sample_s,
        a.metal_sample_s,
    )
    for f in run(opts):
        print(f.line(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
