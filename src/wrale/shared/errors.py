"""The one error tree of Wrale Fleet.

    WraleError
    ├── ConfigError              a setting is missing or invalid (names the setting)
    ├── NotFoundError            the named thing does not exist (HTTP 404)
    ├── InvalidRequestError      a request is malformed or out of range (HTTP 422)
    ├── ConflictError            the request clashes with current state (HTTP 409)
    │   ├── UnsafeOperationError the physical safety rules refuse it (says why)
    │   └── LockdownError        tamper lockdown refuses actuator commands
    ├── AuthError                missing or wrong credentials (HTTP 401)
    ├── UnavailableError         a service we call cannot be reached (HTTP 503)
    └── HardwareError            a backend could not read or drive the hardware
        ├── SensorError
        ├── ActuatorError
        └── UnsupportedError     the backend does not have this capability

Errors are raised in domain terms and translated once at each boundary
(hardware → domain in metal, domain → HTTP in one handler per server).
"""

from __future__ import annotations

from typing import Any


class WraleError(Exception):
    """Root of every error Wrale Fleet raises on purpose."""

    code = "wrale_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details


class ConfigError(WraleError):
    code = "config_error"


class NotFoundError(WraleError):
    code = "not_found"


class InvalidRequestError(WraleError):
    code = "invalid_request"


class ConflictError(WraleError):
    code = "conflict"


class UnsafeOperationError(ConflictError):
    code = "unsafe"


class LockdownError(ConflictError):
    code = "lockdown"


class AuthError(WraleError):
    code = "unauthorized"


class UnavailableError(WraleError):
    code = "unavailable"


class HardwareError(WraleError):
    code = "hardware_error"


class SensorError(HardwareError):
    code = "sensor_error"


class ActuatorError(HardwareError):
    code = "actuator_error"


class UnsupportedError(HardwareError):
    code = "unsupported"
