"""The compose file and the image (deploy/): `docker compose config` (or Debian's
`docker-compose config`) accepts the compose file, every file it mounts exists, the services
wait for what they need (health checks, depends_on conditions), HAProxy's config passes
`haproxy -c`, the Dockerfile copies the same dashboard assets as `make ui-assets`, and —
only where a Docker daemon answers — the image builds and serves /healthz."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml  # type: ignore[import-untyped]  # no PyYAML stubs installed

from tests.deploy.promql import DEPLOY
from tests.deploy.tools import need, run

REPO = DEPLOY.parent
COMPOSE = DEPLOY / "docker-compose.yml"


def compose_command() -> list[str]:
    """`docker compose` (the v2 plugin) or `docker-compose` (Debian's), else skip."""
    docker = shutil.which("docker")
    if docker and run(docker, "compose", "version").returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy:
        return [legacy]
    msg = "neither `docker compose` nor `docker-compose` is installed"
    msg += " (apt-get install docker-compose)"
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


def compose_config(**env: str) -> subprocess.CompletedProcess[str]:
    cmd = compose_command()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("WRALE_", "GRAFANA_"))}
    return subprocess.run(
        [*cmd, "-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
        cwd=DEPLOY,
        env={**clean, **env},
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    """The compose file as the compose tool resolves it (anchors, defaults, paths)."""
    out = compose_config()
    assert out.returncode == 0, out.stderr
    doc: dict[str, Any] = yaml.safe_load(out.stdout)
    return doc


def test_compose_config_is_valid(resolved: dict[str, Any]) -> None:
    assert set(resolved["services"]) == {
        "postgres",
        "mosquitto",
        "init",
        "central",
        "haproxy",
        "prometheus",
        "grafana",
        "metald-sim",
    }


def test_replicas_and_settings_come_from_the_environment() -> None:
    out = compose_config(WRALE_REPLICAS="3", WRALE_ADMIN_PASSWORD="s3cret-first-login")
    assert out.returncode == 0, out.stderr
    central = yaml.safe_load(out.stdout)["services"]["central"]
    assert central["deploy"]["replicas"] == 3
    assert central["environment"]["WRALE_ADMIN_PASSWORD"] == "s3cret-first-login"
    assert central["environment"]["WRALE_DATABASE_URL"].startswith("postgresql+asyncpg://")


def test_every_mounted_file_exists(resolved: dict[str, Any]) -> None:
    mounted = 0
    for name, service in resolved["services"].items():
        for volume in service.get("volumes", []):
            source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
            if source.startswith("/"):  # a bind mount (named volumes have bare names)
                assert Path(source).exists(), f"{name} mounts a missing {source}"
                mounted += 1
    assert mounted >= 8


def test_services_wait_for_what_they_need(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    assert services["central"]["depends_on"] == {
        "init": {"condition": "service_completed_successfully"},
        "postgres": {"condition": "service_healthy"},
        "mosquitto": {"condition": "service_healthy"},
    }
    assert services["init"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["haproxy"]["depends_on"] == {"central": {"condition": "service_healthy"}}
    assert services["grafana"]["depends_on"] == {"prometheus": {"condition": "service_healthy"}}
    # the central's health check is the image's own HEALTHCHECK; every other long-running
    # service has one in the compose file
    for name in ("postgres", "mosquitto", "haproxy", "prometheus", "grafana", "metald-sim"):
        assert services[name]["healthcheck"]["test"], name
    assert "HEALTHCHECK" in (DEPLOY / "Dockerfile").read_text()


def test_replicas_trust_forwarded_headers_from_haproxy_only(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    haproxy_ip = services["haproxy"]["networks"]["wrale"]["ipv4_address"]
    assert services["central"]["environment"]["FORWARDED_ALLOW_IPS"] == haproxy_ip
    assert "ports" not in services["central"]  # reached through HAProxy only
    assert "ports" not in services["postgres"]
    assert "ports" not in services["mosquitto"]


def test_haproxy_config_is_valid() -> None:
    haproxy = need("haproxy", "apt-get install haproxy")
    out = run(haproxy, "-c", "-f", str(DEPLOY / "haproxy" / "haproxy.cfg"))
    assert out.returncode == 0, out.stdout + out.stderr


def haproxy_sections(path: Path) -> dict[str, list[str]]:
    """Each section's directives (comments and blank lines dropped), by its header."""
    sections: dict[str, list[str]] = {}
    current: list[str] = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if not raw[0].isspace():
            current = sections.setdefault(line, [])
        else:
            current.append(" ".join(line.split()))
    return sections


def test_haproxy_config_keeps_the_shipped_settings() -> None:
    """The compose file's HAProxy differs from packaging/haproxy/wrale-central.cfg only in
    how it finds the replicas (DNS) and its own health and metrics frontend."""
    shipped = haproxy_sections(REPO / "packaging" / "haproxy" / "wrale-central.cfg")
    ours = haproxy_sections(DEPLOY / "haproxy" / "haproxy.cfg")
    for section in ("global", "defaults", "frontend wrale"):
        assert ours[section] == shipped[section], section

    def balancing(lines: list[str]) -> list[str]:
        return [x for x in lines if not x.startswith(("server ", "server-template "))]

    assert balancing(ours["backend central"]) == balancing(shipped["backend central"])
    (template,) = [x for x in ours["backend central"] if x.startswith("server-template ")]
    assert "central:8080" in template
    assert "resolvers docker" in template
    assert set(ours) - set(shipped) == {"resolvers docker", "frontend stats"}


def test_the_image_copies_the_assets_make_installs() -> None:
    """The Dockerfile's npm stage copies the same files as the Makefile's ui-assets target."""

    def assets(text: str) -> list[str]:
        return sorted(set(re.findall(r"node_modules/[\w./-]+", text)))

    makefile = (REPO / "Makefile").read_text()
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert assets(makefile)
    assert assets(dockerfile) == assets(makefile)


def test_the_build_context_holds_what_the_image_needs() -> None:
    """.dockerignore keeps everything out but the files the Dockerfile copies."""
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copied = set()
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            copied |= set(line.split()[1:-1])
    assert copied == allowed


# ----------------------------------------------------------------------------- the image


def docker_or_skip() -> str:
    docker = shutil.which("docker")
    if docker is None or run(docker, "info", timeout=20).returncode != 0:
        pytest.skip("no Docker daemon answers `docker info`: the image is not built here")
    return docker


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    docker = docker_or_skip()
    tag = f"wrale-central:test-{os.getpid()}"
    out = run(docker, "build", "-f", str(DEPLOY / "Dockerfile"), "-t", tag, str(REPO), timeout=1800)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    try:
        yield tag
    finally:
        run(docker, "rmi", "-f", tag)


@pytest.mark.slow
def test_the_image_runs_as_a_user_and_serves_health(image: str) -> None:
    docker = docker_or_skip()
    user = run(docker, "run", "--rm", "--entrypoint", "id", image, "-u")
    assert user.returncode == 0, user.stderr
    assert user.stdout.strip() != "0"
    started = run(
        docker,
        "run",
        "-d",
        "-p",
        "127.0.0.1::8080",
        "-e",
        "WRALE_ADMIN_PASSWORD=first-login-pw",
        image,
    )
    assert started.returncode == 0, started.stderr
    cid = started.stdout.strip()
    try:
        port = run(docker, "port", cid, "8080/tcp").stdout.strip().rsplit(":", 1)[1]
        deadline = time.monotonic() + 120
        health = ""
        while time.monotonic() < deadline and health != "healthy":
            time.sleep(1)
            health = run(docker, "inspect", "-f", "{{.State.Health.Status}}", cid).stdout.strip()
        assert health == "healthy", run(docker, "logs", cid).stdout
        r = httpx.post(
            f"http://127.0.0.1:{port}/api/v1/auth/login",
            json={"username": "admin", "password": "first-login-pw"},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        page = httpx.get(f"http://127.0.0.1:{port}/static/vendor/htmx.min.js", timeout=10)
        assert page.status_code == 200
    finally:
        run(docker, "rm", "-f", cid)


def test_the_init_job_makes_one_key_and_migrates(resolved: dict[str, Any], tmp_path: Path) -> None:
    """The init service's command, run here with the volume's path mapped to a folder and
    this venv's Python (SQLite instead of the compose file's PostgreSQL): it writes the
    replicas' shared signing key once (0600), keeps it on the next run, and migrates."""
    (command,) = resolved["services"]["init"]["command"]
    bindir = Path(sys.executable).parent
    local = command.replace("/var/lib/wrale", str(tmp_path)).replace(
        "python -c", f"{bindir}/python -c"
    )
    local = local.replace("wrale central migrate", f"{bindir}/wrale central migrate")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WRALE_")}
    env = {**clean, "WRALE_DATA_DIR": str(tmp_path)}
    first = subprocess.run(
        ["/bin/sh", "-c", local], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert first.returncode == 0, first.stderr
    assert "database schema at revision" in first.stdout
    key = tmp_path / "secret.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert len(key.read_text()) >= 32
    before = key.read_text()
    again = subprocess.run(
        ["/bin/sh", "-c", local], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert again.returncode == 0, again.stderr
    assert key.read_text() == before


def test_mosquitto_starts_with_the_shipped_config(tmp_path: Path) -> None:
    """A real Mosquitto takes deploy/mosquitto/mosquitto.conf (its listener moved to a free
    port, persistence into this test's folder) and accepts a client without an account, as
    the replicas' bridge connects on the compose network."""
    from tests.mosquitto_proc import free_port, mosquitto

    port = free_port()
    lines = []
    for line in (DEPLOY / "mosquitto" / "mosquitto.conf").read_text().splitlines():
        if line.startswith("listener "):
            line = f"listener {port} 127.0.0.1"
        elif line.startswith("persistence_location "):
            line = f"persistence_location {tmp_path}/"
        elif line.startswith("log_dest "):
            continue  # the helper logs to its file
        lines.append(line)
    assert any(x.startswith("listener ") for x in lines)
    with mosquitto(tmp_path, port, lines):
        sub = need("mosquitto_sub", "apt-get install mosquitto-clients")
        out = run(sub, "-h", "127.0.0.1", "-p", str(port), "-t", "$SYS/broker/version", "-C", "1")
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("mosquitto version")
