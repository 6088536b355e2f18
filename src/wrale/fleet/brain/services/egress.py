"""Outbound connections to addresses a tenant chose (webhooks, chat, SMTP): only public
addresses, unless the operator lists an internal host. The check runs when a channel is
saved and again at connect time, on the very address the connection then uses (no DNS
rebinding); Host and TLS SNI stay the URL's hostname. Must not follow redirects or honour
proxy environment variables."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpcore
import httpx

from wrale.shared.errors import InvalidRequestError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]
RESOLVE_TIMEOUT_S = 5.0

_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT
_PRIVATE: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (
    ipaddress.ip_network("10.0.0.0/8"),
    ipaddress.ip_network("172.16.0.0/12"),
    ipaddress.ip_network("192.168.0.0/16"),
    ipaddress.ip_network("fc00::/7"),
)
_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class EgressRefusedError(InvalidRequestError):
    """The URL's host is, or resolves to, an address webhooks may not reach."""


def address_class(ip: Address) -> str | None:
    """The reason ``ip`` is not a public unicast address, or None when it is."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or (
            ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else None
        )
        if embedded is not None:
            inner = address_class(embedded)
            return f"IPv4-mapped {inner}" if inner else None
    if ip in _METADATA:
        return "link-local (cloud metadata)"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if any(ip in net for net in _PRIVATE if net.version == ip.version):
        return "private"
    if ip in _SHARED:
        return "shared (carrier-grade NAT)"
    if not ip.is_global:
        return "reserved"
    return None


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (the system resolver, off the event loop)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _parse_entry(entry: str) -> tuple[str, int | None]:
    entry = entry.strip().lower()
    if entry.startswith("["):  # [v6] or [v6]:port
        host, _, rest = entry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        return host, int(port)
    return entry, None


@dataclass(frozen=True)
class EgressPolicy:
    """Which hosts outbound requests may reach: public addresses, plus ``allowed_hosts``
    ("host" or "host:port" entries an operator trusts, e.g. an internal chat server)."""

    allowed_hosts: tuple[str, ...] = ()
    resolver: Resolver = system_resolver
    _allowed: frozenset[tuple[str, int | None]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_allowed", frozenset(_parse_entry(h) for h in self.allowed_hosts))

    @classmethod
    def from_settings(cls, settings: Any, resolver: Resolver | None = None) -> EgressPolicy:
        hosts = tuple(getattr(settings, "webhook_allowed_hosts", ()) or ())
        return cls(hosts, resolver or system_resolver)

    def allows(self, host: str, port: int) -> bool:
        host = host.lower().strip("[]")
        return (host, None) in self._allowed or (host, port) in self._allowed

    async def addresses(self, host: str, port: int, field: str = "config.url") -> list[Address]:
        """The addresses ``host`` may be reached at; ``EgressRefusedError`` names the class of
        the first refused one (and the config ``field`` that named the host). A host the
        operator allows is resolved but not checked."""
        host = host.strip("[]")
        try:
            literal: Address | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            found = [literal]
        else:
            async with asyncio.timeout(RESOLVE_TIMEOUT_S):
                found = [
                    ipaddress.ip_address(a.split("%")[0]) for a in await self.resolver(host, port)
                ]
            if not found:
                raise OSError(f"{host} has no address")
        if self.allows(host, port):
            return found
        for ip in found:
            why = address_class(ip)
            if why is not None:
                shown = host if literal is not None else f"{host} ({ip})"
                raise EgressRefusedError(
                    f"{field}: {shown} is a {why} address; notifications go to public "
                    "addresses unless the operator lists the host in webhook_allowed_hosts",
                    field=field,
                )
        return found

    async def check_url(self, url: str) -> None:
        """Refuse ``url`` when its host is, or resolves to, a non-public address. A name
        that does not resolve now is accepted: it is checked again at every connect."""
        u = httpx.URL(url)
        port = u.port or (443 if u.scheme == "https" else 80)
        try:
            await self.addresses(u.host, port)
        except EgressRefusedError:
            raise
        except (OSError, TimeoutError, UnicodeError):
            return

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        """An HTTP client that connects only where this policy allows; no redirects, no
        proxies from the environment."""
        return httpx.AsyncClient(
            transport=PinnedTransport(self),
            follow_redirects=False,
            trust_env=False,
            **kwargs,
        )


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """Resolves and checks the host itself, then connects to the checked address: the
    name is never resolved a second time between the check and the connect."""

    def __init__(self, policy: EgressPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await self._policy.addresses(host, port)
        except EgressRefusedError as exc:
            raise httpcore.ConnectError(exc.message) from None
        except (OSError, TimeoutError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
        last: Exception | None = None
        for ip in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(ip), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        raise httpcore.ConnectError(str(last) if last else f"cannot connect to {host}")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:  # pragma: no cover - never used for webhooks
        raise httpcore.ConnectError("unix sockets are not reachable from webhooks")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with its connection pool on ``_PinnedBackend``."""

    def __init__(self, policy: EgressPolicy) -> None:
        super().__init__(trust_env=False)
        ssl_context = httpx.create_ssl_context(trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=_PinnedBackend(policy),
        )
