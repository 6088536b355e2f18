"""Who can reach metald's API: plain HTTP only on loopback, TLS (or an explicit, logged
waiver) beyond it, and the connection cap holding under TLS as well."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import httpx
import pytest

from tests.metal.core.server_harness import API_KEY, TIMEOUT_S, running_metald
from tests.metal.core.tls_files import self_signed
from wrale.metal.core.request_parser import HttpLimits
from wrale.shared.config import MetalSettings, is_loopback_host
from wrale.shared.errors import ConfigError


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("192.168.1.20", False),
        ("fe80::1", False),
        ("::ffff:127.0.0.1", False),  # a mapped address is not taken on trust
        ("board.local", False),
        ("127.0.0.1.example.com", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_plain_http_beyond_loopback_needs_tls_or_an_explicit_flag(tmp_path: Path) -> None:
    assert MetalSettings().listen_tls() is None  # the default, 127.0.0.1, is fine
    assert MetalSettings(listen="[::1]:8421").listen_tls() is None
    for listen in ("0.0.0.0:8421", "192.168.1.20:8421", "[::]:8421", "board.local:8421"):
        with pytest.raises(ConfigError, match="without TLS") as info:
            MetalSettings(listen=listen).listen_tls()
        assert "--insecure-listen" in info.value.message
        assert MetalSettings(listen=listen, insecure_listen=True).listen_tls() is None
    cert, key = self_signed(tmp_path)
    ctx = MetalSettings(listen="0.0.0.0:8421", tls_cert_file=cert, tls_key_file=key).listen_tls()
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_tls_settings_are_checked(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    with pytest.raises(ConfigError, match="set both or neither"):
        MetalSettings(tls_cert_file=cert).listen_tls()
    with pytest.raises(ConfigError, match="cannot load"):
        MetalSettings(tls_cert_file=cert, tls_key_file=tmp_path / "missing.key").listen_tls()
    with pytest.raises(ConfigError, match="cannot load"):
        MetalSettings(tls_cert_file=key, tls_key_file=cert).listen_tls()


async def test_the_server_itself_refuses_plain_http_beyond_loopback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with running_metald() as m:
        with pytest.raises(ValueError, match="non-loopback"):
            await m.server.start("0.0.0.0", 0)
    async with running_metald() as m:
        host, port = await m.server.start("0.0.0.0", 0, insecure_listen=True)
        assert host == "0.0.0.0"
        async with httpx.AsyncClient(timeout=TIMEOUT_S) as c:
            assert (await c.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert any("insecure listen" in r.getMessage() for r in warnings)


async def test_tls_api_and_cap(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    tls = MetalSettings(listen="0.0.0.0:1", tls_cert_file=cert, tls_key_file=key).listen_tls()
    assert tls is not None
    limits = HttpLimits(max_connections=2, max_connections_per_client=2)
    async with running_metald(limits=limits) as m:
        await m.server.close()
        m.server.http.tls = tls
        m.server.http._closing.clear()
        _, port = await m.server.start("0.0.0.0", 0)  # TLS: no waiver needed
        url = f"https://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {API_KEY}"}
        verify = ssl.create_default_context(cafile=str(cert))
        async with httpx.AsyncClient(verify=verify, headers=headers, timeout=TIMEOUT_S) as c:
            assert (await c.get(f"{url}/v1/state")).status_code == 200
        async with httpx.AsyncClient(timeout=TIMEOUT_S) as plain:
            with pytest.raises(httpx.TransportError):  # plain HTTP to a TLS port goes nowhere
                await plain.get(f"http://127.0.0.1:{port}/healthz")
        # two idle TLS-less sockets hold both slots; a third is closed before any handshake
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        try:
            client_ctx = ssl.create_default_context(cafile=str(cert))
            refused = asyncio.open_connection("127.0.0.1", port, ssl=client_ctx)
            with pytest.raises((ssl.SSLError, ConnectionError)):
                await asyncio.wait_for(refused, TIMEOUT_S)
            assert m.server.http.requests[("other", 503)] == 1
        finally:
            for _, w in held:
                w.close()
        await m.server.close()
