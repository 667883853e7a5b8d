"""Hostile frames on every server: each closes only its own connection, with the right code."""

from __future__ import annotations

import struct
import threading
import tracemalloc
import zlib
from collections.abc import Iterator

import pytest
from websockets.frames import Close, Frame, Opcode
from websockets.sync.client import ClientConnection

from tests.support.client import RawClient, handshake_request
from tests.support.hardening import assert_serving, frame_bytes, hardening_server, raw, ws_client
from tests.support.servers import RunningServer, available

SMALL_LIMIT = 64 * 1024  # max_message_size of /small-deflate
_tracemalloc_lock = threading.Lock()


@pytest.fixture(scope="module", params=available())
def hserver(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    with hardening_server(request.param) as running:
        yield running


@pytest.fixture
def bystander(hserver: RunningServer) -> Iterator[ClientConnection]:
    """An ordinary client open during the attack; it must still be served afterwards."""
    with ws_client(hserver) as ws:
        yield ws
    # Also checked here, so every test checks it.
    assert_serving(hserver)


def deflate_client(server: RunningServer, path: str = "/small-deflate") -> RawClient:
    """A raw client that negotiated permessage-deflate (no context takeover either way)."""
    peer = raw(server)
    offer = "permessage-deflate; client_no_context_takeover; server_no_context_takeover"
    peer.send(handshake_request(server.host, server.port, path, {"Sec-WebSocket-Extensions": offer}))
    status, headers, rest = peer.read_response_head()
    assert status == 101
    assert "permessage-deflate" in headers.get("sec-websocket-extensions", "")
    if rest:
        peer.protocol.receive_data(rest)
    return peer


def deflate(data: bytes) -> bytes:
    """Raw DEFLATE as permessage-deflate sends it (the final empty block's tail removed)."""
    compressor = zlib.compressobj(zlib.Z_BEST_COMPRESSION, zlib.DEFLATED, -15)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def expect_close(peer: RawClient, *codes: int) -> Close:
    close = peer.recv_close(timeout=10)
    assert close.code in codes, f"closed with {close.code} {close.reason!r}, expected {codes}"
    peer.wait_eof(timeout=10)
    return close


# -- decompression bombs ---------------------------------------------------------------


def test_decompression_bomb_closes_1009_without_inflating(hserver: RunningServer, bystander: ClientConnection) -> None:
    inflated = 32 * 2**20  # 512 times the limit
    bomb = deflate(b"\0" * inflated)
    assert len(bomb) < SMALL_LIMIT // 2  # the frame itself is well within the limit
    peer = deflate_client(hserver)
    try:
        with _tracemalloc_lock:
            tracemalloc.start()
            try:
                tracemalloc.reset_peak()
                peer.send(frame_bytes(Opcode.BINARY, bomb, rsv1=True))
                close = peer.recv_close(timeout=10)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
        assert close.code == 1009
        # The server stopped inflating at the limit: nothing near 32 MiB was allocated.
        assert peak < 8 * 2**20, f"peak Python allocation {peak} bytes while handling the bomb"
        peer.wait_eof()
    finally:
        peer.close()


def test_fragmented_decompression_bomb_closes_1009(hserver: RunningServer, bystander: ClientConnection) -> None:
    # Each fragment inflates to half the limit; the third one crosses it.
    chunk = b"A" * (SMALL_LIMIT // 2)
    compressor = zlib.compressobj(zlib.Z_BEST_COMPRESSION, zlib.DEFLATED, -15)
    peer = deflate_client(hserver)
    try:
        for index in range(8):
            data = compressor.compress(chunk) + compressor.flush(zlib.Z_SYNC_FLUSH)
            # Only a message's last frame drops the 00 00 ff ff tail (RFC 7692 7.2.1).
            frame = frame_bytes(Opcode.TEXT if index == 0 else Opcode.CONT, data, fin=False, rsv1=index == 0)
            try:
                peer.send(frame)
            except OSError:
                break  # the server already closed
        expect_close(peer, 1009)
    finally:
        peer.close()


# -- fragments, control frames, sequencing ---------------------------------------------


def test_fragments_that_never_end_close_1009(hserver: RunningServer, bystander: ClientConnection) -> None:
    peer = raw(hserver)
    try:
        assert peer.upgrade("/small-deflate") == 101
        peer.send_frame(Opcode.BINARY, b"x" * 1024, fin=False)
        for _ in range(200):  # 200 KiB in all, far past the 64 KiB limit
            try:
                peer.send_frame(Opcode.CONT, b"x" * 1024, fin=False)
            except OSError:
                break
        expect_close(peer, 1009)
    finally:
        peer.close()


@pytest.mark.parametrize("opcode", [Opcode.PING, Opcode.PONG, Opcode.CLOSE])
def test_control_frame_over_125_bytes_closes_1002(
    hserver: RunningServer, bystander: ClientConnection, opcode: Opcode
) -> None:
    peer = raw(hserver)
    try:
        assert peer.upgrade("/echo") == 101
        payload = struct.pack("!H", 1000) + b"r" * 124 if opcode is Opcode.CLOSE else b"p" * 126
        # Serialized by hand: websockets refuses to build such a frame.
        peer.send(frame_bytes(opcode, payload))
        expect_close(peer, 1002)
    finally:
        peer.close()


def test_fragmented_control_frame_closes_1002(hserver: RunningServer, bystander: ClientConnection) -> None:
    peer = raw(hserver)
    try:
        assert peer.upgrade("/echo") == 101
        peer.send(frame_bytes(Opcode.PING, b"hi", fin=False))
        expect_close(peer, 1002)
    finally:
        peer.close()


@pytest.mark.parametrize(
    "frames",
    [
        [Frame(Opcode.TEXT, b"one", fin=False), Frame(Opcode.BINARY, b"two")],
        [Frame(Opcode.TEXT, b"one", fin=False), Frame(Opcode.TEXT, b"two", fin=False)],
        [Frame(Opcode.CONT, b"orphan")],
        [Frame(Opcode.BINARY, b"done"), Frame(Opcode.CONT, b"after the end")],
    ],
    ids=["text-then-binary", "text-then-text", "orphan-continuation", "continuation-after-fin"],
)
def test_interleaved_fragments_close_1002(
    hserver: RunningServer, bystander: ClientConnection, frames: list[Frame]
) -> None:
    peer = raw(hserver)
    try:
        assert peer.upgrade("/echo") == 101
        for frame in frames:
            peer.send(frame_bytes(frame.opcode, bytes(frame.data), fin=frame.fin))
        expect_close(peer, 1002)
    finally:
        peer.close()


def test_ping_between_fragments_is_answered_and_the_message_kept(
    hserver: RunningServer, bystander: ClientConnection
) -> None:
    peer = raw(hserver)
    try:
        assert peer.upgrade("/echo") == 101
        peer.send_frame(Opcode.TEXT, b"frag", fin=False)
        peer.send_frame(Opcode.PING, b"in between")
        peer.send_frame(Opcode.CONT, b"mented")
        received = [peer.recv_frame(), peer.recv_frame()]
        assert [(f.opcode, f.data) for f in received if f is not None] == [
            (Opcode.PONG, b"in between"),
            (Opcode.TEXT, b"fragmented"),
        ]
    finally:
        peer.close()


@pytest.mark.parametrize(
    "first_byte",
    [0x83, 0x8B, 0xA1, 0x91, 0xC1],
    ids=["opcode-3", "opcode-0xB", "rsv2", "rsv3", "rsv1-without-deflate"],
)
def test_reserved_opcodes_and_bits_close_1002(
    hserver: RunningServer, bystander: ClientConnection, first_byte: int
) -> None:
    peer = raw(hserver)
    try:
        assert peer.upgrade("/echo") == 101
        peer.send(bytes([first_byte, 0x80, 0, 0, 0, 0]))
        expect_close(peer, 1002)
    finally:
        peer.close()


@pytest.mark.parametrize(
    ("header", "codes"),
    [
        (bytes([0x82, 0xFF]) + struct.pack("!Q", 2**63), (1002, 1009)),  # MSB set: invalid (RFC 6455 5.2)
        (bytes([0x82, 0xFF]) + struct.pack("!Q", SMALL_LIMIT + 1), (1009,)),
    ],
    ids=["64-bit-msb-set", "64-bit-over-limit"],
)
def test_oversized_frame_headers_close_before_the_payload(
    hserver: RunningServer, bystander: ClientConnection, header: bytes, codes: tuple[int, ...]
) -> None:
    peer = raw(hserver)
    try:
        assert peer.upgrade("/small-deflate") == 101
        # Only the header and the mask: the server must not wait for the payload.
        peer.send(header + b"\x00\x00\x00\x00")
        expect_close(peer, *codes)
    finally:
        peer.close()


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"\x03", 1002),  # one byte: no room for a code
        (struct.pack("!H", 999), 1002),
        (struct.pack("!H", 1005), 1002),  # reserved: never on the wire
        (struct.pack("!H", 1006), 1002),
        (struct.pack("!H", 5000), 1002),
        (struct.pack("!H", 1000) + b"\xff\xfe", 1007),  # reason not UTF-8
    ],
    ids=["one-byte", "999", "1005", "1006", "5000", "bad-utf8-reason"],
)
def test_invalid_close_frames(hserver: RunningServer, bystander: ClientConnection, payload: bytes, code: int) -> None:
    peer = raw(hserver)
    try:
        assert peer.upgrade("/echo") == 101
        peer.send_frame(Opcode.CLOSE, payload)
        expect_close(peer, code)
    finally:
        peer.close()


def test_garbage_after_the_handshake_closes_only_that_connection(
    hserver: RunningServer, bystander: ClientConnection
) -> None:
    peer = raw(hserver)
    try:
        # An HTTP request where frames should be: unmasked, reserved bits, nonsense.
        assert peer.upgrade("/echo", extra=b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") == 101
        close = peer.recv_close(timeout=10)
        assert close.code in (1002, 1009)
    finally:
        peer.close()
