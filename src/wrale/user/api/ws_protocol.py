"""The central's WebSocket protocol: uvicorn's sans-I/O one with a compression setting
that costs a connected board a few KiB instead of ~50.

Per-message deflate with context takeover keeps a zlib compressor and a decompressor per
connection for as long as it lives (uvicorn's: 4 KiB windows, memLevel 5 — ~45 KiB of
zlib state a board, most of a 50 KiB budget). What boards send (telemetry, events)
compresses well and is most of the traffic, so their direction keeps its context; what
the server sends is small (acks, commands), so the server compresses each message on its
own (``server_no_context_takeover``: no compressor kept between messages) with the
smallest window and memory level. A board's link costs the same bytes as before.

The boards' context is kept as what it is, the last ``2**client_max_window_bits`` bytes
they sent (4 KiB), not as a zlib decoder between messages (``WindowedDeflate``): an
inflate stream's state is ~7 KiB on top of its window, held by every idle board. Each
message is inflated by a decoder made for it and primed with that window (zlib's preset
dictionary: the same back-references resolve to the same bytes), freed once it is read.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.extensions.base import Extension
from websockets.extensions.permessage_deflate import (
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import CONT, CTRL_OPCODES, Frame
from websockets.server import ServerProtocol
from websockets.typing import ExtensionParameter

CLIENT_WINDOW_BITS = 12  # what boards compress with (their window: kept here, 4 KiB)


class WindowedDeflate(PerMessageDeflate):
    """``PerMessageDeflate`` whose context of the peer's messages (when it keeps one) is
    the window of what they inflated to, a decoder made from it per message."""

    def __init__(
        self,
        remote_no_context_takeover: bool,
        local_no_context_takeover: bool,
        remote_max_window_bits: int,
        local_max_window_bits: int,
        compress_settings: dict[Any, Any] | None = None,
    ) -> None:
        # no decoder made here: one is made per message
        super().__init__(
            True,
            local_no_context_takeover,
            remote_max_window_bits,
            local_max_window_bits,
            compress_settings,
        )
        self.remote_no_context_takeover = remote_no_context_takeover
        self.window = b""  # the last bytes the peer's compressed messages inflated to

    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        if self.remote_no_context_takeover or frame.opcode in CTRL_OPCODES:
            return super().decode(frame, max_size=max_size)
        starts = frame.opcode is not CONT and frame.rsv1
        if not starts and not (frame.opcode is CONT and self.decode_cont_data):
            return super().decode(frame, max_size=max_size)  # not compressed: no context
        bits = self.remote_max_window_bits
        if starts:
            zdict = {"zdict": self.window} if self.window else {}
            self.decoder = zlib.decompressobj(wbits=-bits, **zdict)
        out = super().decode(frame, max_size=max_size)
        size = 1 << bits
        data = out.data
        if len(data) >= size:
            self.window = bytes(data[-size:])
        elif data:
            self.window = (self.window + data)[-size:]
        if frame.fin:
            del self.decoder
        return out


class LeanDeflateFactory(ServerPerMessageDeflateFactory):
    """The server's factory, negotiating as websockets' does, making ``WindowedDeflate``."""

    def process_request_params(
        self, params: Sequence[ExtensionParameter], accepted_extensions: Sequence[Extension]
    ) -> tuple[list[ExtensionParameter], PerMessageDeflate]:
        answer, ext = super().process_request_params(params, accepted_extensions)
        if ext.remote_no_context_takeover:
            return answer, ext
        if hasattr(ext, "decoder"):
            del ext.decoder  # the one websockets made: never used
        lean = WindowedDeflate(
            ext.remote_no_context_takeover,
            ext.local_no_context_takeover,
            ext.remote_max_window_bits,
            ext.local_max_window_bits,
            ext.compress_settings,
        )
        return answer, lean


def deflate(context: bool = True) -> ServerPerMessageDeflateFactory:
    """``context``: boards' messages compressed with the context of the ones before (their
    window kept per connection); else each on its own (nothing kept between them)."""
    return LeanDeflateFactory(
        server_no_context_takeover=True,
        client_no_context_takeover=not context,
        server_max_window_bits=9,
        client_max_window_bits=CLIENT_WINDOW_BITS,
        compress_settings={"memLevel": 1},
    )


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    """``WebSocketsSansIOProtocol`` with the lean deflate above."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.config.ws_per_message_deflate:
            self.conn = ServerProtocol(
                extensions=[deflate()],
                max_size=self.config.ws_max_size,
                logger=logging.getLogger("uvicorn.error"),
            )
