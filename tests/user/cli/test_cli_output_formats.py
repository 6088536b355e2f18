"""``-o json|yaml|csv`` parsed back (full ids, unrounded numbers, ISO-8601 times, RFC 4180
CSV), ``--json`` as before, numbers rounded in tables, the column fitting rule, and
``wrale watch`` riding out a central it cannot reach."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Any

import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from tests.user.cli import output_fleet
from tests.user.cli.conftest import CliCentral
from tests.user.metald_proc import DEV_KEY, Metald
from wrale.fleet.brain.db import Database
from wrale.user.cli import output, watch
from wrale.user.cli.app import app
from wrale.user.cli.client import CentralClient
from wrale.user.cli.tables import KEEP, Col, as_cols, fit_width, fmt

SQLITE = pytest.mark.parametrize("database", ["sqlite"], indirect=True)  # as the CLI tests


def _iso(value: Any) -> float:
    return datetime.fromisoformat(value).timestamp()


@SQLITE
def test_yaml_csv_and_json_carry_full_values(cli: CliCentral, database: Database) -> None:
    ids = output_fleet.build(cli, database)
    as_json = cli.json("devices", "list")
    assert cli.json("devices", "list") == json.loads(cli.ok("devices", "list", "-o", "json"))
    assert {d["name"]: d["id"] for d in as_json} == ids  # full 32-hex ids

    as_yaml = yaml.safe_load(cli.ok("devices", "list", "-o", "yaml"))
    assert [d["id"] for d in as_yaml] == [d["id"] for d in as_json]
    for y, j in zip(as_yaml, as_json, strict=True):
        assert _iso(y["created_at"]) == pytest.approx(j["created_at"], abs=1e-6)
        assert y["tags"] == j["tags"]
        assert y["location"]["rack_id"] == j["location"]["rack_id"]

    text = cli.ok("devices", "list", "--output", "csv")
    assert text.splitlines()[0].startswith("id,name,")  # a header row
    raw = cli.run("devices", "list", "--output", "csv").stdout_bytes  # .output folds CRLF
    assert raw.count(b"\r\n") == len(as_json) + 1  # RFC 4180 line ends
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [r["id"] for r in rows] == [d["id"] for d in as_json]
    assert [json.loads(r["tags"]) for r in rows] == [d["tags"] for d in as_json]
    assert [_iso(r["created_at"]) for r in rows] == pytest.approx(
        [d["created_at"] for d in as_json], abs=1e-6
    )

    # numbers unrounded in the data formats, rounded in the table
    alerts = yaml.safe_load(cli.ok("alerts", "list", "-o", "yaml"))
    assert sorted(a["value"] for a in alerts) == [70.0131, 81.25791304]
    alert_rows = list(csv.DictReader(io.StringIO(cli.ok("alerts", "list", "-o", "csv"))))
    assert sorted(float(r["value"]) for r in alert_rows) == [70.0131, 81.25791304]
    wide = cli.ok("alerts", "list", "--wide")
    assert "81.3" in wide
    assert "81.257" not in wide

    power = cli.json("racks", "power", "rack-a")
    assert power["draw_w"] == pytest.approx(6.93422 + 5.1077 + 4.8, abs=1e-3)  # as the API has it
    at_iso = [{**d, "at": output.iso(d["at"])} for d in power["devices"]]
    assert yaml.safe_load(cli.ok("racks", "power", "rack-a", "-o", "yaml")) == {
        **power,
        "devices": at_iso,
    }
    assert "16.8" in cli.ok("racks", "power", "rack-a")

    # a show command: one object, one CSV record
    shown = list(csv.DictReader(io.StringIO(cli.ok("devices", "show", "pi-01", "-o", "csv"))))
    assert len(shown) == 1
    assert shown[0]["id"] == ids["pi-01"]
    assert yaml.safe_load(cli.ok("devices", "show", "pi-01", "-o", "yaml"))["name"] == "pi-01"


@SQLITE
def test_bad_output_format_is_a_usage_error(cli: CliCentral) -> None:
    cli.login()
    r = cli.run("devices", "list", "-o", "xml")
    assert r.exit_code == 2
    assert "xml" in r.output


def test_csv_quotes_what_needs_quoting() -> None:
    text = output.to_csv([{"name": 'a "quoted", name', "n": 1.0000001, "x": None, "ok": True}])
    assert text == 'name,n,x,ok\r\n"a ""quoted"", name",1.0000001,,true\r\n'
    assert list(csv.reader(io.StringIO(text))) == [
        ["name", "n", "x", "ok"],
        ['a "quoted", name', "1.0000001", "", "true"],
    ]
    assert output.to_csv(["a", "b"]) == "value\r\na\r\nb\r\n"


def test_numbers_in_tables_are_rounded_for_people() -> None:
    assert fmt(70.01314907491161) == "70.0"
    assert fmt(63.4471) == "63.4"
    assert fmt(5.0) == "5"
    assert fmt(0.05) == "0.05"
    assert fmt(0.123456) == "0.12"
    assert fmt(12345.678) == "12345.7"
    assert fmt(7) == "7"
    assert fmt(True) == "yes"
    assert fmt(None) == "—"


def test_columns_drop_by_priority_until_the_table_fits() -> None:
    widths = [32, 10, 8, 14, 20]  # id, name, status, model, tags
    prios = [3, KEEP, KEEP, 5, 4]
    assert fit_width(widths, prios, 200) == [0, 1, 2, 3, 4]
    assert fit_width(widths, prios, 80) == [0, 1, 2]  # model (5), then tags (4) dropped
    assert fit_width(widths, prios, 40) == [1, 2]
    assert fit_width(widths, prios, 10) == [1, 2]  # name and status never drop
    assert fit_width([5, 5, 5], [1, 1, 1], 12) == [0]  # equals: the rightmost first


def test_columns_given_by_name_alone_get_a_priority() -> None:
    cols = as_cols(["id", "username", "role", "created"])
    assert [c.priority for c in cols] == [1, KEEP, 4, 5]  # the short id drops last
    assert [c.priority for c in as_cols(["id", "op", "state"])] == [1, 3, KEEP]
    assert as_cols([Col("model", 9), "name"]) == [Col("model", 9), Col("name", KEEP)]


def test_watch_says_the_central_is_unreachable_and_retries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(watch.time, "sleep", sleep)
    buf = io.StringIO()
    monkeypatch.setattr(watch, "console", Console(file=buf, width=80))
    client = CentralClient(f"http://127.0.0.1:{port}", "token", timeout_s=2)
    with client as c, pytest.raises(KeyboardInterrupt):
        watch._live(c, 0.5, 10)
    assert sleeps == [0.5, 0.5, 0.5]  # it kept trying
    assert "cannot reach the central" in buf.getvalue()
    assert "retrying every 0.5 s" in buf.getvalue()


@SQLITE
def test_watch_once_without_a_central_fails_plainly(cli: CliCentral) -> None:
    r = cli.run("watch", "--once")
    assert r.exit_code == 1
    assert "no central server" in r.output


def _shape(data: Any) -> Any:
    """Keys and ids of a rollout or job (a list of them, or one): what another read of an
    object the engine is moving on still shares with the first."""
    if isinstance(data, list):
        return [_shape(item) for item in data]
    return sorted(data), data["id"]


@SQLITE
def test_every_list_and_show_command_fits_80_columns_and_parses_back(
    cli: CliCentral, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    output_fleet.build(cli, database)
    job = cli.json("jobs", "list")[0]["id"]
    rollout = cli.json("rollouts", "list")[0]["id"]
    alert = cli.json("alerts", "list")[0]["id"]
    monkeypatch.setenv("COLUMNS", "80")
    for console in (output.console, output.err_console):
        monkeypatch.setattr(console, "width", 80)
    # the audit log and decisions are filtered (the rollout engine adds to them meanwhile)
    commands = [
        ("whoami",),
        ("audit", "--action", "device.create"),
        ("decisions", "--loop", "capping"),
        ("devices", "list"),
        ("devices", "show", "pi-01"),
        ("sites", "list"),
        ("rooms", "list"),
        ("racks", "list"),
        ("racks", "power", "rack-a"),
        ("zones", "list"),
        ("groups", "list"),
        ("groups", "members", "lab-boards"),
        ("tokens", "list"),
        ("api-tokens", "list"),
        ("alerts", "list"),
        ("alerts", "show", alert),
        ("alert-rules", "list"),
        ("policies", "list"),
        ("policies", "effective", "pi-01"),
        ("users", "list"),
        ("jobs", "list"),
        ("jobs", "show", job),
        ("maintenance", "tasks"),
        ("maintenance", "queue"),
        ("maintenance", "status", "pi-01"),
        ("maintenance", "windows", "list"),
        ("maintenance", "rules", "list"),
        ("rollouts", "list"),
        ("rollouts", "show", rollout),
        ("twin", "show", "pi-01"),
        ("commands", "list"),
        ("templates", "list"),
    ]
    for args in commands:
        table = cli.ok(*args)
        long = [line for line in table.splitlines() if len(line) > 80]
        assert not long, f"wrale {' '.join(args)}: lines over 80 columns:\n" + "\n".join(long)
        data = json.loads(cli.ok(*args, "-o", "json"))
        as_yaml = yaml.safe_load(cli.ok(*args, "-o", "yaml"))
        if args[0] in ("rollouts", "jobs"):  # the engine moves them on between the calls
            assert _shape(as_yaml) == _shape(data), args
        else:
            assert as_yaml == output.with_iso_times(data), args
        records = list(csv.DictReader(io.StringIO(cli.ok(*args, "-o", "csv"))))
        assert len(records) == (len(data) if isinstance(data, list) else 1), args


def test_metal_commands_take_the_formats_too(metald: Metald) -> None:
    runner = CliRunner()
    env = {"WRALE_METAL_URL": metald.url, "WRALE_METAL_API_KEY": DEV_KEY}
    r = runner.invoke(app, ["metal", "status", "-o", "yaml"], env=env)
    assert r.exit_code == 0, r.output
    state = yaml.safe_load(r.output)
    assert state["power"]["source"] == "main"
    assert isinstance(state["thermal"]["cpu_temp_c"], float)  # as metald said it
    datetime.fromisoformat(state["updated_at"])  # a time, ISO-8601
    r = runner.invoke(app, ["metal", "diag", "-o", "csv"], env=env)
    assert r.exit_code == 0, r.output
    checks = list(csv.DictReader(io.StringIO(r.output)))
    assert checks
    assert all(c["name"] for c in checks)
