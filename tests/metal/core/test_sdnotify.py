"""systemd's notification protocol over a real AF_UNIX datagram socket in ``tmp_path`` (and
an abstract one): what ``Notifier`` sends, and that a missing or broken socket never raises.

The socket is the real interface systemd listens on (``sd_notify(3)``: one datagram of
newline-separated ``KEY=value`` lines to ``$NOTIFY_SOCKET``, ``@`` meaning abstract).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from wrale.shared.sdnotify import Notifier, socket_address


class Listener:
    """What systemd does: a bound datagram socket whose messages we read back."""

    def __init__(self, address: str | bytes) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(5.0)

    def messages(self) -> list[dict[str, str]]:
        """Every datagram waiting now, each parsed into its fields."""
        out = []
        self.sock.setblocking(False)
        try:
            while True:
                try:
                    data = self.sock.recv(65536)
                except BlockingIOError:
                    break
                out.append(dict(line.split("=", 1) for line in data.decode().split("\n")))
        finally:
            self.sock.settimeout(5.0)
        return out

    def next(self) -> dict[str, str]:
        data = self.sock.recv(65536)
        return dict(line.split("=", 1) for line in data.decode().split("\n"))


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[Listener, str]]:
    path = tmp_path / "notify.sock"
    lst = Listener(str(path))
    yield lst, str(path)
    lst.sock.close()


def test_ready_status_watchdog_stopping_reach_a_path_socket(
    listener: tuple[Listener, str],
) -> None:
    lst, path = listener
    n = Notifier.from_environ({"NOTIFY_SOCKET": path})
    assert n.enabled
    assert n.ready("sampling every 1 s; API on 127.0.0.1:8421")
    assert lst.next() == {"READY": "1", "STATUS": "sampling every 1 s; API on 127.0.0.1:8421"}
    assert n.watchdog()
    assert lst.next() == {"WATCHDOG": "1"}
    assert n.status("fan: kernel governor")
    assert lst.next() == {"STATUS": "fan: kernel governor"}
    assert n.stopping()
    assert lst.next() == {"STOPPING": "1", "STATUS": "stopping"}
    n.close()


def test_abstract_socket_is_reached_by_its_at_name() -> None:
    name = f"wrale-test-{uuid.uuid4().hex}"
    lst = Listener(b"\0" + name.encode())
    try:
        n = Notifier.from_environ({"NOTIFY_SOCKET": f"@{name}"})
        assert n.address == b"\0" + name.encode()
        assert n.ready("up")
        assert lst.next() == {"READY": "1", "STATUS": "up"}
        n.close()
    finally:
        lst.sock.close()


def test_a_newline_in_a_status_cannot_forge_another_field(
    listener: tuple[Listener, str],
) -> None:
    lst, path = listener
    n = Notifier.from_environ({"NOTIFY_SOCKET": path})
    n.status("board pi-7\nREADY=1")
    assert lst.next() == {"STATUS": "board pi-7 READY=1"}
    n.close()


def test_without_notify_socket_nothing_is_sent() -> None:
    n = Notifier.from_environ({})
    assert not n.enabled
    assert not n.ready("up")
    assert not n.watchdog()
    assert n.watchdog_s is None


@pytest.mark.parametrize("value", ["relative/path", "@", "vsock:2:1234"])
def test_an_address_that_is_not_a_unix_socket_is_refused(value: str) -> None:
    assert socket_address(value) is None
    assert not Notifier.from_environ({"NOTIFY_SOCKET": value}).enabled


def test_a_vanished_socket_is_logged_once_and_never_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "gone.sock"
    n = Notifier.from_environ({"NOTIFY_SOCKET": str(path)})
    for _ in range(3):
        assert not n.watchdog()
    warnings = [r for r in caplog.records if "cannot notify systemd" in r.getMessage()]
    assert len(warnings) == 1
    lst = Listener(str(path))  # systemd is back (e.g. after daemon-reexec)
    try:
        assert n.watchdog()
        assert lst.next() == {"WATCHDOG": "1"}
    finally:
        lst.sock.close()
        n.close()


def test_watchdog_timeout_is_ours_only_for_our_pid() -> None:
    mine = Notifier.from_environ(
        {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}
    )
    assert mine.watchdog_s == 30.0
    unset_pid = Notifier.from_environ({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "5000000"})
    assert unset_pid.watchdog_s == 5.0
    other = Notifier.from_environ(
        {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}
    )
    assert other.watchdog_s is None
    junk = Notifier.from_environ({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "soon"})
    assert junk.watchdog_s is None
