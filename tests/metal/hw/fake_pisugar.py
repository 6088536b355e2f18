"""A stand-in for pisugar-server's Unix socket, answering like the real server.

Shape from PiSugar/pisugar-power-manager-rs: ``pisugar-server/src/stream.rs`` (non-strict
mode: requests split on lines, one answer line each, ``\\n``-ended, button taps such as
``single`` written on the same stream) and ``src/cmds.rs`` (``Response``: ``<cmd>: <value>``,
Rust ``f32``/``bool`` formatting; a failing getter answers ``<cmd>: I2C not connected``;
an unknown subcommand answers clap's multi-line error without the ``<cmd>:`` prefix).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path


class FakePiSugarServer:
    """Serves ``answers`` (command name -> value text, ``None``: unknown to this version)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.answers: dict[str, str | None] = {
            "battery": "87.5",
            "battery_v": "4.0375",
            "battery_charging": "true",
            "battery_power_plugged": "true",
        }
        self.tap_event: str | None = None  # written before the answers, as a tap would be
        self.silent = False  # accept and read, answer nothing (a wedged server)
        self.requests: list[str] = []
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(4)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()
        self._thread.join(timeout=2)

    def _serve(self) -> None:
        self._server.settimeout(0.05)
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                self._session(conn)

    def _session(self, conn: socket.socket) -> None:
        conn.settimeout(0.5)
        try:
            data = conn.recv(4096)
        except OSError:
            return
        out = ""
        if self.tap_event:
            out += f"{self.tap_event}\n"
        for request in data.decode().splitlines():
            if not request:
                continue
            self.requests.append(request)
            out += self._answer(request)
        if self.silent:
            self._stop.wait(1.0)
            return
        with contextlib.suppress(OSError):
            conn.sendall(out.encode())
            conn.recv(1)  # hold the session open until the client hangs up

    def _answer(self, request: str) -> str:
        verb, _, name = request.partition(" ")
        value = self.answers.get(name) if verb == "get" else None
        if value is None:
            return (
                f"error: unrecognized subcommand '{name}'\n\nUsage: get <COMMAND>\n\n"
                "For more information, try '--help'.\n"
                "Hint: use 'help' to see all available commands\n"
            )
        return f"{name}: {value}\n"
