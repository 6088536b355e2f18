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
    python bench/central_heap.py --stats /tmp/heap.1.json /tmp/heap.2.json

tracemalloc sees what Python allocates (objects, and C code going through PyMem: zlib's
windows, SQLite's page cache through sqlite3 are *not* included) and slows the process
down by about half: figures from a run with it are for the breakdown, not for speed.

Beside each snapshot ``PREFIX.N.json`` holds where the resident memory is at that moment
(``memory_stats``): the process's RSS, tracemalloc's own overhead and what it traces,
pymalloc's arenas (used blocks, free blocks, empty pools) and glibc's heap (``mallinfo2``:
in use, free but kept, mmapped chunks), so the part of RSS outside the Python heap
(allocator, zlib, SQLite) is visible. With ``WRALE_HEAP_TRACE=0`` nothing is traced (the
snapshots are empty, the process runs at full speed) and only those figures are written.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import signal
import sys
import tempfile
import tracemalloc
from pathlib import Path
from types import FrameType

FRAMES = int(os.environ.get("WRALE_HEAP_FRAMES", "6"))  # traceback depth per allocation
TRACE = os.environ.get("WRALE_HEAP_TRACE", "1") != "0"  # "0": allocator figures only


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",  # bytes of the main arena's heap (sbrk) and other arenas' heaps
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",  # bytes in mmapped chunks
            "usmblks",
            "fsmblks",
            "uordblks",  # bytes in use
            "fordblks",  # bytes free but kept
            "keepcost",
        )
    ]


def _pymalloc() -> dict[str, int]:
    """pymalloc's own account (``sys._debugmallocstats``, which writes to fd 2)."""
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        try:
            sys.stderr.flush()
            os.dup2(tmp.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        text = tmp.read().decode(errors="replace")
    keys = {
        "arenas": r"# arenas allocated current\s*=\s*([\d,]+)",
        "used": r"# bytes in allocated blocks\s*=\s*([\d,]+)",
        "free_blocks": r"# bytes in available blocks\s*=\s*([\d,]+)",
        "empty_pools": r"(\d+) unused pools \* \d+ bytes\s*=\s*([\d,]+)",
        "total": r"^Total\s*=\s*([\d,]+)",
    }
    out: dict[str, int] = {}
    for key, pattern in keys.items():
        m = re.search(pattern, text, re.M)
        if m:
            out[key] = int(m.groups()[-1].replace(",", ""))
    return out


def memory_stats() -> dict[str, int]:
    """Where this process's resident memory is (bytes; see the module's doc)."""
    out: dict[str, int] = {}
    statm = Path("/proc/self/statm").read_text().split()
    out["rss"] = int(statm[1]) * os.sysconf("SC_PAGE_SIZE")
    if tracemalloc.is_tracing():
        out["traced"], out["traced_peak"] = tracemalloc.get_traced_memory()
        out["tracemalloc_overhead"] = tracemalloc.get_tracemalloc_memory()
    out.update({f"pymalloc_{k}": v for k, v in _pymalloc().items()})
    try:
        libc = ctypes.CDLL(None)
        libc.mallinfo2.restype = _MallInfo2
        mi = libc.mallinfo2()
    except (OSError, AttributeError):  # no glibc (musl, macOS)
        return out
    out.update(
        glibc_heap=mi.arena, glibc_in_use=mi.uordblks, glibc_free=mi.fordblks, glibc_mmap=mi.hblkhd
    )
    out["threads"] = len(list(Path("/proc/self/task").iterdir()))
    return out


def serve(prefix: str, argv: list[str]) -> int:
    count = 0

    def dump(_sig: int, _frame: FrameType | None) -> None:
        nonlocal count
        count += 1
        if TRACE and not tracemalloc.is_tracing():
            tracemalloc.start(FRAMES)
        path = Path(f"{prefix}.{count}.snap")
        Path(f"{prefix}.{count}.json").write_text(json.dumps(memory_stats()))
        snap = tracemalloc.take_snapshot() if TRACE else tracemalloc.Snapshot([], FRAMES)
        snap.dump(str(path.with_suffix(".tmp")))
        path.with_suffix(".tmp").rename(path)

    signal.signal(signal.SIGUSR2, dump)
    from wrale.user.cli.main import main

    sys.argv = ["wrale", *argv]
    result = main()
    return int(result or 0)


def site(tb: tracemalloc.Traceback) -> str:
    """The allocation's most telling frame: the innermost in a library or wrale, with the
    wrale frame that led to it when the innermost is a library's."""
    frames = list(reversed(tb))  # most recent first (a Traceback is oldest first)
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


def show_stats(paths: list[Path]) -> None:
    """The ``memory_stats`` sidecars side by side, in MiB."""
    stats = [json.loads(p.read_text()) for p in paths]
    keys = list(dict.fromkeys(k for s in stats for k in s))
    print(f"{'':24}" + "".join(f"{p.stem:>14}" for p in paths))
    for k in keys:
        cells = (s.get(k) for s in stats)
        if k in ("threads", "pymalloc_arenas"):
            row = "".join(f"{v if v is not None else '-':>14}" for v in cells)
        else:
            row = "".join(f"{v / 2**20:14.1f}" if v is not None else f"{'-':>14}" for v in cells)
        print(f"{k:24}{row}")


def main() -> int:
    args = sys.argv[1:]
    if args[:1] == ["--stats"]:
        show_stats([Path(a) for a in args[1:]])
        return 0
    if args[:1] == ["--compare"]:
        before, after, per = Path(args[1]), Path(args[2]), int(args[3])
        for where, kib, blocks in compare(before, after, per):
            print(f"{kib:9.2f} KiB/board {blocks:>9} blocks  {where}")
        return 0
    prefix, rest = args[0], args[args.index("--") + 1 :]
    return serve(prefix, rest)


if __name__ == "__main__":
    sys.exit(main())
