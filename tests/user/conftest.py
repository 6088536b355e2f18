"""Fixtures of the end-to-end tests: a real metald process."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.user.metald_proc import Metald


@pytest.fixture
def metald(tmp_path: Path) -> Iterator[Metald]:
    m = Metald(tmp_path / "metald")
    m.start()
    yield m
    if m.proc and m.proc.poll() is None:
        m.kill(signal.SIGTERM)
