"""The agent's twins: the desired one stored durably before it is acted on, then planned
(``reconcile.plan``) and applied (``Executor``) unless in SAFE mode, its fan override kept
in force, its ``jobs`` section handed to the ``JobRunner``; the reported one (with the
runner's ``jobs``) stored as a new version whenever the board changed, and sent.
A part of ``EdgeAgent``; what to change is decided by ``reconcile``, not here.
"""

from __future__ import annotations

from wrale.fleet.edge.agentcore import AgentCore, Json, Mode, log
from wrale.fleet.edge.reconcile import plan
from wrale.fleet.edge.store import Twin
from wrale.fleet.sync.protocol import Desired, Reported
from wrale.fleet.sync.twin import diff
from wrale.shared.errors import WraleError

FAN_RENEW_FRACTION = 0.25  # renew the held fan override when this much of it is left


def _clip(text: str, limit: int) -> str:
    """``text`` within the protocol's length limit."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


class AgentTwins(AgentCore):
    """Applying the desired state and reporting the current one."""

    async def _reconcile_loop(self) -> None:
        while True:
            await self._reconcile_needed.wait()
            self._reconcile_needed.clear()
            try:
                await self._reconcile()
            except WraleError as exc:
                log.warning("cannot apply the desired state yet: %s", exc.message)
                await self.clock.sleep(self.settings.metal_retry_s)
                self._reconcile_needed.set()

    async def _reconcile(self) -> None:
        desired = self._desired
        safe = self._mode is Mode.SAFE
        # SAFE mode runs no jobs; the brain releases a SAFE board's placements.
        jobs_problem = self._jobs.want(None if desired is None or safe else desired.doc.get("jobs"))
        if desired is not None and not safe:
            current = await self._current()
            steps = plan(current, desired.doc)
            if steps:
                log.info("applying desired state v%d: %d step(s)", desired.version, len(steps))
            rejected = await self._executor.apply(steps, current)
            if jobs_problem is not None:
                rejected["jobs"] = jobs_problem
            self._rejected = rejected
            self._applied = desired.version
        await self._report()

    async def _jobs_loop(self) -> None:
        """The job runner's loop: it reports through ``_report`` after a change."""
        await self._jobs.run(self._report)

    async def _on_desired(self, msg: Desired) -> None:
        if self._desired is not None and msg.version <= self._desired.version:
            return
        await self._io(self.store.save_desired, msg.version, msg.doc)  # durable before acting
        self._desired = Twin(msg.version, dict(msg.doc))
        log.info("desired state v%d received", msg.version)
        self._reconcile_needed.set()

    async def _hold_fan(self, thermal: Json) -> None:
        """Keep the desired fan override in force: renew it before metal lets it lapse,
        and retry (every ``duration/4``, at most every 30 s) while metal refuses it."""
        h = self._held
        if h.fan_pct is None or self._mode is Mode.SAFE:
            return
        override = thermal.get("override")
        remaining = override.get("remaining_s") if isinstance(override, dict) else None
        if isinstance(remaining, int | float) and remaining > h.fan_duration_s * FAN_RENEW_FRACTION:
            return
        now = self.clock.monotonic()
        if now - self._fan_tried < min(30.0, max(1.0, h.fan_duration_s / 4)):
            return
        self._fan_tried = now
        try:
            await self.metal.set_fan(h.fan_pct, h.fan_duration_s)
        except WraleError as exc:
            changed = h.fan_active or self._rejected.get("fan.override_pct") != exc.message
            h.fan_active = False
            self._rejected["fan.override_pct"] = exc.message
        else:
            changed = not h.fan_active or "fan.override_pct" in self._rejected
            h.fan_active = True
            self._rejected.pop("fan.override_pct", None)
        if changed:
            await self._report()

    async def _current(self) -> Json:
        """What the board runs now, in the shape of the reported document."""
        m = self.metal
        policies = await m.policies()
        sec = await m.security()
        gpio = await m.gpio()
        if not self._hardware:
            health = await m.health()
            self._hardware = {k: health[k] for k in ("backend", "model", "device") if k in health}
        outputs: Json = {}
        for name, line in gpio.items():
            if isinstance(line, dict) and line.get("direction") == "out":
                pwm = line.get("pwm")
                outputs[name] = dict(pwm) if isinstance(pwm, dict) else {"value": line.get("value")}
        return {
            "agent_version": self.agent_version,
            "mode": self._mode.value,
            "thermal": policies.get("thermal", {}),
            "power": policies.get("power", {}),
            "security": policies.get("security", {}),
            "sampling": self._held.sampling(),
            "fan": self._held.fan(),
            "tamper": {k: sec.get(k) for k in ("armed", "level", "lockdown")},
            "gpio": outputs,
            "config": dict(self._held.config),
            "hardware": dict(self._hardware),
            "applied_desired_version": self._applied,
            "jobs": self._jobs.reported(),
        }

    async def _report(self, *, resend: bool = False) -> None:
        """Store a new reported version if anything changed, and send it (or, with
        ``resend``, the current one) when connected."""
        async with self._report_lock:
            doc: Json | None
            try:
                doc = await self._current()
            except WraleError as exc:
                log.debug("reported state not refreshed: %s", exc.message)
                doc = self._reported.doc if self._reported else None
                if doc is not None:  # jobs need no metald: theirs is refreshed anyway
                    doc = {**doc, "jobs": self._jobs.reported()}
            if doc is None:
                return
            prev = self._reported
            changed = (
                prev is None
                or bool(diff(prev.doc, doc))
                or prev.rejected != self._rejected
                or prev.applied_desired_version != self._applied
            )
            if changed:
                twin = Twin(
                    (prev.version if prev else 0) + 1, doc, self._applied, dict(self._rejected)
                )
                await self._io(self.store.save_reported, twin)
                self._reported = twin
            last = self._reported
            if last is not None and (changed or resend):
                sent = await self._send(
                    Reported(
                        last.version,
                        last.doc,
                        last.applied_desired_version,
                        {k[:200]: _clip(v, 1000) for k, v in last.rejected.items()},
                    )
                )
                if sent:
                    self._jobs.sent(last.doc.get("jobs"))
