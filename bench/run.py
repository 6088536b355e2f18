"""``make bench``: run every benchmark, print each figure with its unit, write the results.

BENCH_SECONDS shortens the measured windows (default 60, as the targets are stated);
the fleet benchmark's own knobs are BENCH_FLEET_* (see bench/fleet_bench.py), the
dashboard's BENCH_UI_* (see bench/ui_bench.py), a fleet-wide policy change's
BENCH_CHANGE_DEVICES (bench/fleet_change_bench.py); the brain's decisions run in simulated time
(bench/decisions_bench.py, BENCH_DECISIONS_SEED), and so does wear detection
(bench/maintenance_bench.py, BENCH_MAINTENANCE_SEED).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import RESULTS, Figure, write_results
from decisions_bench import run as run_decisions
from device_bench import run as run_device
from device_io_bench import run as run_device_io
from fleet_change_bench import run as run_fleet_change
from fleet_runs import run_2000, run_5000
from maintenance_bench import run as run_maintenance
from metald_bench import run as run_metald
from telemetry_bench import run as run_telemetry
from ui_bench import run as run_ui


def main() -> int:
    figures: list[Figure] = []
    benches = (
        ("metald", run_metald),
        ("telemetry", run_telemetry),
        ("device", run_device),
        ("device_io", run_device_io),
        ("fleet", run_2000),
        ("fleet_5000", run_5000),
        ("fleet_change", run_fleet_change),
        ("ui", run_ui),
        ("decisions", run_decisions),
        ("maintenance", run_maintenance),
    )
    failed = []
    for name, bench in benches:
        print(f"== {name}", flush=True)
        try:
            results = bench()
        except Exception as exc:  # one broken benchmark must not lose the others' figures
            print(f"{name} benchmark FAILED: {type(exc).__name__}: {exc}", flush=True)
            failed.append(name)
            continue
        for figure in results:
            print(figure.line(), flush=True)
            figures.append(figure)
    write_results(figures)
    print(f"written to {RESULTS}")
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
