"""Helpers shared by the benchmark scripts: figures with units, and the results file."""

from __future__ import annotations

import json
import platform
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "latest.json"


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
