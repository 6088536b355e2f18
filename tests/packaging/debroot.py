"""A clean Debian Bookworm root for the package tests: ``debootstrap --variant=minbase``
(plus systemd, as on Raspberry Pi OS) from the mirror apt uses here, cached as a tarball
under ``~/.cache/wrale-tests/`` keyed by suite and architecture, with the .debs apt
fetched kept beside it so that later runs need no network."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

SUITE = "bookworm"
CACHE = Path.home() / ".cache" / "wrale-tests"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
TOOLS = ("debootstrap", "dpkg-deb", "chroot", "unshare", "systemd-analyze", "tar")


def missing_requirements() -> str | None:
    """Why this machine cannot run the package tests (None: it can)."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return f"needs {', '.join(missing)} (apt-get install debootstrap dpkg systemd util-linux)"
    if os.geteuid() != 0:
        return "needs root (debootstrap, chroot and mounts)"
    return None


def apt_mirror(etc_apt: Path = Path("/etc/apt")) -> str:
    """The Debian mirror apt uses here for ``SUITE`` (deb822 ``.sources`` or ``sources.list``)."""
    for f in sorted((etc_apt / "sources.list.d").glob("*.sources")):
        for stanza in f.read_text().split("\n\n"):
            fields = {
                k.strip(): v.strip()
                for k, _, v in (line.partition(":") for line in stanza.splitlines())
                if not k.startswith("#") and v
            }
            if SUITE in fields.get("Suites", "").split() and "main" in fields.get("Components", ""):
                return fields.get("URIs", DEFAULT_MIRROR).split()[0]
    lst = etc_apt / "sources.list"
    if lst.exists():
        m = re.search(rf"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+{SUITE}\s", lst.read_text(), re.M)
        if m:
            return m.group(1)
    return DEFAULT_MIRROR


def _arch() -> str:
    return subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()


def tarball() -> Path:
    return CACHE / f"debootstrap-{SUITE}-minbase-systemd-{_arch()}.tar"


def archives() -> Path:
    return CACHE / f"apt-archives-{SUITE}-{_arch()}"


def make_root(dest: Path) -> float:
    """A fresh root in ``dest`` (from the cache, made first if absent); returns seconds."""
    started = time.monotonic()
    cached = tarball()
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".lock").open("w") as lock:
        # xdist workers wanting a root at once: one builds the cache, the others wait
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not cached.exists():
            _bootstrap(dest, cached)
    dest.mkdir(parents=True)
    subprocess.run(["tar", "-C", str(dest), "--numeric-owner", "-xpf", str(cached)], check=True)
    if archives().is_dir():
        for deb in archives().glob("*.deb"):
            shutil.copy2(deb, dest / "var/cache/apt/archives" / deb.name)
    return time.monotonic() - started


def _bootstrap(dest: Path, cached: Path) -> None:
    """debootstrap a root beside ``dest`` and keep it as the ``cached`` tarball."""
    build = dest.with_name(dest.name + ".bootstrap")
    subprocess.run(
        [
            "debootstrap",
            "--variant=minbase",
            "--include=systemd",
            SUITE,
            str(build),
            apt_mirror(),
        ],
        check=True,
        capture_output=True,
        timeout=1800,
    )
    partial = cached.with_suffix(".partial")
    subprocess.run(
        ["tar", "-C", str(build), "--numeric-owner", "-cf", str(partial), "."], check=True
    )
    partial.replace(cached)
    shutil.rmtree(build)


def keep_archives(root: Path) -> None:
    """Keep the .debs apt fetched into ``root`` for the next run."""
    archives().mkdir(parents=True, exist_ok=True)
    for deb in (root / "var/cache/apt/archives").glob("*.deb"):
        target = archives() / deb.name
        if not target.exists():  # whole or absent: another worker may be copying from it
            partial = target.with_name(f".{deb.name}.{os.getpid()}")
            shutil.copy2(deb, partial)
            partial.replace(target)


def in_root(root: Path, script: str) -> list[str]:
    """argv running ``script`` (sh) chrooted in ``root``, with /dev and /proc mounted in a
    private mount namespace (gone with the process: nothing is left mounted)."""
    setup = f"mount --bind /dev {root}/dev && mount -t proc proc {root}/proc && "
    return [
        "unshare",
        "--mount",
        "--fork",
        "--kill-child=SIGTERM",
        "sh",
        "-c",
        setup + f'exec chroot {root} /bin/sh -c "$0"',
        script,
    ]


def run_in(root: Path, script: str, timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}
    return subprocess.run(
        in_root(root, script),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={**env, "DEBIAN_FRONTEND": "noninteractive"},
        check=False,
    )
