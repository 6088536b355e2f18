"""Where the central's memory goes: run ``wrale central`` under ``tracemalloc`` and write a
heap snapshot whenever the process gets SIGUSR2; compare two snapshots by allocation site.

Tracing starts at the first SIGUSR2 (the server up and idle: starting under tracemalloc
would take minutes), so the first snapshot is nearly empty and the next ones hold what was
allocated since and is still alive.

Used by ``fleet_bench.py --heap`` (a snapshot with the server idle, one with the fleet
connected, the difference per board grouped by file and line). By hand::

    python bench/central_heap.py /tmp/heap -- central --port 8400 --data-dir /tmp/c
    kill -USR2 <pid>            # writes /tmp/heap.1.snap, then .2.snap, …
    python bench/central_heap.py --compare /tmp/heap.1.snap /tmp/heap.2.snap 500

tracemalloc sees what Python allocates (objects, and C code going through PyMem: zlib's
windows, SQLite's page cache through sqlite3 are *not* included) and slows the process
down by about half: figures from a run with it are for the breakdown, not for speed.
"""

from __future__ import annotations

import os
import signal
import sys
import tracemalloc
from pathlib import Path
from types import FrameType

FRAMES = int(os.environ.get("WRALE_HEAP_FRAMES", "6"))  # traceback depth per allocation


def serve(prefix: str, argv: list[str]) -> int:
    count = 0

    def dump(_sig: int, _frame: FrameType | None) -> None:
        nonlocal count
        count += 1
        if not tracemalloc.is_tracing():
            tracemalloc.start(FRAMES)
        path = Path(f"{prefix}.{count}.snap")
        tracemalloc.take_snapshot().dump(str(path.with_suffix(".tmp")))
        path.with_suffix(".tmp").rename(path)

    signal.signal(signal.SIGUSR2, dump)
    from wrale.user.cli.main import main

    sys.argv = ["wrale", *argv]
    result = main()
    return int(result or 0)


def site(tb: tracemalloc.Traceback) -> str:
    """The allocation's most telling frame: the innermost in a library or wrale, with the
    wrale frame that led to it when the innermost is a library's."""
    frames = list(tb)  # most recent first
    inner = frames[0]
    own = next((f for f in frames if "/wrale/" in f.filename), None)
    where = f"{_short(inner.filename)}:{inner.lineno}"
    if own is not None and own is not inner:
        where += f"  ← {_short(own.filename)}:{own.lineno}"
    return where


def _short(filename: str) -> str:
    for marker in ("/site-packages/", "/src/", "/lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def compare(before: Path, after: Path, per: int, top: int = 25) -> list[tuple[str, float, int]]:
    """(site, KiB per ``per`` boards, blocks) of what grew from ``before`` to ``after``,
    largest first, then the total as ('total', KiB per board, blocks)."""
    a = tracemalloc.Snapshot.load(str(before))
    b = tracemalloc.Snapshot.load(str(after))
    grown: dict[str, list[int]] = {}
    for stat in b.compare_to(a, "traceback"):
        key = site(stat.traceback)
        acc = grown.setdefault(key, [0, 0])
        acc[0] += stat.size_diff
        acc[1] += stat.count_diff
    total = sum(v[0] for v in grown.values())
    rows = sorted(grown.items(), key=lambda kv: -kv[1][0])[:top]
    out = [(k, v[0] / 1024 / per, v[1]) for k, v in rows]
    out.append(("total", total / 1024 / per, sum(v[1] for v in grown.values())))
    return out


def main() -> int:
    args = sys.argv[1:]
    if args[:1] == ["--compare"]:
        before, after, per = Path(args[1]), Path(args[2]), int(args[3])
        for where, kib, blocks in compare(before, after, per):
            print(f"{kib:9.2f} KiB/board {blocks:>9} blocks  {where}")
        return 0
    prefix, rest = args[0], args[args.index("--") + 1 :]
    return serve(prefix, rest)


if __name__ == "__main__":
    sys.exit(main())
