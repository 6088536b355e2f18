"""A private Mosquitto with the dynamic-security plugin, for tests: no anonymous clients,
accounts and ACLs only through ``$CONTROL/dynamic-security/v1`` with the admin account made
by ``mosquitto_ctrl dynsec init``. Started on a free loopback port, stopped at the end.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.mosquitto_proc import free_port, mosquitto, need

PLUGIN = Path("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so")
ADMIN_USER = "broker-admin"
ADMIN_PASSWORD = "broker-admin-password"  # a throwaway test broker's


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
    hint = "Debian's mosquitto and mosquitto-clients, for the broker-account tests"
    path = need(tool, hint)
    if not PLUGIN.exists():
        need(str(PLUGIN), hint)  # fails in CI, skips elsewhere
    return path


@contextmanager
def dynsec_broker(d: Path) -> Iterator[DynsecBroker]:
    ctrl = _need("mosquitto_ctrl")
    d.mkdir(parents=True, exist_ok=True)
    config = d / "dynamic-security.json"
    subprocess.run(
        [ctrl, "dynsec", "init", str(config), ADMIN_USER, ADMIN_PASSWORD],
        check=True,
        capture_output=True,
        timeout=60,
    )
    port = free_port()
    conf = [
        "per_listener_settings false",
        f"listener {port} 127.0.0.1",
        "allow_anonymous false",
        f"plugin {PLUGIN}",
        f"plugin_opt_config_file {config}",
    ]
    with mosquitto(d, port, conf) as proc:
        yield DynsecBroker(port, d, proc)
