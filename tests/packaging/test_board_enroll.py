"""The board's ``wrale enroll`` without the CLI framework: the same flags as the Typer
command, first-boot token files, and the exit codes the first-boot unit acts on (0 used,
3 refused: both remove the file; 1 unreachable: kept for the next try) against a real
central server on a loopback port."""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer

from tests.user.api.central_server import ThreadedCentral, start_central
from wrale.user.cli import board_enroll
from wrale.user.cli.app import app as typer_app


def typer_options() -> set[str]:
    group: Any = typer.main.get_command(typer_app)
    ctx = group.make_context("wrale", ["enroll", "--help"], resilient_parsing=True)
    cmd = group.get_command(ctx, "enroll")
    names: set[str] = set()
    for param in cmd.params:
        names.update(o for o in param.opts if o.startswith("--"))
        names.update(o for o in param.secondary_opts if o.startswith("--"))
    return names - {"--help"}


def lean_options() -> set[str]:
    parser = board_enroll.build_parser()
    names: set[str] = set()
    for action in parser._actions:  # argparse has no public list of its options
        if not isinstance(action, argparse._HelpAction):
            names.update(o for o in action.option_strings if o.startswith("--"))
    return names


def test_the_lean_enroll_takes_every_flag_of_the_typer_one() -> None:
    assert typer_options() <= lean_options()
    assert lean_options() - typer_options() == {"--token-file"}


def test_enroll_runs_without_typer_or_rich_loaded(tmp_path: Path) -> None:
    """A device install has no CLI framework: block it and run the board's commands."""
    code = (
        "import sys\n"
        "for m in ('typer', 'rich', 'click', 'fastapi', 'sqlalchemy', 'uvicorn', 'starlette'):\n"
        "    sys.modules[m] = None\n"
        "from wrale.user.cli.main import main\n"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "except SystemExit as e:\n"
        "    print('exit', e.code)\n"
    )
    for args in (["--version"], ["enroll", "--help"], ["metald", "--help"], ["edge", "--help"]):
        out = subprocess.run(
            [sys.executable, "-c", code, *args], capture_output=True, text=True, check=False
        )
        assert out.stdout.rstrip().endswith("exit 0"), (args, out.stdout, out.stderr)
    out = subprocess.run(
        [sys.executable, "-c", code, "devices", "list"], capture_output=True, text=True, check=False
    )
    assert "exit 2" in out.stdout
    assert "pip install 'wrale-fleet[cli]'" in out.stderr


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("central = 'https://fleet.example'\ntoken = 5\n", "'token' has the wrong type"),
        ("central = 'x'\ntoken = 'y'\nhost = 'z'\n", "unknown key(s) host"),
        ("central = 'x'\ncapabilities = ['a', 1]\ntoken='t'\n", "'capabilities' has the wrong"),
        ("central = \n", "not valid TOML"),
        ("central = 'https://fleet.example'\n", "--central and --token are needed"),
    ],
)
def test_a_bad_token_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    f = write(tmp_path / "wrale-enroll.toml", text)
    assert board_enroll.main(["--token-file", str(f), "--state-dir", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_an_unreadable_token_file_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert board_enroll.main(["--token-file", str(tmp_path / "none.toml")]) == 2
    assert "cannot read token file" in capsys.readouterr().err
    write(tmp_path / "bin.toml", "").write_bytes(b"\xff\xfe")
    assert board_enroll.main(["--token-file", str(tmp_path / "bin.toml")]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_flags_take_precedence_over_the_file(tmp_path: Path) -> None:
    f = write(
        tmp_path / "t.toml",
        "central = 'https://a.example'\ntoken = 'wet_file'\nname = 'from-file'\n"
        "insecure = true\ncapabilities = ['gpio']\n",
    )
    args = board_enroll.build_parser().parse_args(
        ["--token-file", str(f), "--name", "flag", "--no-insecure"]
    )
    req = board_enroll.request_from_args(args, {})
    assert (req.central, req.token, req.name) == ("https://a.example", "wet_file", "flag")
    assert req.insecure is False
    assert req.capabilities == ("gpio",)
    env_only = board_enroll.build_parser().parse_args(["--central", "https://b.example"])
    assert board_enroll.request_from_args(env_only, {"WRALE_TOKEN": "wet_env"}).token == "wet_env"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_central_is_exit_1_so_the_file_is_kept(tmp_path: Path) -> None:
    f = write(
        tmp_path / "t.toml",
        f"central = 'http://127.0.0.1:{closed_port()}'\ntoken = 'wet_x'\n",
    )
    assert board_enroll.main(["--token-file", str(f), "--state-dir", str(tmp_path / "s")]) == 1
    assert not (tmp_path / "s" / "credentials.json").exists()


@pytest.fixture
def central(tmp_path: Path) -> Iterator[ThreadedCentral]:
    c = start_central(tmp_path / "central", migrate=False)
    yield c
    c.stop()


def new_token(central: ThreadedCentral) -> str:
    r = httpx.post(
        f"{central.url}/api/v1/enrollment-tokens",
        headers={"Authorization": f"Bearer {central.login()}"},
        json={"name": "rack A", "max_uses": 1},
        timeout=10,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


def test_a_token_file_enrolls_once_then_is_refused(
    central: ThreadedCentral, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = new_token(central)
    f = write(
        tmp_path / "wrale-enroll.toml",
        f"central = '{central.url}'\ntoken = '{token}'\nname = 'pi-a1-u07'\n",
    )
    state = tmp_path / "state"
    assert board_enroll.main(["--token-file", str(f), "--state-dir", str(state)]) == 0
    cred = state / "credentials.json"
    assert cred.stat().st_mode & 0o777 == 0o600
    assert "enrolled as pi-a1-u07" in capsys.readouterr().out
    # enrolled already: a second file is a usage error, the credential is untouched
    before = cred.read_bytes()
    assert board_enroll.main(["--token-file", str(f), "--state-dir", str(state)]) == 2
    assert cred.read_bytes() == before
    # the single-use token is spent: the server refuses it (3: the unit removes the file)
    other = tmp_path / "other"
    assert board_enroll.main(["--token-file", str(f), "--state-dir", str(other)]) == 3
    assert "refused" in capsys.readouterr().err
    assert not (other / "credentials.json").exists()
