"""`make package` for real: build the amd64 .deb, install it with ``dpkg -i`` + ``apt-get
-f install`` into a clean Debian Bookworm root, and run it there — ``wrale --version``,
``wrale metald --help``, and metald itself on the simulated board as the wrale user,
answering ``/healthz`` — then check the layout (user, groups, 0600 secrets) and verify
each systemd unit with ``systemd-analyze verify`` against that root.

Needs root, debootstrap and systemd-analyze: in CI (``CI`` set) their absence fails the
test; elsewhere it skips saying what to install (DESIGN §7).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.packaging import debroot

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
UNITS = ("wrale-metald.service", "wrale-device.service", "wrale-enroll.service")


@dataclass
class Installed:
    root: Path
    deb: Path
    build_s: float
    root_s: float
    install_s: float


def require_tools() -> None:
    reason = debroot.missing_requirements()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"the package test {reason}")
    pytest.skip(f"the package test {reason}")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    require_tools()
    tmp = tmp_path_factory.mktemp("deb")
    started = time.monotonic()
    out = subprocess.run(
        [str(REPO / "packaging/build-deb.sh")],
        cwd=REPO,
        env={**os.environ, "ARCH": "amd64", "OUT": str(tmp / "dist"), "PYTHON": _python()},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    build_s = time.monotonic() - started
    (deb,) = (tmp / "dist").glob("wrale-fleet_*_amd64.deb")
    root = tmp / "root"
    root_s = debroot.make_root(root)
    started = time.monotonic()
    target = root / "tmp" / deb.name
    target.write_bytes(deb.read_bytes())
    first = debroot.run_in(root, f"dpkg -i /tmp/{deb.name}")
    assert "depends on python3" in first.stdout + first.stderr  # not in the clean root
    fix = debroot.run_in(root, "apt-get -f install -y -q -o Dpkg::Use-Pty=0")
    assert fix.returncode == 0, fix.stdout + fix.stderr
    install_s = time.monotonic() - started
    debroot.keep_archives(root)
    print(f"package build {build_s:.1f} s, root {root_s:.1f} s, install {install_s:.1f} s")
    yield Installed(root, deb, build_s, root_s, install_s)
    subprocess.run(["rm", "-rf", str(root)], check=False)


def _python() -> str:
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else "python3"


def test_wrale_runs_in_the_clean_root(installed: Installed) -> None:
    out = debroot.run_in(installed.root, "dpkg -s wrale-fleet && wrale --version")
    assert out.returncode == 0, out.stderr
    assert "Status: install ok installed" in out.stdout
    assert out.stdout.rstrip().endswith("wrale 0.1.0")
    helped = debroot.run_in(installed.root, "wrale metald --help")
    assert helped.returncode == 0, helped.stderr
    assert "--release-hardware" in helped.stdout
    # a device install: the admin CLI says which extra it needs, it does not crash
    admin = debroot.run_in(installed.root, "wrale devices list")
    assert admin.returncode == 2
    assert "wrale-fleet[cli]" in admin.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_metald_serves_from_the_package_as_the_wrale_user(installed: Installed) -> None:
    port = free_port()
    script = (
        "exec setpriv --reuid=wrale --regid=wrale --init-groups "
        f"wrale metald --backend sim --dev --data-dir /tmp/metald --listen 127.0.0.1:{port}"
    )
    proc = subprocess.Popen(
        debroot.in_root(installed.root, script),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: SIGTERM reaches metald itself
    )
    try:
        deadline = time.monotonic() + 60
        body: dict[str, object] = {}
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            except httpx.TransportError:
                time.sleep(0.2)
                continue
            body = r.json()
            if r.status_code == 200:
                break
            time.sleep(0.2)
        assert body.get("status") == "ok", (body, proc.poll())
        assert body["backend"] == "sim"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # setpriv's new uid drops unshare's kill-child
        output = proc.communicate(timeout=30)[0]
    assert "Traceback" not in output, output
    owner = debroot.run_in(installed.root, "stat -c %U /tmp/metald/metald.db")
    assert owner.stdout.strip() == "wrale"


def test_the_layout_a_board_expects(installed: Installed) -> None:
    script = (
        "id wrale; stat -c '%a %U %G' /etc/wrale/secrets.env /etc/wrale /var/lib/wrale; "
        "grep -c '^WRALE_METAL_API_KEY=.\\{43\\}$' /etc/wrale/secrets.env; "
        "ls /lib/systemd/system/wrale-* /lib/udev/rules.d/60-wrale.rules; "
        "readlink /etc/systemd/system/multi-user.target.wants/wrale-device.service; "
        "head -1 /usr/bin/wrale"
    )
    out = debroot.run_in(installed.root, script)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert all(f"({g})" in lines[0] for g in ("gpio", "i2c", "video")), lines[0]
    assert lines[1:4] == ["600 wrale wrale", "750 root wrale", "750 wrale wrale"]
    assert lines[4] == "1"
    assert lines[5:9] == [f"/lib/systemd/system/{u}" for u in sorted(UNITS)] + [
        "/lib/udev/rules.d/60-wrale.rules"
    ]
    assert lines[9] == "/lib/systemd/system/wrale-device.service"  # enabled on install
    assert lines[-1] == "#!/usr/bin/python3 -IS"


@pytest.mark.parametrize("unit", UNITS)
def test_systemd_analyze_verifies_each_unit(installed: Installed, unit: str) -> None:
    out = subprocess.run(
        ["systemd-analyze", "verify", f"--root={installed.root}", f"/lib/systemd/system/{unit}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr == "", out.stderr


def test_verify_catches_a_unit_whose_binary_is_missing(installed: Installed) -> None:
    """The check above is real: the same unit naming a binary the root lacks fails."""
    unit = installed.root / "etc/systemd/system/wrale-broken.service"
    text = (installed.root / "lib/systemd/system/wrale-metald.service").read_text()
    unit.write_text(text.replace("ExecStart=/usr/bin/wrale ", "ExecStart=/usr/bin/wrale-gone "))
    try:
        inside = "/" + str(unit.relative_to(installed.root))
        out = subprocess.run(
            ["systemd-analyze", "verify", f"--root={installed.root}", inside],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert out.returncode != 0
        assert "wrale-gone" in out.stderr
    finally:
        unit.unlink()


def test_the_udev_rules_run_programs_the_root_has(installed: Installed) -> None:
    """Bookworm's udevadm (252) has no `verify`: at least every RUN program must exist there,
    and each rule must name what it matches."""
    rules = (installed.root / "lib/udev/rules.d/60-wrale.rules").read_text(encoding="utf-8")
    lines = [line for line in rules.splitlines() if line and not line.startswith("#")]
    assert len(lines) == 4
    programs = set()
    for line in lines:
        assert line.startswith('SUBSYSTEM=="'), line
        for run in line.split('RUN+="')[1:]:
            programs.add(run.split()[0])
    assert programs == {"/bin/chgrp", "/bin/chmod"}
    out = debroot.run_in(installed.root, "test -x /bin/chgrp && test -x /bin/chmod && echo ok")
    assert out.stdout.strip() == "ok", out.stderr
