"""The device processes stay lean: pydantic (about 21 MiB of resident memory) never loads
in ``wrale device run`` or ``wrale metald``; checked in a fresh interpreter each time."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

HEAVY = ("pydantic", "pydantic_core", "fastapi", "starlette", "sqlalchemy", "typer", "rich")
# what websockets and an HTTP date would pull in, unused on the board (about 2 MiB)
UNUSED = ("importlib.metadata", "urllib.request", "http.client", "email.utils", "zipfile")


def loaded_after_import(module: str, *, top: bool = True) -> set[str]:
    """Packages (``top``) or modules in ``sys.modules`` after a fresh ``import module``."""
    names = "{m.split('.')[0] for m in sys.modules}" if top else "set(sys.modules)"
    code = f"import json, sys, {module}\nprint(json.dumps(sorted({names})))"
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


def test_the_device_channel_loads_no_unused_standard_modules() -> None:
    loaded = loaded_after_import("wrale.fleet.sync.transport.websocket", top=False)
    assert "websockets.asyncio.client" in loaded
    assert not loaded & set(UNUSED), sorted(loaded & set(UNUSED))
    device = loaded_after_import("wrale.user.cli.device", top=False)
    assert not device & set(UNUSED), sorted(device & set(UNUSED))


def test_a_skipped_module_is_real_when_imported_afterwards() -> None:
    from wrale.shared.lean_import import SkippedModule, without_modules

    code = (
        "from wrale.shared.lean_import import without_modules\n"
        "import sys\n"
        "with without_modules('urllib.request'):\n"
        "    import urllib.request as skipped\n"
        "import urllib.request\n"
        "print(type(skipped).__name__, callable(urllib.request.getproxies))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.split() == ["SkippedModule", "True"]
    with pytest.raises(ImportError, match="skipped"):
        _ = SkippedModule("x").anything
    with without_modules("json"):  # already imported: left alone
        assert not isinstance(sys.modules["json"], SkippedModule)


@given(st.floats(0, 4_102_444_800))  # up to 2100
def test_http_dates_read_as_email_utils_writes_them(when: float) -> None:
    from email.utils import formatdate

    from wrale.metal.core.http import http_date

    assert http_date(when) == formatdate(when, usegmt=True)
