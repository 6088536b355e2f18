"""The agent's command queue: commands from the server run one at a time through
``CommandRunner``, each at most once (a redelivered one is answered from its stored
result); a result is stored before it is sent. A part of ``EdgeAgent``; what a command
does, and whether it may run, is ``commands``'s business.
"""

from __future__ import annotations

import asyncio

from wrale.fleet.edge.agentcore import AgentCore, log
from wrale.fleet.sync.protocol import Command, CommandResult


class AgentCommands(AgentCore):
    """Queueing, running and answering commands."""

    async def _command_loop(self) -> None:
        while True:
            cmd = await self._commands.get()
            prior = await self._io(self.store.command_result, cmd.id)
            if prior is not None:  # redelivered: answer again, never run twice
                result = CommandResult(**prior)
            else:
                self._counts["commands"] += 1
                result = await self._runner.run(cmd, self._mode.value)
                log.info(
                    "command %s %s: %s%s",
                    cmd.op,
                    cmd.id,
                    result.status,
                    f" ({result.reason})" if result.reason else "",
                )
                body = {
                    "id": result.id,
                    "status": result.status,
                    "reason": result.reason,
                    "result": result.result,
                }
                await self._io(self.store.save_command_result, cmd.id, body, self.clock.now())
                if result.status == "succeeded":
                    await self._report()
            if await self._send(result):
                await self._io(self.store.mark_sent, cmd.id)

    def _on_command(self, cmd: Command) -> None:
        try:
            self._commands.put_nowait(cmd)
        except asyncio.QueueFull:
            log.warning("command queue full: %s (%s) dropped; it will expire", cmd.id, cmd.op)
