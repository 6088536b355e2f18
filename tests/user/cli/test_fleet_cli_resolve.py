"""Names and short ids in the ``wrale`` CLI against a real central: commands take a name or
a unique id prefix/suffix, an ambiguous one lists the candidates, tables show short ids that
resolve back and locations by name, and shell completion asks the central for names."""

from __future__ import annotations

import re

import pytest

from tests.user.cli.conftest import CliCentral
from wrale.user.cli import refs, session
from wrale.user.cli.app import app

pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


def _fleet(cli: CliCentral) -> dict[str, str]:
    """Three boards pi-01..pi-03 (ids of one fleet share their time-ordered head)."""
    cli.login()
    token = cli.json("tokens", "create", "--name", "t", "--uses", "3")["token"]
    cli.ok("enroll-bulk", "--token", token, "--count", "3", "--prefix", "pi-")
    return {d["name"]: d["id"] for d in cli.json("devices", "list")}


def _short_len(cli: CliCentral, kind: str) -> int:
    with session.connect() as c:
        return int(c.get("/resolve/short-ids", kind=kind)["length"])


def test_names_and_short_ids_as_arguments(cli: CliCentral) -> None:
    ids = _fleet(cli)
    n = _short_len(cli, "device")
    for name, id_ in ids.items():
        assert cli.json("devices", "show", id_[-n:])["name"] == name  # the short id
        assert cli.json("devices", "show", name)["id"] == id_  # the name
        assert cli.json("devices", "show", id_[:20])["id"] == id_  # a long enough prefix
        assert cli.json("devices", "show", id_)["id"] == id_  # the full id
    cli.ok("groups", "create", "lab")
    gid = cli.json("groups", "list")[0]["id"]
    cli.ok("groups", "add", gid[-6:], "pi-01", ids["pi-02"][-n:])
    members = cli.json("groups", "members", "lab")
    assert sorted(m["name"] for m in members) == ["pi-01", "pi-02"]
    job = cli.json("jobs", "create", "burn", "--sim-load", "10")
    assert cli.json("jobs", "show", "burn")["id"] == job["id"]
    assert cli.json("jobs", "show", job["id"][-8:])["name"] == "burn"
    assert "stop asked" in cli.ok("jobs", "stop", "burn")


def test_ambiguous_and_unknown_refs(cli: CliCentral) -> None:
    ids = _fleet(cli)
    head = next(iter(ids.values()))[:4]  # every id of the fleet starts so
    r = cli.run("devices", "show", head)
    assert r.exit_code == 1
    assert f"'{head}' matches several devices:" in r.output
    for name in ids:
        assert name in r.output
    assert "give more of the id, or the name" in r.output
    assert "Traceback" not in r.output
    r = cli.run("devices", "show", "zzzz-nothing")
    assert r.exit_code == 1
    assert "no device matches 'zzzz-nothing'" in r.output
    r = cli.run("devices", "show", "%")
    assert r.exit_code == 1
    assert "no device matches '%'" in r.output
    r = cli.run("devices", "list", "--rack", "nowhere")
    assert r.exit_code == 1
    assert "no rack matches 'nowhere'" in r.output


def test_tables_show_short_ids_and_locations_by_name(cli: CliCentral) -> None:
    ids = _fleet(cli)
    cli.ok("sites", "create", "Leeds")
    cli.ok("rooms", "create", "Server room", "--site", "Leeds")
    cli.ok("racks", "create", "R1", "--room", "Server room")
    cli.ok("zones", "create", "cold-aisle")
    n = _short_len(cli, "device")
    out = cli.ok("devices", "place", ids["pi-02"][-n:], "--rack", "R1", "--slot", "7")
    assert "Leeds / Server room / R1 U7" in out
    cli.ok("devices", "place", "pi-03", "--zone", "cold-aisle")
    out = cli.ok("devices", "list")
    assert "Leeds / Server room / R1 U7" in out
    assert "zone cold-aisle" in out
    assert "Leeds / Server room / R1 U7" in cli.ok("devices", "show", "pi-02")
    for id_ in ids.values():
        assert id_ not in out  # no full id in the table
        assert re.search(rf"\b{id_[-n:]}\b", out)  # its short id is
    assert {d["id"] for d in cli.json("devices", "list")} == set(ids.values())  # scripts


def test_completion_of_names(cli: CliCentral, monkeypatch: pytest.MonkeyPatch) -> None:
    complete = refs.completer("device")
    assert complete("pi") == []  # not logged in: nothing, quietly
    ids = _fleet(cli)
    got = complete("pi-0")
    assert [name for name, _ in got] == ["pi-01", "pi-02", "pi-03"]
    assert all(help_.startswith("id …") for _, help_ in got)
    assert [name for name, _ in complete("pi-02")] == ["pi-02"]
    assert complete("zz") == []
    cli.ok("groups", "create", "lab")
    assert [name for name, _ in refs.completer("group")("l")] == ["lab"]
    assert len(ids) == 3
    # through the shell protocol Typer speaks to bash
    monkeypatch.setenv("_WRALE_COMPLETE", "complete_bash")
    monkeypatch.setenv("COMP_WORDS", "wrale devices show pi-0")
    monkeypatch.setenv("COMP_CWORD", "3")
    r = cli.runner.invoke(app, [], prog_name="wrale")
    assert r.output.split() == ["pi-01", "pi-02", "pi-03"]
    # a central that does not answer: nothing, quietly
    monkeypatch.setenv("WRALE_CENTRAL_URL", "http://127.0.0.1:9")
    assert complete("pi") == []
