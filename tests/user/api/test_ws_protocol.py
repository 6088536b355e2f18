"""The central's WebSocket compression costs a connection a few KiB of zlib state, not the
~45 KiB uvicorn's default keeps, and still inflates what boards compress with context."""

from __future__ import annotations

import tracemalloc
import zlib

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.extensions.permessage_deflate import (
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Frame, Opcode

from wrale.user.api.ws_protocol import CLIENT_WINDOW_BITS, LeanWebSocketProtocol, deflate

# what a board's agent (the websockets client's default) offers
OFFER = [("server_max_window_bits", "12"), ("client_max_window_bits", "12")]


def _kept_per_connection(factory: ServerPerMessageDeflateFactory, n: int = 50) -> float:
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [factory.process_request_params(OFFER, [])[1] for _ in range(n)]
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(kept) == n
    return (after - before) / n / 1024


def test_lean_deflate_keeps_a_fraction_of_uvicorns_state() -> None:
    uvicorn_default = ServerPerMessageDeflateFactory(
        server_max_window_bits=12, client_max_window_bits=12, compress_settings={"memLevel": 5}
    )
    lean = _kept_per_connection(deflate())
    default = _kept_per_connection(uvicorn_default)
    assert lean < 16, lean
    assert default > 2 * lean, (default, lean)


def test_what_a_board_compresses_with_context_still_inflates() -> None:
    _params, ext = deflate().process_request_params(OFFER, [])
    assert isinstance(ext, PerMessageDeflate)
    assert ext.local_no_context_takeover  # the server's own messages: no kept compressor
    assert ext.remote_max_window_bits == CLIENT_WINDOW_BITS
    board = zlib.compressobj(wbits=-CLIENT_WINDOW_BITS)
    for i in range(3):  # frames sharing the board's context
        text = f'{{"T":"telemetry","seq":{i},"points":[["cpu_temp_c",1.0,5{i}.0]]}}'.encode()
        data = board.compress(text) + board.flush(zlib.Z_SYNC_FLUSH)
        frame = Frame(Opcode.TEXT, data[:-4], rsv1=True)  # the sync flush tail is implied
        assert ext.decode(frame).data == text
    server_frame = ext.encode(Frame(Opcode.TEXT, b'{"T":"ack","seq":1}' * 4))
    assert server_frame.rsv1


def test_the_central_protocol_is_uvicorns_sans_io_one() -> None:
    assert issubclass(LeanWebSocketProtocol, WebSocketsSansIOProtocol)
