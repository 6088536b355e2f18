"""The main list commands and ``wrale watch --once`` against a real central with a fixed
fleet, at 80 and at 200 columns, compared with the committed snapshots (ids and times
masked); at 80 columns no line is longer than 80."""

from __future__ import annotations

import pytest

from tests.user.cli import output_fleet, snapshots
from tests.user.cli.conftest import CliCentral
from wrale.fleet.brain.db import Database
from wrale.user.cli import output

pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)

COMMANDS = {
    "devices": ("devices", "list"),
    "racks": ("racks", "list"),
    "groups": ("groups", "list"),
    "group-members": ("groups", "members", "lab-boards"),
    "alerts": ("alerts", "list"),
    "jobs": ("jobs", "list"),
    "rollouts": ("rollouts", "list"),
    "watch": ("watch", "--once"),
}


def _at_width(monkeypatch: pytest.MonkeyPatch, width: int) -> None:
    monkeypatch.setenv("COLUMNS", str(width))
    for console in (output.console, output.err_console):
        monkeypatch.setattr(console, "width", width)


@pytest.mark.parametrize("width", [80, 200])
def test_list_commands_and_watch_match_their_snapshots(
    cli: CliCentral, database: Database, monkeypatch: pytest.MonkeyPatch, width: int
) -> None:
    output_fleet.build(cli, database)
    _at_width(monkeypatch, width)
    problems = []
    for name, args in COMMANDS.items():
        text = cli.ok(*args)
        if width == 80:
            long = [line for line in text.splitlines() if len(line) > 80]
            assert not long, f"wrale {' '.join(args)}: lines over 80 columns:\n" + "\n".join(long)
        problem = snapshots.check(f"{name}-{width}", snapshots.mask(text))
        if problem:
            problems.append(problem)
    assert not problems, "\n\n".join(problems)


def test_wide_keeps_every_column_at_80(
    cli: CliCentral, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    output_fleet.build(cli, database)
    _at_width(monkeypatch, 80)
    narrow = cli.ok("devices", "list")
    assert "--wide shows" in narrow  # says what it left out
    assert "model" not in narrow.splitlines()[2]  # the header row lost the model column
    wide = cli.ok("devices", "list", "--wide")
    header = next(line for line in wide.splitlines() if " name " in line)
    for column in ("id", "name", "status", "model", "tags", "location", "last seen"):
        assert column in header
    assert max(len(line) for line in wide.splitlines()) > 80
    assert "--wide shows" not in wide
    assert "Raspberry Pi 5" in wide  # cells whole, not cut
    problem = snapshots.check("devices-wide-80", snapshots.mask(wide))
    assert problem is None, problem
