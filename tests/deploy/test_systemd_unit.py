"""deploy/systemd/wrale-central.service: `systemd-analyze verify` accepts it (with ExecStart
pointing at this venv's `wrale`, as it would at /usr/bin/wrale on a host), and it has the
hardening and restart policy of the device's units in packaging/systemd."""

from __future__ import annotations

import configparser
import shlex
import sys
from pathlib import Path

from tests.deploy.promql import DEPLOY
from tests.deploy.tools import need, run

UNIT = DEPLOY / "systemd" / "wrale-central.service"
WRALE = str(Path(sys.executable).parent / "wrale")


def unit() -> configparser.RawConfigParser:
    """The unit's sections (a key given twice keeps its last value, enough for these)."""
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser


def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    analyze = need("systemd-analyze", "apt-get install systemd")
    text = UNIT.read_text()
    assert "/usr/bin/wrale " in text
    local = tmp_path / UNIT.name
    local.write_text(text.replace("/usr/bin/wrale ", f"{WRALE} "))
    out = run(analyze, "verify", str(local))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "wrale-central.service" not in out.stderr, out.stderr  # no warning about it either


def test_the_unit_runs_the_central_hardened() -> None:
    s = unit()["Service"]
    argv = shlex.split(s["ExecStart"])
    assert argv[:2] == ["/usr/bin/wrale", "central"]
    data_dir = argv[argv.index("--data-dir") + 1]
    assert s["User"] == "wrale"
    assert s["Group"] == "wrale"
    assert s["NoNewPrivileges"] == "yes"
    assert s["ProtectSystem"] == "strict"
    assert s["ReadWritePaths"].split() == [data_dir]
    assert f"/var/lib/{s['StateDirectory']}" == data_dir
    assert s["Restart"] == "on-failure"
    assert s["EnvironmentFile"] == "/etc/wrale/central.env"
    assert s["CapabilityBoundingSet"] == ""
    assert s["RestartPreventExitStatus"] == "2"  # a bad setting: restarting cannot help
    assert unit()["Install"]["WantedBy"] == "multi-user.target"


def test_the_central_accepts_the_units_command_line(tmp_path: Path) -> None:
    """The flags the unit passes exist (`wrale central --help` lists them)."""
    s = unit()["Service"]
    flags = {a for a in shlex.split(s["ExecStart"]) if a.startswith("--")}
    out = run(WRALE, "central", "--help")
    assert out.returncode == 0, out.stderr
    for flag in flags:
        assert flag in out.stdout, flag


def test_the_environment_example_names_real_settings() -> None:
    """Every WRALE_ variable the example file mentions is a setting of `wrale central`."""
    from wrale.shared.central_settings import CentralSettings

    text = (DEPLOY / "systemd" / "central.env.example").read_text()
    names = {line.lstrip("#").split("=", 1)[0] for line in text.splitlines() if "=" in line}
    wrale = {n for n in names if n.startswith("WRALE_")}
    assert wrale
    settings = {f"WRALE_{n.upper()}" for n in CentralSettings.model_fields}
    assert wrale <= settings, wrale - settings
