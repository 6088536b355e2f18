"""The device processes stay lean: pydantic (about 21 MiB of resident memory) never loads
in ``wrale device run`` or ``wrale metald``; checked in a fresh interpreter each time."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("pydantic", "pydantic_core", "fastapi", "starlette", "sqlalchemy", "typer", "rich")


def loaded_after_import(module: str) -> set[str]:
    """Top-level packages in ``sys.modules`` after a fresh ``import module``."""
    code = (
        f"import json, sys, {module}\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return set(json.loads(out.stdout))


@pytest.mark.parametrize("entry", ["wrale.user.cli.device", "wrale.metal.daemon"])
def test_the_device_entry_points_load_no_pydantic_nor_central_frameworks(entry: str) -> None:
    loaded = loaded_after_import(entry)
    assert entry.split(".")[0] in loaded
    assert not loaded & set(HEAVY), f"{entry} loads {sorted(loaded & set(HEAVY))}"


def test_the_central_settings_still_load_pydantic() -> None:
    """The check above can fail: the central's settings module does load pydantic."""
    assert "pydantic" in loaded_after_import("wrale.shared.central_settings")
