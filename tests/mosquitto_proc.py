"""A private Mosquitto process for tests that need a broker configured their own way (TLS
and password files, the dynamic-security plugin): a free loopback port, the given
configuration lines, started and waited for, stopped at the end."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

START_S = 10.0  # a hang guard, not a timing


def need(tool: str, hint: str) -> str:
    """The path of ``tool`` (also looked for in sbin); a failure in CI, else a skip."""
    path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/usr/local/sbin")
    if path is None:
        msg = f"{tool} is not installed ({hint})"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def mosquitto(d: Path, port: int, conf: list[str]) -> Iterator[subprocess.Popen[bytes]]:
    """Run mosquitto with ``conf`` (its listener on ``port``) writing its log to
    ``d/mosquitto.log``; yields the process once the port accepts connections."""
    binary = need("mosquitto", "apt-get install mosquitto mosquitto-clients")
    lines = [*conf, "persistence false", "log_dest stderr"]
    if os.geteuid() == 0:
        lines.append("user root")  # keep reading and writing the files in d
    (d / "mosquitto.conf").write_text("\n".join(lines) + "\n")
    with (d / "mosquitto.log").open("w") as log:
        proc = subprocess.Popen(
            [binary, "-c", str(d / "mosquitto.conf")], stdout=log, stderr=subprocess.STDOUT
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
            yield proc
        finally:
            proc.terminate()
            proc.wait(10)
