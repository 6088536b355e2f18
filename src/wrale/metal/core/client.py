"""MetalClient: metald's operations for the edge agent and the CLI, in-process or over HTTP.

Both implementations return the dicts the HTTP API returns and raise the same ``WraleError``
subclasses; httpx is imported only by ``HttpMetalClient`` so metald itself never loads it.
The in-process client is here; the HTTP one is ``client_http`` (re-exported here).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from wrale.metal.core import api
from wrale.metal.core.api_models import (
    AmbientBody,
    ArmBody,
    ClearFaultsQuery,
    DiagRunBody,
    EventQuery,
    FanOverrideBody,
    FaultBody,
    FreqCapBody,
    GpioBody,
    HistoryQuery,
    LoadBody,
    PoliciesBody,
    parse,
)
from wrale.metal.core.client_bodies import event_query, fault_body, policies_body
from wrale.metal.core.client_http import DIAG_TIMEOUT_S as DIAG_TIMEOUT_S
from wrale.metal.core.client_http import HttpMetalClient as HttpMetalClient
from wrale.metal.core.client_http import error_from_response as error_from_response
from wrale.metal.core.engine import MetalCore
from wrale.metal.core.ports import Diagnostics, JsonDict, MetalClient

__all__ = [
    "DIAG_TIMEOUT_S",
    "HttpMetalClient",
    "InProcessMetalClient",
    "JsonDict",
    "MetalClient",
    "error_from_response",
]


class InProcessMetalClient(MetalClient):
    """Calls the ``MetalCore`` directly (``wrale device run``: metald and agent in one process)."""

    def __init__(self, core: MetalCore, diagnostics: Diagnostics | None = None) -> None:
        self.core = core
        self.diagnostics = diagnostics

    async def health(self) -> JsonDict:
        return api.health(self.core)

    async def state(self) -> JsonDict:
        return api.state(self.core)

    async def thermal(self) -> JsonDict:
        return api.thermal(self.core)

    async def power(self) -> JsonDict:
        return api.power(self.core)

    async def security(self) -> JsonDict:
        return api.security(self.core)

    async def gpio(self) -> JsonDict:
        return api.gpio(self.core)

    async def set_fan(self, percent: float, duration_s: float = 300.0) -> JsonDict:
        body = parse(FanOverrideBody, {"percent": percent, "duration_s": duration_s})
        return await api.set_fan(self.core, body)

    async def clear_fan(self) -> JsonDict:
        return await api.clear_fan(self.core)

    async def set_throttle(self, max_freq_pct: float | None) -> JsonDict:
        return await api.set_freq_cap(self.core, parse(FreqCapBody, {"max_freq_pct": max_freq_pct}))

    async def policies(self) -> JsonDict:
        return api.policies(self.core)

    async def update_policies(
        self,
        *,
        thermal: JsonDict | None = None,
        power: JsonDict | None = None,
        security: JsonDict | None = None,
    ) -> JsonDict:
        body = policies_body(thermal, power, security)
        return await api.update_policies(self.core, parse(PoliciesBody, body))

    async def arm(self, level: str | None = None) -> JsonDict:
        return await api.arm(self.core, parse(ArmBody, {"level": level}))

    async def disarm(self) -> JsonDict:
        return await api.disarm(self.core)

    async def gpio_write(self, line: str, value: int) -> JsonDict:
        return await api.gpio_set(self.core, line, parse(GpioBody, {"value": value}))

    async def gpio_pwm(self, line: str, frequency_hz: float, duty_percent: float) -> JsonDict:
        pwm = {"frequency_hz": frequency_hz, "duty_percent": duty_percent}
        return await api.gpio_set(self.core, line, parse(GpioBody, {"pwm": pwm}))

    async def diag_tests(self) -> list[str]:
        tests: list[str] = api.diag_tests(self.diagnostics)["tests"]
        return tests

    async def run_diag(self, tests: list[str] | None = None) -> list[JsonDict]:
        body = parse(DiagRunBody, {"tests": tests})
        results: list[JsonDict] = (await api.run_diag(self.diagnostics, body))["results"]
        return results

    async def diag_history(self, limit: int = 50) -> list[JsonDict]:
        q = parse(HistoryQuery, {"limit": limit})
        items: list[JsonDict] = (await api.diag_history(self.diagnostics, q.limit))["items"]
        return items

    async def events(
        self,
        since_id: int | None = None,
        limit: int = 100,
        *,
        types: list[str] | None = None,
        min_severity: str | None = None,
    ) -> list[JsonDict]:
        q = parse(EventQuery, event_query(since_id, limit, types, min_severity))
        return await api.events(self.core, q)

    async def stream_events(self, since_id: int | None = None) -> AsyncGenerator[JsonDict, None]:
        q = parse(EventQuery, event_query(since_id, 100, None, None))
        async with api.EventFeed(self.core, q) as feed:
            async for e in feed:
                yield e.to_dict()

    async def sim_status(self) -> JsonDict:
        return api.sim_status(self.core)

    async def sim_set_ambient(self, celsius: float) -> JsonDict:
        return await api.sim_set_ambient(self.core, parse(AmbientBody, {"celsius": celsius}))

    async def sim_set_load(self, percent: float) -> JsonDict:
        return await api.sim_set_load(self.core, parse(LoadBody, {"percent": percent}))

    async def sim_set_job_load(self, percent: float) -> JsonDict:
        return await api.sim_set_job_load(self.core, parse(LoadBody, {"percent": percent}))

    async def sim_inject_fault(
        self, fault: str, duration_s: float | None = None, **params: Any
    ) -> JsonDict:
        body = parse(FaultBody, fault_body(fault, duration_s, params))
        return await api.sim_inject_fault(self.core, body)

    async def sim_clear_faults(self, fault: str | None = None) -> JsonDict:
        q = parse(ClearFaultsQuery, {"fault": fault})
        return await api.sim_clear_faults(self.core, q)

    async def aclose(self) -> None:
        return None
