"""The central's WebSocket compression costs a connection a few KiB of zlib state, not the
~45 KiB uvicorn's default keeps, and still inflates what boards compress with context."""

from __future__ import annotations

import tracemalloc
import zlib
from collections.abc import Callable

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.extensions.base import Extension
from websockets.extensions.permessage_deflate import (
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Frame, Opcode

from wrale.user.api.ws_protocol import (
    CLIENT_WINDOW_BITS,
    LeanWebSocketProtocol,
    WindowedDeflate,
    deflate,
)

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


def _board_frames(texts: list[bytes], fragment: bool = False) -> list[Frame]:
    """What a board's websockets client sends: its context kept across messages, each
    message's sync-flush tail implied; ``fragment``: each message in three frames."""
    board = PerMessageDeflate(True, False, 9, CLIENT_WINDOW_BITS)  # the client's view
    frames: list[Frame] = []
    for text in texts:
        if not fragment:
            frames.append(board.encode(Frame(Opcode.TEXT, text)))
            continue
        third = len(text) // 3
        parts = [text[:third], text[third : 2 * third], text[2 * third :]]
        for i, part in enumerate(parts):
            op = Opcode.TEXT if i == 0 else Opcode.CONT
            frames.append(board.encode(Frame(op, part, fin=i == 2)))
    return frames


def _messages(n: int) -> list[bytes]:
    out = []
    for i in range(n):  # sizes around and above the 4 KiB window, repeating content
        points = ",".join(
            f'["m{j % 17}_c",{1000 + i * 10 + j // 17},{40 + j / 10}]' for j in range(i * 13 % 300)
        )
        out.append(f'{{"T":"telemetry","seq":{i},"points":[{points}]}}'.encode())
    return out


def test_the_kept_window_inflates_what_a_board_compresses_with_context() -> None:
    for fragment in (False, True):
        _params, ext = deflate().process_request_params(OFFER, [])
        assert not ext.remote_no_context_takeover
        texts = _messages(40)
        got: list[bytes] = []
        parts: list[bytes] = []
        for frame in _board_frames(texts, fragment):
            out = ext.decode(frame, max_size=1 << 20)
            parts.append(bytes(out.data))
            if out.fin:
                got.append(b"".join(parts))
                parts = []
            assert not out.rsv1
        assert got == texts
        assert not hasattr(ext, "decoder")  # nothing but the window kept between messages
        assert isinstance(ext, WindowedDeflate)
        assert len(ext.window) == 1 << CLIENT_WINDOW_BITS


def test_an_uncompressed_message_leaves_the_context_alone() -> None:
    _params, ext = deflate().process_request_params(OFFER, [])
    texts = _messages(6)
    frames = _board_frames(texts)
    plain = Frame(Opcode.TEXT, b'{"T":"heartbeat"}')  # sent without compression
    got = [ext.decode(f).data for f in frames[:3]]
    assert ext.decode(plain).data == plain.data
    got += [ext.decode(f).data for f in frames[3:]]
    assert got == texts


def test_the_kept_window_is_smaller_than_a_decoder() -> None:
    def kept(ext_of: Callable[[], Extension], n: int = 50) -> float:
        texts = _messages(8)
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            exts = []
            for _ in range(n):
                ext = ext_of()
                for frame in _board_frames(texts):
                    ext.decode(frame)
                exts.append(ext)
            after = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        return (after - before) / n / 1024

    windowed = kept(lambda: deflate().process_request_params(OFFER, [])[1])
    decoder = kept(lambda: PerMessageDeflate(False, True, CLIENT_WINDOW_BITS, 9))
    assert windowed < 5, windowed
    assert decoder > windowed + 5, (decoder, windowed)


def test_no_context_negotiated_keeps_websockets_own_extension() -> None:
    _params, ext = deflate(context=False).process_request_params(OFFER, [])
    assert ext.remote_no_context_takeover
    assert not isinstance(ext, WindowedDeflate)
