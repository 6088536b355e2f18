"""Process settings: defaults < TOML file (``--config``) < ``WRALE_*`` environment < flags.

Each process has one settings class; ``load_settings`` layers the sources and turns any
invalid value into a ``ConfigError`` that names the setting, so the process stops with a
message an operator can act on.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from wrale.shared.errors import ConfigError
from wrale.shared.policy import PowerPolicy, SecurityPolicy, ThermalPolicy

DEV_API_KEY = "wrale-dev-key"  # accepted only with --dev

S = TypeVar("S", bound=BaseSettings)


class _TomlSource(PydanticBaseSettingsSource):
    """Reads one TOML file; a missing or malformed file is a ConfigError, not a default."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None) -> None:
        super().__init__(settings_cls)
        self._data: dict[str, Any] = {}
        if path is None:
            return
        try:
            self._data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist", path=str(path)) from None
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {path} cannot be read: {exc}", path=str(path)) from exc

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


def load_settings(
    cls: type[S], *, config_file: Path | None = None, flags: Mapping[str, Any] | None = None
) -> S:
    """Build ``cls`` from its layered sources; raise ``ConfigError`` naming a bad setting."""
    given = {k: v for k, v in (flags or {}).items() if v is not None}
    base = cls

    class _Layered(cls):  # type: ignore[valid-type,misc]
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings, env_settings, _TomlSource(settings_cls, config_file))

    _Layered.__name__ = base.__name__
    try:
        layered = _Layered(**given)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, base), errors=exc.errors(include_url=False)) from None
    result: S = layered  # an instance of a subclass of ``cls``
    return result


def _describe(exc: ValidationError, cls: type[BaseSettings]) -> str:
    prefix = str(cls.model_config.get("env_prefix", ""))
    lines = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"]]
        name = ".".join(loc) or "(settings)"
        env = prefix + "__".join(loc).upper()
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
    direction: str = Field(default="in", pattern="^(in|out)$")
    pull: str = Field(default="none", pattern="^(none|up|down)$")
    edge: str = Field(default="none", pattern="^(none|rising|falling|both)$")
    debounce_ms: float = Field(default=50.0, ge=0, le=10_000)
    loopback_to: str | None = Field(default=None, description="line name wired to this one")


class MetalSettings(BaseSettings):
    """Settings of ``wrale metald``: env ``WRALE_METAL_*``, nested with ``__``."""

    model_config = SettingsConfigDict(
        env_prefix="WRALE_METAL_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    backend: BackendName = BackendName.AUTO
    listen: str = "127.0.0.1:8421"
    api_key: SecretStr | None = None
    dev: bool = False
    device_name: str = "board"
    data_dir: Path = Path("./wrale-data/metald")
    sample_interval_s: float = Field(default=1.0, ge=0.05, le=60)
    event_retention: int = Field(default=10_000, ge=100, le=10_000_000)
    diag_retention: int = Field(default=1_000, ge=10, le=1_000_000)
    log_level: str = Field(default="INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")
    thermal: ThermalPolicy = ThermalPolicy()
    power: PowerPolicy = PowerPolicy()
    security: SecurityPolicy = SecurityPolicy()
    gpio: dict[str, GpioLineSettings] = Field(default_factory=dict)
    sim: SimSettings = SimSettings()
    linux: LinuxPaths = LinuxPaths()

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
