"""The outside tools the deployment tests run (promtool, docker, docker-compose,
systemd-analyze, haproxy): found on PATH, or the test fails in CI and skips elsewhere with
what to install (DESIGN.md §7)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def need(tool: str, install: str) -> str:
    """The path of ``tool``; missing, fail in CI (``CI`` set) or skip saying how to get it."""
    path = shutil.which(tool) or next(
        (p for p in (f"/usr/sbin/{tool}", f"/usr/bin/{tool}") if os.access(p, os.X_OK)), None
    )
    if path is None:
        msg = f"{tool} is not installed ({install})"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def run(
    *args: str, cwd: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, capture_output=True, text=True, cwd=cwd, timeout=timeout, check=False
    )
