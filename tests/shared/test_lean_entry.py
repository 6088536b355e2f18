"""The board's commands start lean: argparse's help formatter without ``shutil``, msgspec
without ``typing_extensions``; each checked in a fresh interpreter, with the same results."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable

import pytest

from wrale.metal.daemon import build_parser as metald_parser
from wrale.user.cli.device import build_parser as device_parser


def run(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return out.stdout.strip()


@pytest.mark.parametrize("columns", [None, "50", "200", "nonsense", "-3"])
@pytest.mark.parametrize("build", [device_parser, metald_parser])
def test_the_help_is_what_argparse_formats(
    build: Callable[[], argparse.ArgumentParser],
    columns: str | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    parser = build()
    ours = (parser.format_help(), parser.format_usage())
    parser.formatter_class = argparse.HelpFormatter
    assert (parser.format_help(), parser.format_usage()) == ours


def test_parsing_arguments_does_not_import_shutil() -> None:
    code = (
        "import argparse, sys\n"
        "from wrale.shared.lean_argparse import HelpFormatter\n"
        "p = argparse.ArgumentParser(prog='x', formatter_class=HelpFormatter)\n"
        "p.add_argument('--n', type=int, choices=[1, 2])\n"
        "assert p.parse_args(['--n', '2']).n == 2\n"
        "print('shutil' in sys.modules)"
    )
    assert run(code) == "False"


def test_msgspec_loads_without_typing_extensions_and_decodes_the_same() -> None:
    code = (
        "import sys\n"
        "from wrale.user.cli.main import _import_msgspec_lean\n"
        "_import_msgspec_lean()\n"
        "print('typing_extensions' in sys.modules)\n"
        "from typing import Annotated\n"
        "import msgspec\n"
        "class S(msgspec.Struct):\n"
        "    n: Annotated[int, msgspec.Meta(ge=0)]\n"
        "    tags: list[str] = []\n"
        "print(msgspec.json.decode(b'{\"n\": 3}', type=S))\n"
        "try:\n"
        "    msgspec.json.decode(b'{\"n\": -1}', type=S)\n"
        "except msgspec.ValidationError as e:\n"
        "    print(e)\n"
        "import typing_extensions\n"
        "print(type(typing_extensions).__name__, hasattr(typing_extensions, 'TypedDict'))"
    )
    assert run(code).splitlines() == [
        "False",
        "S(n=3, tags=[])",
        "Expected `int` >= 0 - at `$.n`",
        "module True",
    ]
