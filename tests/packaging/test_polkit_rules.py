"""The packaged polkit rules (``packaging/polkit/60-wrale.rules``), evaluated as polkitd
does: each rule in order, the first that answers decides. They run in node with the
parts of polkit's JavaScript API they use (``polkit.addRule``, ``polkit.Result``,
``action.id``, ``action.lookup``, ``subject.user``); the details are those systemd passes
for ``org.freedesktop.systemd1.manage-units`` (``unit``, ``verb``).

Needs node (the dashboard's build uses it): in CI (``CI`` set) its absence fails the
test; elsewhere it skips saying what to install.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

RULES = Path(__file__).resolve().parents[2] / "packaging/polkit/60-wrale.rules"
MANAGE_UNITS = "org.freedesktop.systemd1.manage-units"

# node: the rules file run in a sandbox that offers what polkitd offers a rule
HARNESS = r"""
const vm = require("vm");
const fs = require("fs");
const [rulesPath, casesJson] = process.argv.slice(1);
const rules = [];
const polkit = {
  Result: { YES: "yes", NO: "no", AUTH_ADMIN: "auth_admin", AUTH_SELF: "auth_self",
            AUTH_ADMIN_KEEP: "auth_admin_keep", AUTH_SELF_KEEP: "auth_self_keep",
            NOT_HANDLED: null },
  addRule: (fn) => rules.push(fn),
  addAdminRule: () => {},
  log: () => {},
};
vm.runInNewContext(fs.readFileSync(rulesPath, "utf8"), { polkit }, { filename: rulesPath });
const out = JSON.parse(casesJson).map(([user, id, details]) => {
  const action = { id, lookup: (key) => details[key] };
  const subject = { user, isInGroup: () => false, local: true, active: true };
  for (const rule of rules) {
    const r = rule(action, subject);
    if (r !== undefined && r !== null) return r;
  }
  return null;
});
process.stdout.write(JSON.stringify(out));
"""


def node() -> str:
    found = shutil.which("node") or shutil.which("nodejs")
    if found is not None:
        return found
    why = "needs node (apt-get install nodejs)"
    if os.environ.get("CI"):
        pytest.fail(f"the polkit rules test {why}")
    pytest.skip(f"the polkit rules test {why}")


def decide(*cases: tuple[str, str, dict[str, Any]]) -> list[str | None]:
    """polkit's answer to each (user, action id, details); None: no rule answers."""
    out = subprocess.run(
        [node(), "-e", HARNESS, str(RULES), json.dumps(cases)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    answers: list[str | None] = json.loads(out.stdout)
    return answers


def units(user: str, unit: str, *verbs: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [(user, MANAGE_UNITS, {"unit": unit, "verb": v}) for v in verbs]


def test_wrale_starts_caps_and_stops_its_job_scopes() -> None:
    """``systemd-run --scope --unit wrale-job-<placement>`` (start), ``systemctl
    set-property --runtime`` and ``systemctl stop``; the probe scope too."""
    cases = [
        *units("wrale", "wrale-job-p_01JABCDEF.scope", "start", "set-property", "stop"),
        *units("wrale", "wrale-job-probe-4242.scope", "start"),
        *units("wrale", "wrale-job-a.b-c_d.scope", "stop"),
    ]
    assert decide(*cases) == ["yes"] * len(cases)


@pytest.mark.parametrize(
    "unit",
    [
        "ssh.service",
        "wrale-device.service",
        "wrale-metald.service",
        "wrale-job-x.service",  # a service runs what its unit says: never
        "wrale-job-.scope",
        "wrale-job-x.scope.d",
        "user-1000.slice",
        "wrale-job-x/y.scope",
        f"wrale-job-{'x' * 101}.scope",  # longer than a placement id
        "xwrale-job-x.scope",
    ],
)
def test_wrale_may_not_touch_other_units(unit: str) -> None:
    assert decide(*units("wrale", unit, "start", "stop", "set-property")) == [None] * 3


def test_only_the_verbs_the_runner_uses() -> None:
    verbs = ("restart", "reload", "kill", "reset-failed", "enable", "freeze", "clean")
    assert decide(*units("wrale", "wrale-job-p1.scope", *verbs)) == [None] * len(verbs)


def test_only_the_wrale_user() -> None:
    cases = [
        *units("pi", "wrale-job-p1.scope", "start"),
        *units("nobody", "wrale-job-p1.scope", "set-property"),
        ("wrale", MANAGE_UNITS, {}),  # no details: no answer
        ("wrale", "org.freedesktop.systemd1.manage-unit-files", {"unit": "wrale-job-p1.scope"}),
    ]
    assert decide(*cases) == [None] * len(cases)


def test_the_reboot_rule_still_answers() -> None:
    reboot: tuple[str, str, dict[str, Any]] = ("wrale", "org.freedesktop.login1.reboot", {})
    assert decide(reboot, ("pi", "org.freedesktop.login1.reboot", {})) == ["yes", None]
