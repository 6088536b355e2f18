"""A private Mosquitto for tests, locked down the way a production fleet's broker is: TLS
only (a CA made here with openssl), no anonymous clients, a password per device and the
central server, and the ACL ``pattern readwrite <root>/%u/#`` so a device reaches only its
own topics. Started on a free loopback port; ``add_user`` provisions a device and reloads.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import mqtt_or_skip
from tests.mosquitto_proc import free_port, mosquitto, need

CENTRAL_USER = "central"
CENTRAL_PASSWORD = "central-password"


@dataclass
class SecureBroker:
    port: int
    ca_file: Path
    dir: Path
    proc: subprocess.Popen[bytes]

    def url(self, root: str = "wrale/v1", *, central: bool = False) -> str:
        """``mqtts://localhost:PORT/root`` (with the central account's credentials)."""
        auth = f"{CENTRAL_USER}:{CENTRAL_PASSWORD}@" if central else ""
        query = f"?ca_file={self.ca_file}" if central else ""
        return f"mqtts://{auth}localhost:{self.port}/{root}{query}"

    def add_user(self, username: str, password: str) -> None:
        """Provision a device's credential (as an operator's tooling would) and reload."""
        _run(_need("mosquitto_passwd"), "-b", "passwd", username, password, cwd=self.dir)
        self.proc.send_signal(signal.SIGHUP)


def _need(tool: str) -> str:
    return need(tool, "apt-get install mosquitto mosquitto-clients openssl")


def _run(*cmd: str, cwd: Path) -> None:
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, timeout=60)


def _certificates(d: Path) -> None:
    openssl = _need("openssl")
    days = ["-days", "2"]
    _run(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", *days, "-keyout", "ca.key",
         "-out", "ca.crt", "-subj", "/CN=wrale test CA", cwd=d)  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _run(openssl, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
         "-out", "server.csr", "-subj", "/CN=localhost", cwd=d)  # fmt: skip
    _run(openssl, "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
         "-CAcreateserial", *days, "-out", "server.crt", "-extfile", "san.ext", cwd=d)  # fmt: skip
    (d / "server.key").chmod(0o600)


@contextmanager
def secure_broker(d: Path, users: dict[str, str] | None = None) -> Iterator[SecureBroker]:
    mqtt_or_skip()
    passwd = _need("mosquitto_passwd")
    d.mkdir(parents=True, exist_ok=True)
    _certificates(d)
    _run(passwd, "-b", "-c", "passwd", CENTRAL_USER, CENTRAL_PASSWORD, cwd=d)
    for name, password in (users or {}).items():
        _run(passwd, "-b", "passwd", name, password, cwd=d)
    (d / "passwd").chmod(0o600)
    (d / "acl").write_text(
        f"user {CENTRAL_USER}\ntopic readwrite wrale/v1/#\n\npattern readwrite wrale/v1/%u/#\n"
    )
    port = free_port()
    conf = [
        "per_listener_settings false",
        f"listener {port} 127.0.0.1",
        f"cafile {d / 'ca.crt'}",
        f"certfile {d / 'server.crt'}",
        f"keyfile {d / 'server.key'}",
        "allow_anonymous false",
        f"password_file {d / 'passwd'}",
        f"acl_file {d / 'acl'}",
    ]
    with mosquitto(d, port, conf) as proc:
        yield SecureBroker(port, d / "ca.crt", d, proc)
