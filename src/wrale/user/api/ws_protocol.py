"""The central's WebSocket protocol: uvicorn's sans-I/O one with a compression setting
that costs a connected board a few KiB instead of ~50.

Per-message deflate with context takeover keeps a zlib compressor and a decompressor per
connection for as long as it lives (uvicorn's: 4 KiB windows, memLevel 5 — ~45 KiB of
zlib state a board, most of a 50 KiB budget). What boards send (telemetry, events)
compresses well and is most of the traffic, so their direction keeps its context; what
the server sends is small (acks, commands), so the server compresses each message on its
own (``server_no_context_takeover``: no compressor kept between messages) with the
smallest window and memory level. A board's link costs the same bytes as before.
"""

from __future__ import annotations

import logging
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.server import ServerProtocol

CLIENT_WINDOW_BITS = 12  # what boards compress with (their window: the decoder kept here)


def deflate(context: bool = True) -> ServerPerMessageDeflateFactory:
    """``context``: boards' messages compressed with the context of the ones before (the
    decoder kept per connection); else each on its own (no decoder kept between them)."""
    return ServerPerMessageDeflateFactory(
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
