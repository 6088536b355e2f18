"""A private Mosquitto with the dynamic-security plugin, for tests: no anonymous clients,
accounts and ACLs only through ``$CONTROL/dynamic-security/v1`` with the admin account made
by ``mosquitto_ctrl dynsec init``. Started on a free loopback port, stopped at the end.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

PLUGIN = Path("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so")
ADMIN_USER = "broker-admin"
ADMIN_PASSWORD = "broker-admin-password"  # a throwaway test broker's
START_S = 10.0  # a hang guard, not a timing


@dataclass
class DynsecBroker:
    port: int
    dir: Path
    proc: subprocess.Popen[bytes]

    def url(self, user: str | None = None, password: str | None = None) -> str:
        auth = f"{user}:{password}@" if user else ""
        return f"mqtt://{auth}127.0.0.1:{self.port}/wrale/v1"

    @property
    def log(self) -> str:
        return (self.dir / "mosquitto.log").read_text(errors="replace")


def _need(tool: str) -> str:
    path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/usr/local/sbin")
    if path is None or not PLUGIN.exists():
        msg = (
            f"{tool} or {PLUGIN} is missing: install Debian's mosquitto and mosquitto-clients "
            "(apt-get install mosquitto mosquitto-clients) to run the broker-account tests"
        )
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@contextmanager
def dynsec_broker(d: Path) -> Iterator[DynsecBroker]:
    mosquitto, ctrl = _need("mosquitto"), _need("mosquitto_ctrl")
    d.mkdir(parents=True, exist_ok=True)
    config = d / "dynamic-security.json"
    subprocess.run(
        [ctrl, "dynsec", "init", str(config), ADMIN_USER, ADMIN_PASSWORD],
        check=True,
        capture_output=True,
        timeout=60,
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = [
        "per_listener_settings false",
        f"listener {port} 127.0.0.1",
        "allow_anonymous false",
        f"plugin {PLUGIN}",
        f"plugin_opt_config_file {config}",
        "persistence false",
        "log_dest stderr",
    ]
    if os.geteuid() == 0:
        conf.append("user root")  # keep writing the plugin's file in tmp_path
    (d / "mosquitto.conf").write_text("\n".join(conf) + "\n")
    with (d / "mosquitto.log").open("w") as log:
        proc = subprocess.Popen(
            [mosquitto, "-c", str(d / "mosquitto.conf")], stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + START_S
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(f"mosquitto did not start: {(d / 'mosquitto.log').read_text()}")
                    time.sleep(0.05)
            yield DynsecBroker(port, d, proc)
        finally:
            proc.terminate()
            proc.wait(10)
