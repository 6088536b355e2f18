"""``wrale metald --grant-hardware GROUP`` on a Pi 5-shaped tree: exactly the sysfs files metald
writes become the group's to write (group, ``g+rw``), nothing else in ``/sys``, ``/dev`` or
``/proc`` changes, and a group that does not exist is refused before anything is touched.
Runs as any user: the group is the test process's own (another of its groups where it has one).
"""

from __future__ import annotations

import grp
import logging
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.metal.hw.fakegpio import PI5_NEW_KERNEL, PI5_NEW_KERNEL_LINKS, FakeDev
from tests.metal.hw.fakesys import CPUFREQ, FakeSys
from wrale.metal.service import grant_hardware
from wrale.user.cli.app import app
from wrale.user.cli.main import main as wrale_main

ZONE = "class/thermal/thermal_zone0"
NO_SUCH_GROUP = "wrale-no-such-group"
FILE_MODE, DIR_MODE = 0o644, 0o755  # what sysfs shows root's attributes and directories as

Nodes = dict[str, tuple[int, int]]  # path under the board -> (group id, permission bits)
Cli = Callable[[list[str]], tuple[int, str, str]]  # argv after ``wrale`` -> code, out, err


def own_group() -> str:
    return grp.getgrgid(os.getgid()).gr_name


def other_gid() -> int:
    """A group the tree can start in that is not :func:`own_group`, so the grant's chown shows:
    any for root, else another group of this process; the own group if it has no other."""
    own = os.getgid()
    if os.geteuid() == 0:
        return 65534 if own != 65534 else 65533
    return next((g for g in os.getgroups() if g != own), own)


def nodes(board: Path) -> Nodes:
    """Group and permission bits of every node under ``board`` (links themselves, not followed)."""
    found: Nodes = {}
    for directory, dirnames, filenames in os.walk(board):
        for name in [*dirnames, *filenames]:
            path = Path(directory, name)
            st = path.lstat()
            found[str(path.relative_to(board))] = (st.st_gid, stat.S_IMODE(st.st_mode))
    return found


def settle(board: Path, gid: int) -> None:
    """Every node owned by ``gid`` with sysfs's modes: the tree as a Pi boots with it."""
    for directory, dirnames, filenames in os.walk(board):
        for name in [*dirnames, *filenames]:
            path = Path(directory, name)
            os.lchown(path, -1, gid)
            if not path.is_symlink():
                path.chmod(DIR_MODE if path.is_dir() else FILE_MODE)


@pytest.fixture
def board(tmp_path: Path) -> Path:
    return tmp_path / "board"


@pytest.fixture
def fake(board: Path) -> FakeSys:
    """A Pi 5 with its fan, RP1's PWM chip and its ``/dev/gpiochip*`` set (kernel 6.6.47+)."""
    fake = FakeSys(board)
    fake.export_pwm(2)  # a hardware-PWM GPIO output: the OS's udev rules own these, not us
    FakeDev(board, PI5_NEW_KERNEL, PI5_NEW_KERNEL_LINKS)
    settle(board, other_gid())
    return fake


def driven(fake: FakeSys) -> list[str]:
    """What metald writes on this Pi 5, under ``sys`` as the grant reports it."""
    fan = fake.hwmon("pwmfan")
    return [
        f"{fan}/pwm1",
        f"{fan}/pwm1_enable",
        f"{ZONE}/policy",
        f"{ZONE}/mode",
        f"{CPUFREQ}/scaling_max_freq",
    ]


def granted(fake: FakeSys, before: Nodes, files: list[str]) -> Nodes:
    """``before`` with ``files`` (followed to the real attribute) in the own group, ``g+rw``."""
    after = dict(before)
    for rel in files:
        real = str((fake.sys / rel).resolve().relative_to(fake.base))
        assert before[real] == (other_gid(), FILE_MODE)
        after[real] = (os.getgid(), FILE_MODE | stat.S_IWGRP)
    return after


def test_the_group_may_write_exactly_the_files_metald_drives(fake: FakeSys) -> None:
    before = nodes(fake.base)
    done = grant_hardware(fake.paths(), own_group())
    assert done == [str(fake.sys / rel) for rel in driven(fake)]
    assert nodes(fake.base) == granted(fake, before, driven(fake))


def test_granting_again_at_the_next_start_changes_nothing_more(fake: FakeSys) -> None:
    grant_hardware(fake.paths(), own_group())
    after_first = nodes(fake.base)
    assert grant_hardware(fake.paths(), own_group()) == [str(fake.sys / r) for r in driven(fake)]
    assert nodes(fake.base) == after_first


def test_a_pi_without_the_fan_grants_the_zone_and_cpufreq_only(board: Path) -> None:
    fake = FakeSys(board, fan=False)
    settle(board, other_gid())
    before = nodes(board)
    files = [f"{ZONE}/policy", f"{ZONE}/mode", f"{CPUFREQ}/scaling_max_freq"]
    assert grant_hardware(fake.paths(), own_group()) == [str(fake.sys / rel) for rel in files]
    assert nodes(board) == granted(fake, before, files)


def test_a_group_that_does_not_exist_is_refused_and_nothing_changes(fake: FakeSys) -> None:
    with pytest.raises(KeyError):
        grp.getgrnam(NO_SUCH_GROUP)
    before = nodes(fake.base)
    with pytest.raises(LookupError, match=f"^no group named '{NO_SUCH_GROUP}'$"):
        grant_hardware(fake.paths(), NO_SUCH_GROUP)
    assert nodes(fake.base) == before


# ---------------------------------------------------------------------- the command


@pytest.fixture
def config(tmp_path: Path, fake: FakeSys) -> Path:
    """``/etc/wrale/metald.toml`` pointing the Linux backend at the fake tree."""
    path = tmp_path / "etc/metald.toml"
    path.parent.mkdir(parents=True)
    path.write_text(f'backend = "linux"\n\n[linux]\nsysfs_root = "{fake.sys}"\n')
    return path


def exec_start_pre(config: Path, data_dir: Path, group: str) -> list[str]:
    """The unit's ``ExecStartPre=+`` command line (after ``wrale``) on this test's files."""
    return [
        "metald",
        "--config",
        str(config),
        "--data-dir",
        str(data_dir),
        "--grant-hardware",
        group,
    ]


@pytest.fixture
def root_logger() -> Iterator[None]:
    """The command configures the root logger for its process; give the next test it back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


@pytest.fixture(params=["console-script", "typer-app"])
def wrale(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    root_logger: None,
) -> Cli:
    """``wrale ARGV`` as the console script runs it (``metald`` without Typer, as on a board)
    and through the admin CLI's Typer app; the operator's ``WRALE_*`` variables left out."""
    for name in [n for n in os.environ if n.startswith("WRALE_")]:
        monkeypatch.delenv(name)

    def console_script(argv: list[str]) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as exit_:
            wrale_main(argv)
        out = capsys.readouterr()
        return int(exit_.value.code or 0), out.out, out.err

    def typer_app(argv: list[str]) -> tuple[int, str, str]:
        result = CliRunner().invoke(app, argv)
        return result.exit_code, result.stdout, result.stderr

    return console_script if request.param == "console-script" else typer_app


def test_the_command_grants_the_files_and_says_how_many(
    fake: FakeSys, config: Path, tmp_path: Path, wrale: Cli
) -> None:
    before = nodes(fake.base)
    code, out, err = wrale(exec_start_pre(config, tmp_path / "data", own_group()))
    assert (code, out, err) == (0, f"wrale metald: group {own_group()} may write 5 file(s)\n", "")
    assert nodes(fake.base) == granted(fake, before, driven(fake))


@pytest.mark.parametrize("group", [NO_SUCH_GROUP, ""])
def test_the_command_names_a_missing_group_and_changes_nothing(
    fake: FakeSys, config: Path, tmp_path: Path, wrale: Cli, group: str
) -> None:
    """An empty name (an unset variable in the unit) is refused too, not taken for "no
    grant asked": metald must not start as root in the unit's ExecStartPre."""
    before = nodes(fake.base)
    code, out, err = wrale(exec_start_pre(config, tmp_path / "data", group))
    assert (code, out, err) == (2, "", f"wrale metald: no group named '{group}'\n")
    assert nodes(fake.base) == before
