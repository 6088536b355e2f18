"""Process settings: defaults < TOML file (``--config``) < ``WRALE_*`` environment < flags.

Each process has one settings model; ``load_settings`` merges the sources and validates
the result, turning any invalid value into a ``ConfigError`` that names the setting (and
its environment variable), so the process stops with a message an operator can act on.

The layering is done here rather than with pydantic-settings: on the board every megabyte
counts, and in metald pydantic-settings added 1.2 MiB of resident memory (measured, see
docs/architecture.md) for what is some forty lines.
"""

from __future__ import annotations

import ipaddress
import json
import os
import ssl
import tomllib
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from wrale.shared.errors import ConfigError
from wrale.shared.policy import PowerPolicy, SecurityPolicy, ThermalPolicy

DEV_API_KEY = "wrale-dev-key"  # accepted only with --dev


class Settings(BaseModel):
    """Base of every process's settings; ``ENV_PREFIX`` names its environment variables."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    ENV_PREFIX: ClassVar[str] = "WRALE_"


S = TypeVar("S", bound=Settings)


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file as a dict; a missing or malformed file is a ConfigError, not a default."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist", path=str(path)) from None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}", path=str(path)) from exc


def read_env(cls: type[Settings], environ: Mapping[str, str]) -> dict[str, Any]:
    """``PREFIX_A__B=v`` as ``{"a": {"b": v}}``, for top-level settings ``cls`` has.

    Values that look like JSON objects or arrays are decoded; the rest stay strings and
    are converted by validation. Other variables under the prefix (a client's URL, say)
    are left alone.
    """
    out: dict[str, Any] = {}
    prefix = cls.ENV_PREFIX.upper()
    for name, raw in environ.items():
        if not name.upper().startswith(prefix):
            continue
        path = name[len(prefix) :].lower().split("__")
        if path[0] not in cls.model_fields:
            continue
        value: Any = raw
        if raw.strip()[:1] in ("{", "["):
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"environment variable {name} is not valid JSON: {exc}") from None
        node = out
        for key in path[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"environment variable {name} clashes with another one")
        node[path[-1]] = value
    return out


def deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``; tables merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def load_settings(
    cls: type[S],
    *,
    config_file: Path | None = None,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> S:
    """Build ``cls`` from its layered sources; raise ``ConfigError`` naming a bad setting."""
    data: dict[str, Any] = read_toml(config_file) if config_file is not None else {}
    data = deep_merge(data, read_env(cls, os.environ if environ is None else environ))
    data = deep_merge(data, {k: v for k, v in (flags or {}).items() if v is not None})
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, cls), errors=exc.errors(include_url=False)) from None


def _describe(exc: ValidationError, cls: type[Settings]) -> str:
    lines = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"]]
        name = ".".join(loc) or "(settings)"
        env = cls.ENV_PREFIX + "__".join(loc).upper()
        lines.append(f"setting '{name}' (env {env}): {err['msg']}")
    return "invalid configuration: " + "; ".join(lines)


# ----------------------------------------------------------------------------- metald


class BackendName(StrEnum):
    AUTO = "auto"
    SIM = "sim"
    LINUX = "linux"


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SimSettings(_Section):
    """The simulated board: its model, environment and how fast its physics runs."""

    speed: float = Field(default=1.0, gt=0, le=3600, description="simulated seconds per second")
    seed: int | None = None
    model: str = "Raspberry Pi 5 Model B (simulated)"
    ambient_c: float = Field(default=25.0, ge=-40, le=80)
    load_pct: float = Field(default=10.0, ge=0, le=100)
    battery_wh: float = Field(default=20.0, ge=0, le=10_000, description="0 = no battery")
    battery_pct: float = Field(default=100.0, ge=0, le=100)
    solar_peak_w: float = Field(default=0.0, ge=0, le=10_000, description="0 = no panel")
    noise: bool = True


class LinuxPaths(_Section):
    """Where the Linux backend finds the kernel interfaces; tests point them at a tmp tree."""

    sysfs_root: Path = Path("/sys")
    cpu_thermal_zone: str = Field(default="cpu-thermal", description="thermal_zone type")
    gpu_thermal_zone: str | None = None
    ambient_hwmon: str | None = Field(default=None, description="hwmon name with temp1_input")
    fan_hwmon: str = Field(default="pwmfan", description="hwmon name with pwm1 and fan1_input")
    get_throttled_path: Path = Path("/sys/devices/platform/soc/soc:firmware/get_throttled")
    power_supplies: dict[str, str] = Field(
        default_factory=dict,
        description="source name (main, battery, solar) to /sys/class/power_supply entry",
    )
    gpio_chip: str = "/dev/gpiochip0"
    case_switch_line: int | None = None
    motion_line: int | None = None
    shutdown_command: tuple[str, ...] = ("systemctl", "poweroff")

    @field_validator("power_supplies")
    @classmethod
    def _sources(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = set(value) - {"main", "battery", "solar"}
        if unknown:
            raise ValueError(f"unknown power source(s) {sorted(unknown)}: use main, battery, solar")
        return value


class GpioLineSettings(_Section):
    """A named GPIO line as the operator wires it."""

    line: int = Field(ge=0, le=1023)
    direction: Literal["in", "out"] = "in"
    pull: Literal["none", "up", "down"] = "none"
    edge: Literal["none", "rising", "falling", "both"] = "none"
    debounce_ms: float = Field(default=50.0, ge=0, le=10_000)
    loopback_to: str | None = Field(default=None, description="line name wired to this one")


class MetalSettings(Settings):
    """Settings of ``wrale metald``: env ``WRALE_METAL_*``, nested with ``__``."""

    ENV_PREFIX: ClassVar[str] = "WRALE_METAL_"

    backend: BackendName = BackendName.AUTO
    listen: str = "127.0.0.1:8421"
    api_key: SecretStr | None = None
    dev: bool = False
    device_name: str = "board"
    data_dir: Path = Path("./wrale-data/metald")
    sample_interval_s: float = Field(default=1.0, ge=0.05, le=60)
    event_retention: int = Field(default=10_000, ge=100, le=10_000_000)
    diag_retention: int = Field(default=1_000, ge=10, le=1_000_000)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    thermal: ThermalPolicy = ThermalPolicy()
    power: PowerPolicy = PowerPolicy()
    security: SecurityPolicy = SecurityPolicy()
    gpio: dict[str, GpioLineSettings] = Field(default_factory=dict)
    sim: SimSettings = SimSettings()
    linux: LinuxPaths = LinuxPaths()
    # the local HTTP API: what a client may cost, and who may reach it
    max_connections: int = Field(
        default=32, ge=2, le=4096, description="open API connections at once (half per client)"
    )
    tls_cert_file: Path | None = Field(default=None, description="PEM certificate (chain)")
    tls_key_file: Path | None = Field(default=None, description="PEM private key")
    insecure_listen: bool = Field(
        default=False, description="allow plain HTTP on a non-loopback address (warns)"
    )

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("expected HOST:PORT, e.g. 127.0.0.1:8421")
        return value

    def listen_address(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)

    def listen_tls(self) -> ssl.SSLContext | None:
        """The TLS context for the API (``None``: plain HTTP), after checking that plain HTTP
        is only served on loopback unless ``insecure_listen`` says otherwise."""
        cert, key = self.tls_cert_file, self.tls_key_file
        if (cert is None) != (key is None):
            raise ConfigError(
                "settings 'tls_cert_file' and 'tls_key_file' (env WRALE_METAL_TLS_CERT_FILE, "
                "WRALE_METAL_TLS_KEY_FILE) go together: set both or neither"
            )
        if cert is None or key is None:
            host = self.listen_address()[0]
            if not is_loopback_host(host) and not self.insecure_listen:
                raise ConfigError(
                    f"refusing to serve metald's API on {self.listen} without TLS: anyone on "
                    "that network could read its API key. Listen on 127.0.0.1, or set "
                    "--tls-cert/--tls-key (WRALE_METAL_TLS_CERT_FILE/_KEY_FILE), or pass "
                    "--insecure-listen (WRALE_METAL_INSECURE_LISTEN=1) on a trusted network"
                )
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            ctx.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"setting 'tls_cert_file'/'tls_key_file': cannot load {cert} / {key}: {exc}"
            ) from None
        return ctx

    def effective_api_key(self) -> str:
        """The bearer key metald accepts; refuses the default key outside dev mode."""
        key = self.api_key.get_secret_value() if self.api_key else None
        if key and key != DEV_API_KEY:
            if len(key) < 16:
                raise ConfigError("setting 'api_key' (env WRALE_METAL_API_KEY): use 16+ chars")
            return key
        if self.dev:
            return key or DEV_API_KEY
        raise ConfigError(
            "setting 'api_key' (env WRALE_METAL_API_KEY) must be set to a secret of 16+ "
            "characters; the default key is accepted only with --dev"
        )


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is reachable only from this machine;
    any other name, and the wildcard addresses, count as reachable from the network."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# ----------------------------------------------------------------------------- central


class CentralSettings(Settings):
    """Settings of ``wrale central``: env ``WRALE_*`` (e.g. ``WRALE_DATABASE_URL``)."""

    ENV_PREFIX: ClassVar[str] = "WRALE_"

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

    @field_validator("database_url")
    @classmethod
    def _supported(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("use sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DB")
        return value
