"""Process settings: defaults < TOML file (``--config``) < ``WRALE_*`` environment < flags.

Each process has one settings class; ``load_settings`` merges the sources and validates
the result, turning any invalid value into a ``ConfigError`` that names the setting (and
its environment variable), so the process stops with a message an operator can act on.

The device's settings are msgspec documents (``wrale.shared.structs``): pydantic costs the
board about 21 MiB of resident memory (measured, see docs/architecture.md). The central's
settings (``wrale.shared.central_settings``) stay pydantic and load through the same
``load_settings``.
"""

from __future__ import annotations

import ipaddress
import json
import os
import ssl
import tomllib
import types
import typing
from collections.abc import Collection, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Protocol, Self, TypeVar

import msgspec
from msgspec import Meta

from wrale.shared.board_settings import GpioLineSettings as GpioLineSettings
from wrale.shared.board_settings import LinuxPaths as LinuxPaths
from wrale.shared.board_settings import SimSettings as SimSettings
from wrale.shared.board_settings import TamperWiringSettings
from wrale.shared.errors import ConfigError
from wrale.shared.policy import PowerPolicy, SecurityPolicy, ThermalPolicy
from wrale.shared.structs import Doc, FieldError, Secret, convert, problems

DEV_API_KEY = "wrale-dev-key"  # accepted only with --dev

_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "off"})


class LayeredSettings(Protocol):
    """What ``load_settings`` needs of a settings class (msgspec or pydantic)."""

    ENV_PREFIX: ClassVar[str]

    @classmethod
    def setting_names(cls) -> Collection[str]: ...

    @classmethod
    def from_layers(cls, data: dict[str, Any]) -> Self:
        """Validate the merged layers; ``ConfigError`` naming each bad setting."""
        ...


S = TypeVar("S", bound=LayeredSettings)


class Settings(Doc, frozen=True):
    """Base of the device processes' settings; ``ENV_PREFIX`` names their environment
    variables. Strings convert to numbers and booleans (they come from the environment)."""

    ENV_PREFIX: ClassVar[str] = "WRALE_"

    @classmethod
    def setting_names(cls) -> Collection[str]:
        return cls.__struct_fields__

    @classmethod
    def from_layers(cls, data: dict[str, Any]) -> Self:
        try:
            return convert(data, cls, strict=False)
        except msgspec.ValidationError as exc:
            found = problems(exc)
            raise ConfigError(describe(found, cls.ENV_PREFIX), errors=found) from None


def describe(found: list[dict[str, str]], prefix: str) -> str:
    """``invalid configuration: setting 'a.b' (env PREFIX_A__B): problem; …``."""
    lines = []
    for p in found:
        loc = [part for part in p["field"].split(".") if part]
        name = ".".join(loc) or "(settings)"
        env = prefix + "__".join(loc).upper()
        lines.append(f"setting '{name}' (env {env}): {p['problem']}")
    return "invalid configuration: " + "; ".join(lines)


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file as a dict; a missing or malformed file is a ConfigError, not a default."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist", path=str(path)) from None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}", path=str(path)) from exc


def read_env(cls: type[LayeredSettings], environ: Mapping[str, str]) -> dict[str, Any]:
    """``PREFIX_A__B=v`` as ``{"a": {"b": v}}``, for top-level settings ``cls`` has.

    Values that look like JSON objects or arrays are decoded; the rest stay strings and
    are converted by validation (a yes/no/on/off of a boolean setting too). Other
    variables under the prefix (a client's URL, say) are left alone.
    """
    out: dict[str, Any] = {}
    prefix = cls.ENV_PREFIX.upper()
    names = cls.setting_names()
    for name, raw in environ.items():
        if not name.upper().startswith(prefix):
            continue
        path = name[len(prefix) :].lower().split("__")
        if path[0] not in names:
            continue
        value: Any = raw
        if raw.strip()[:1] in ("{", "["):
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"environment variable {name} is not valid JSON: {exc}") from None
        elif _is_bool(cls, path):
            word = raw.strip().lower()
            value = "true" if word in _TRUE else "false" if word in _FALSE else raw
        node = out
        for key in path[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"environment variable {name} clashes with another one")
        node[path[-1]] = value
    return out


def _is_bool(cls: type[Any], path: list[str]) -> bool:
    """Whether the setting at ``path`` of a msgspec settings class is a boolean."""
    hints: list[Any] = [cls]  # a tagged union (a UPS HAT's kind) has several candidates
    for key in path:
        found = []
        for hint in hints:
            if isinstance(hint, type) and issubclass(hint, msgspec.Struct):
                fields = typing.get_type_hints(hint)
                if key in fields:
                    found.append(fields[key])
        hints = []
        for hint in found:
            if typing.get_origin(hint) in (typing.Union, types.UnionType):
                hints.extend(a for a in typing.get_args(hint) if a is not type(None))
            else:
                hints.append(hint)
    return bool(hints) and all(hint is bool for hint in hints)


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
    defaults: Mapping[str, Any] | None = None,
) -> S:
    """Build ``cls`` from its layered sources; raise ``ConfigError`` naming a bad setting.

    ``defaults`` replace the class's own defaults (the lowest layer): an entry point's
    choice that any file, variable or flag still overrides."""
    data: dict[str, Any] = {k: v for k, v in (defaults or {}).items() if v is not None}
    if config_file is not None:
        data = deep_merge(data, read_toml(config_file))
    data = deep_merge(data, read_env(cls, os.environ if environ is None else environ))
    data = deep_merge(data, {k: v for k, v in (flags or {}).items() if v is not None})
    return cls.from_layers(data)


# ----------------------------------------------------------------------------- metald


class BackendName(StrEnum):
    AUTO = "auto"
    SIM = "sim"
    LINUX = "linux"


class MetalSettings(Settings, frozen=True):
    """Settings of ``wrale metald``: env ``WRALE_METAL_*``, nested with ``__``."""

    ENV_PREFIX: ClassVar[str] = "WRALE_METAL_"

    backend: BackendName = BackendName.AUTO
    listen: str = "127.0.0.1:8431"
    api_key: Secret | None = None
    dev: bool = False
    device_name: str = "board"
    data_dir: Path = Path("./wrale-data/metald")
    sample_interval_s: Annotated[float, Meta(ge=0.05, le=60)] = 1.0
    event_retention: Annotated[int, Meta(ge=100, le=10_000_000)] = 10_000
    diag_retention: Annotated[int, Meta(ge=10, le=1_000_000)] = 1_000
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    thermal: ThermalPolicy = ThermalPolicy()
    power: PowerPolicy = PowerPolicy()
    security: SecurityPolicy = SecurityPolicy()
    gpio: dict[str, GpioLineSettings] = msgspec.field(default_factory=dict)
    sim: SimSettings = SimSettings()
    linux: LinuxPaths = LinuxPaths()
    tamper_wiring: TamperWiringSettings = TamperWiringSettings()
    # the local HTTP API: what a client may cost, and who may reach it
    # open API connections at once (half per client)
    max_connections: Annotated[int, Meta(ge=2, le=4096)] = 32
    tls_cert_file: Path | None = None  # PEM certificate (chain)
    tls_key_file: Path | None = None  # PEM private key
    insecure_listen: bool = False  # allow plain HTTP on a non-loopback address (warns)

    def check(self) -> None:
        host, sep, port = self.listen.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise FieldError("listen", "expected HOST:PORT, e.g. 127.0.0.1:8431")

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
