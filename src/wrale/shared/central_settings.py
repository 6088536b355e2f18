"""Settings of ``wrale central`` (pydantic, like the rest of the central server).

Kept apart from ``wrale.shared.config`` so that the device processes, which import that
module, never load pydantic. Loaded with ``wrale.shared.config.load_settings``.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any, ClassVar, Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from wrale.shared.config import describe
from wrale.shared.errors import ConfigError


class CentralSettings(BaseModel):
    """Settings of ``wrale central``: env ``WRALE_*`` (e.g. ``WRALE_DATABASE_URL``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    ENV_PREFIX: ClassVar[str] = "WRALE_"

    @classmethod
    def setting_names(cls) -> Collection[str]:
        return cls.model_fields

    @classmethod
    def from_layers(cls, data: dict[str, Any]) -> Self:
        """Validate the merged layers (``load_settings``); ``ConfigError`` names each bad one."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            found = [
                {"field": ".".join(str(p) for p in err["loc"]), "problem": err["msg"]}
                for err in exc.errors(include_url=False)
            ]
            raise ConfigError(describe(found, cls.ENV_PREFIX), errors=found) from None

    database_url: str = "sqlite+aiosqlite:///./wrale-data/central.db"
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    dev: bool = False
    data_dir: Path = Path("./wrale-data")
    secret_key: SecretStr | None = Field(
        default=None, description="signs access tokens; every replica needs the same one"
    )
    admin_password: SecretStr | None = None
    access_token_ttl_s: int = Field(default=900, ge=60, le=86_400)
    refresh_token_ttl_s: int = Field(default=14 * 86_400, ge=3600, le=365 * 86_400)
    # login back-off: per address+username after login_max_failures, per address after
    # login_address_max_failures; login_lockout_s doubling per failure up to the maximum
    login_max_failures: int = Field(default=5, ge=1, le=1000)
    login_address_max_failures: int = Field(default=50, ge=1, le=100_000)
    login_lockout_s: int = Field(default=300, ge=1, le=86_400)
    login_backoff_max_s: int = Field(default=3600, ge=1, le=7 * 86_400)
    audit_retention_days: int = Field(default=365, ge=1, le=36_500)
    telemetry_raw_retention_h: float = Field(default=48.0, gt=0, le=24 * 365)
    telemetry_1m_retention_d: float = Field(default=30.0, gt=0, le=3650)
    telemetry_1h_retention_d: float = Field(default=730.0, gt=0, le=36_500)
    maintenance_interval_s: float = Field(default=30.0, ge=1, le=3600)
    # device channel: a device silent this long is offline; offline this long raises an alert
    offline_after_s: float = Field(default=60.0, ge=1, le=86_400)
    offline_alert_after_s: float = Field(default=600.0, ge=1, le=30 * 86_400)
    channel_heartbeat_s: float = Field(default=15.0, ge=0.5, le=3600, validate_default=True)
    channel_hello_timeout_s: float = Field(default=10.0, ge=0.5, le=300)
    # per-message deflate of what boards send keeps its context between messages (a zlib
    # decoder held per board: ~15 KiB of the central's memory each); off, each message
    # is compressed on its own (~8 % more bytes of telemetry on the boards' links)
    channel_deflate_context: bool = True
    # device WebSockets not yet past their hello, per client address (more are refused)
    channel_max_pending_per_address: int = Field(default=32, ge=1, le=100_000)
    # frames a device session may send per second on average, and in one burst (token
    # bucket); frames over it are dropped and counted, never stalling the server
    channel_frame_rate: float = Field(default=100.0, gt=0, le=100_000)
    channel_frame_burst: int = Field(default=1000, ge=1, le=1_000_000)
    device_events_retention_d: float = Field(default=90.0, gt=0, le=36_500)
    # the dashboard's live stream checks its session again this often (0: before each frame)
    ui_session_recheck_s: float = Field(default=20.0, ge=0, le=300)
    mqtt_url: str | None = None
    # MQTT broker accounts (Mosquitto dynamic security): one account per device, made by
    # the central with the broker's admin account; see docs/device-channel.md
    mqtt_broker_auth: bool = False
    mqtt_admin_username: str | None = None
    mqtt_admin_password: SecretStr | None = None
    # legacy anonymous broker: the hello carries the device secret (default: without
    # broker accounts only)
    mqtt_hello_secret: bool | None = Field(default=None, validate_default=True)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # the address boards and people reach this server at (behind a proxy, the proxy's):
    # the commands the dashboard prints use it instead of the address a browser came by
    public_url: str | None = Field(default=None, max_length=512)
    # webhooks may reach these internal hosts ("host" or "host:port"; env: comma-separated)
    webhook_allowed_hosts: list[str] = Field(default_factory=list, max_length=100)

    @field_validator("webhook_allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [h.strip() for h in value.split(",") if h.strip()]
        return value

    @field_validator("channel_heartbeat_s")
    @classmethod
    def _heartbeat_within_offline(cls, value: float, info: Any) -> float:
        offline = info.data.get("offline_after_s")
        if offline is not None and value * 2 > offline:
            raise ValueError(
                f"must be at most half of offline_after_s ({offline} s), or connected "
                "devices would be marked offline between two heartbeats"
            )
        return value

    @field_validator("mqtt_hello_secret")
    @classmethod
    def _broker_accounts(cls, value: bool | None, info: Any) -> bool:
        if not info.data.get("mqtt_broker_auth"):
            return True if value is None else value
        if not info.data.get("mqtt_admin_username") or not info.data.get("mqtt_admin_password"):
            raise ValueError(
                "mqtt_broker_auth needs the broker's admin account: set "
                "WRALE_MQTT_ADMIN_USERNAME and WRALE_MQTT_ADMIN_PASSWORD"
            )
        return bool(value)

    @field_validator("secret_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None, info: Any) -> SecretStr | None:
        # HS256 keys shorter than the hash are guessable offline from one access token
        too_short = value is not None and len(value.get_secret_value().encode()) < 32
        if too_short and not info.data.get("dev"):
            raise ValueError(
                "must be at least 32 bytes outside development "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
            )
        return value

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("use an http(s) URL, e.g. https://fleet.example.com")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError("use a plain http(s) URL: no user, query or fragment")
        try:
            parts.port  # noqa: B018 - raises on a port that is not a number in range
        except ValueError:
            raise ValueError("the port must be a number from 1 to 65535") from None
        return value.strip().rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _supported(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("use sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DB")
        return value
