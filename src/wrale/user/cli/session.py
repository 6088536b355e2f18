"""The CLI's login: central URL, access and refresh tokens kept in
``$XDG_CONFIG_HOME/wrale/session.json`` (mode 0600), refreshed on a 401. For scripts,
``WRALE_CENTRAL_URL`` and ``WRALE_TOKEN`` (an API token) override the stored login."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from wrale.shared.errors import AuthError, WraleError
from wrale.user.cli.client import ApiError, CentralClient

URL_ENV = "WRALE_CENTRAL_URL"
TOKEN_ENV = "WRALE_TOKEN"  # noqa: S105 - the variable's name, not a secret


@dataclass
class Login:
    central_url: str
    access_token: str
    refresh_token: str | None = None
    username: str | None = None


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "wrale"


def session_path() -> Path:
    return config_dir() / "session.json"


def load() -> Login | None:
    """The stored login, or None when there is none (or it cannot be read)."""
    path = session_path()
    try:
        data = json.loads(path.read_text())
        return Login(
            central_url=str(data["central_url"]),
            access_token=str(data["access_token"]),
            refresh_token=data.get("refresh_token"),
            username=data.get("username"),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save(login: Login) -> Path:
    """Write the login readable by its owner only (0600), replacing the file atomically."""
    path = session_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(asdict(login), f, indent=2)
    tmp.chmod(0o600)
    tmp.replace(path)
    return path


def clear() -> bool:
    """Forget the stored login; True when there was one."""
    try:
        session_path().unlink()
    except FileNotFoundError:
        return False
    return True


def _refresher(login: Login) -> Callable[[CentralClient], str | None]:
    def refresh(client: CentralClient) -> str | None:
        current = load()  # another wrale process may have refreshed it meanwhile
        if (
            current is not None
            and current.central_url == login.central_url
            and current.access_token != client.token
        ):
            login.access_token, login.refresh_token = current.access_token, current.refresh_token
            return login.access_token
        if not login.refresh_token:
            return None
        try:
            tokens = client.request(
                "POST", "/auth/refresh", json={"refresh_token": login.refresh_token}, auth=False
            )
        except ApiError as exc:
            if exc.status in (401, 422):
                raise AuthError("the session has expired: run `wrale login` again") from None
            raise
        login.access_token = tokens["access_token"]
        login.refresh_token = tokens.get("refresh_token", login.refresh_token)
        save(login)
        return login.access_token

    return refresh


def connect(
    central_url: str | None = None, *, transport: httpx.BaseTransport | None = None
) -> CentralClient:
    """A client for the logged-in central (or the one the environment names).

    ``WRALE_TOKEN`` authenticates with an API token (no refresh); otherwise the stored
    login's access token is used and refreshed once when it has expired.
    """
    stored = load()
    url = central_url or os.environ.get(URL_ENV) or (stored.central_url if stored else None)
    if not url:
        raise WraleError(f"no central server: run `wrale login --central URL` or set {URL_ENV}")
    env_token = os.environ.get(TOKEN_ENV)
    if env_token:
        return CentralClient(url, env_token, transport=transport)
    if stored is None or stored.central_url.rstrip("/") != url.rstrip("/"):
        return CentralClient(url, None, transport=transport)
    refresh = _refresher(stored)
    return CentralClient(
        url,
        stored.access_token,
        on_unauthorized=refresh,
        transport=transport,
    )
