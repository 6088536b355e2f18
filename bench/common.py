"""Helpers shared by the benchmark scripts: figures with units, and the results file."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "latest.json"
PG_DSN = os.environ.get("WRALE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    target: str = ""

    def line(self) -> str:
        goal = f"  (target {self.target})" if self.target else ""
        return f"{self.name:<40} {self.value:>12.4g} {self.unit}{goal}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_results(figures: list[Figure], path: Path = RESULTS) -> None:
    """Merge figures into the results file (other benchmarks' figures are kept)."""
    data: dict[str, Any] = {}
    if path.exists():
        data = json.loads(path.read_text())
    data.setdefault("figures", {})
    for f in figures:
        data["figures"][f.name] = {"value": round(f.value, 6), "unit": f.unit, "target": f.target}
    data["machine"] = {
        "python": platform.python_version(),
        "cpu_count": _cpus(),
        "platform": platform.platform(),
    }
    data["written_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


async def _pg(name: str, create: bool) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_DSN, timeout=3)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if create:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


@contextlib.contextmanager
def scratch_pg(name: str) -> Iterator[str | None]:
    """A fresh PostgreSQL database ``name`` for one benchmark, dropped after: its
    SQLAlchemy URL, or None (said why) when PostgreSQL cannot be reached."""
    try:
        asyncio.run(_pg(name, create=True))
    except Exception as exc:  # unreachable or refused: no PostgreSQL figures
        print(f"PostgreSQL not reachable at {PG_DSN} ({exc}); PostgreSQL figures skipped")
        yield None
        return
    try:
        base = PG_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        yield f"{base}/{name}"
    finally:
        asyncio.run(_pg(name, create=False))
