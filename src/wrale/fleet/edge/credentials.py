"""The device credential (``credentials.json``, mode 0600) and enrollment, which gets it.

``enroll`` trades an enrollment token for the device's own id and secret at
``POST {central}/api/v1/enroll``. httpx is imported only when enrolling, so the running
agent does not carry it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from wrale import __version__
from wrale.fleet.sync.transport.base import require_secure
from wrale.shared.errors import (
    AuthError,
    ConfigError,
    ConflictError,
    InvalidRequestError,
    UnavailableError,
    WraleError,
)

ENROLL_PATH = "/api/v1/enroll"


@dataclass(frozen=True, slots=True)
class Credentials:
    """Who this device is to the central server, and where that server is."""

    central_url: str
    device_id: str
    secret: str = field(repr=False)
    name: str | None = None
    # the MQTT broker authenticates this device (its account: device id + secret), so the
    # hello carries no secret (told by the central at enrollment)
    mqtt_broker_auth: bool = False

    @classmethod
    def load(cls, path: Path) -> Credentials:
        """Read ``path``; ``ConfigError`` saying to enroll when it is missing or broken."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                f"no device credential at {path}: run 'wrale enroll --central URL --token T' first",
                path=str(path),
            ) from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"device credential {path} cannot be read: {exc}") from None
        try:
            return cls(
                central_url=str(raw["central_url"]),
                device_id=str(raw["device_id"]),
                secret=str(raw["secret"]),
                name=None if raw.get("name") is None else str(raw["name"]),
                mqtt_broker_auth=raw.get("mqtt_broker_auth") is True,
            )
        except (KeyError, TypeError):
            raise ConfigError(
                f"device credential {path} lacks central_url, device_id or secret"
            ) from None

    def save(self, path: Path) -> None:
        """Write atomically (temporary file, then rename) with mode 0600."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(asdict(self), f, indent=2)
                f.flush()
                os.fsync(f.fileno())
            tmp.chmod(0o600)
            tmp.replace(path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def _error(status: int, body: Any) -> WraleError:
    err = body.get("error") if isinstance(body, dict) else None
    message = str(err.get("message", "")) if isinstance(err, dict) else ""
    message = message or f"HTTP {status}"
    if status in (401, 403):
        return AuthError(f"the enrollment token was refused: {message}")
    if status == 409:
        return ConflictError(f"enrollment refused: {message}")
    if 400 <= status < 500:
        return InvalidRequestError(f"enrollment refused: {message}")
    return UnavailableError(f"the central server failed to enroll this device: {message}")


async def enroll(
    central_url: str,
    token: str,
    *,
    name: str | None = None,
    model: str | None = None,
    hardware_profile: str | None = None,
    tags: list[str] | None = None,
    capabilities: list[str] | None = None,
    agent_version: str = __version__,
    insecure: bool = False,
    ca_file: Path | None = None,
    timeout_s: float = 15.0,
    transport: Any = None,
) -> Credentials:
    """Enroll at ``central_url`` with ``token``; returns the credential (not yet saved).

    ``AuthError`` for a refused token, ``InvalidRequestError`` for a refused device
    description, ``UnavailableError`` when the server cannot be reached, ``ConfigError``
    for a plain-text URL to another machine without ``insecure``.
    """
    import httpx

    base = central_url.strip().rstrip("/")
    require_secure(base, insecure=insecure)
    spec = {
        "name": name,
        "model": model,
        "hardware_profile": hardware_profile,
        "tags": tags,
        "capabilities": capabilities,
        "agent_version": agent_version,
    }
    body = {"token": token, **{k: v for k, v in spec.items() if v is not None}}
    verify: Any = True
    if ca_file is not None:
        import ssl

        try:
            verify = ssl.create_default_context(cafile=str(ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"CA file {ca_file} cannot be used: {exc}") from None
    try:
        async with httpx.AsyncClient(
            timeout=timeout_s, verify=verify, transport=transport
        ) as client:
            resp = await client.post(base + ENROLL_PATH, json=body)
    except httpx.TransportError as exc:
        raise UnavailableError(f"the central server at {base} cannot be reached: {exc}") from None
    try:
        data = resp.json()
    except ValueError:
        data = None
    if not resp.is_success:
        raise _error(resp.status_code, data)
    if not (
        isinstance(data, dict)
        and isinstance(data.get("device_id"), str)
        and isinstance(data.get("device_secret"), str)
    ):
        raise UnavailableError(f"the central server at {base} sent an unreadable enrollment")
    device = data.get("device")
    given = device.get("name") if isinstance(device, dict) else None
    return Credentials(
        central_url=base,
        device_id=data["device_id"],
        secret=data["device_secret"],
        name=given if isinstance(given, str) else name,
        mqtt_broker_auth=data.get("mqtt_broker_auth") is True,
    )
