"""``make bench``: run every benchmark, print each figure with its unit, write the results.

BENCH_SECONDS shortens the measured windows (default 60, as the targets are stated).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import RESULTS, Figure, write_results
from metald_bench import run as run_metald
from telemetry_bench import run as run_telemetry


def main() -> int:
    figures: list[Figure] = []
    for name, bench in (("metald", run_metald), ("telemetry", run_telemetry)):
        print(f"== {name}", flush=True)
        for figure in bench():
            print(figure.line(), flush=True)
            figures.append(figure)
    write_results(figures)
    print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
