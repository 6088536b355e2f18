"""Snapshot files of the CLI's output (``tests/user/cli/snapshots/*.txt``): compared as
they are, rewritten when ``WRALE_UPDATE_SNAPSHOTS=1``; ``mask`` blanks what changes from one
run to the next (ids, times, the central's port) keeping every line's width."""

from __future__ import annotations

import os
import re
from pathlib import Path

SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE_ENV = "WRALE_UPDATE_SNAPSHOTS"

_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
_ID = re.compile(r"(?<![0-9a-z])[0-9a-f]{8,32}(?![0-9a-z])|(?<![0-9a-z])[0-9a-f]{2,}…")
_ID_CELL = re.compile(r"(?<=│ )[0-9a-f]{4,32}(?=…? +│)")  # a short id alone in its cell
_URL = re.compile(r"http://127\.0\.0\.1:\d+")


def mask(text: str) -> str:
    """Times as ``YYYY-MM-DD hh:mm:ss``, ids (whole, cut, or a short id alone in a table
    cell) as ``#``s, the central's
    URL as ``http://central`` padded to its length."""
    text = _TIME.sub("YYYY-MM-DD hh:mm:ss", text)
    text = _ID_CELL.sub(lambda m: "#" * len(m.group()), text)
    text = _ID.sub(lambda m: "#" * (len(m.group()) - m.group().endswith("…")) + (
        "…" if m.group().endswith("…") else ""), text)  # fmt: skip
    return _URL.sub(lambda m: "http://central".ljust(len(m.group())), text)


def check(name: str, text: str) -> str | None:
    """None when ``text`` is the snapshot ``name`` (or it was rewritten); else what differs."""
    path = SNAPSHOTS / f"{name}.txt"
    if os.environ.get(UPDATE_ENV) == "1":
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return None
    if not path.exists():
        return f"{name}: no snapshot {path.name} (run with {UPDATE_ENV}=1 to write it)"
    want = path.read_text(encoding="utf-8")
    if want == text:
        return None
    import difflib

    diff = "".join(difflib.unified_diff(
        want.splitlines(keepends=True), text.splitlines(keepends=True), "snapshot", "now"
    ))  # fmt: skip
    return f"{name} differs from {path.name} ({UPDATE_ENV}=1 rewrites it):\n{diff}"
