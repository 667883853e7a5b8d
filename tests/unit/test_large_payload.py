"""Large payloads received in place (``MessageProtocol.payload_target``).

The rest of a large binary payload goes straight from the socket into a
buffer of its own: a view of an anonymous mapping, or a bytearray for payloads
over ``SPARE_MAX`` (and where there are no mappings); every test runs both ways.
Differential tests: the same bytes, cut the same way, go
to a protocol fed in place and to one fed with ``receive_data`` only (the
parser's path, itself proven equal to websockets' in test_fast_path); after
every piece both must show the same messages, bytes to send, state and close
frames. Then the memory bounds, and the path through a real socket.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import mmap
import socket
import struct
import sys
import threading
import tracemalloc
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.examples import examples
from ws4py_integrations import protocol as protocol_module
from ws4py_integrations.connection import Connection
from ws4py_integrations.protocol import LARGE_PAYLOAD, SPARE_MAX, TARGET_START, MessageProtocol

from .helpers import OP_BINARY, OP_CONT, OP_TEXT, FakeBackend, Recorder, client_frame, make_connection, socket_pair

LIMIT = 1 << 20
# Where payloads go into a mapping (before the fixture below turns it off).
MAPPING_OFFSET = protocol_module._REGION_OFFSET
NO_TIMERS: dict[str, Any] = {"ping_interval": None, "read_timeout": None}


@pytest.fixture(autouse=True, params=["mapping", "bytearray"])
def buffers(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    # Each test starts without the process's spare payload buffers.
    monkeypatch.setattr(protocol_module, "_spare", [])
    monkeypatch.setattr(protocol_module, "_spare_regions", [])
    if request.param == "bytearray":
        monkeypatch.setattr(protocol_module, "_REGION_OFFSET", None)
    return str(request.param)


def frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bytes = b"\x9a\x01\xff\x42") -> bytes:
    return client_frame(opcode, payload, fin=fin, mask=mask)


def pattern(size: int, seed: int = 0) -> bytes:
    return bytes((i * 7 + seed) % 256 for i in range(256)) * (size // 256) + bytes(size % 256)


def protocol(limit: int | None = LIMIT) -> MessageProtocol:
    from .helpers import accept

    proto = MessageProtocol.accepted(accept(), limit)
    proto.fast_path = False
    return proto


def observe(proto: MessageProtocol) -> tuple[Any, ...]:
    inbox, proto.inbox = proto.inbox, []
    rcvd = proto.close_rcvd and (proto.close_rcvd.code, proto.close_rcvd.reason)
    sent = proto.close_sent and (proto.close_sent.code, proto.close_sent.reason)
    return (inbox, proto.data_to_send(), proto.state, rcvd, sent)


def feed_in_place(proto: MessageProtocol, piece: bytes, step: int, mixed: bool) -> int:
    """Feed ``piece`` as Connection.read does: into payload_target() when it offers
    a view (at most ``step`` bytes per "recv"), else with receive_data. With
    ``mixed``, every other in-place read goes through receive_data instead
    (bytes a server read before the payload started). How many went in place."""
    in_place = 0
    turn = 0
    while piece:
        target = proto.payload_target()
        turn += 1
        if target is None or (mixed and turn % 2 == 0):
            if target is not None:
                target.release()
            n = len(piece) if target is None else min(step, len(piece))
            with contextlib.suppress(EOFError):
                proto.receive_data(piece[:n])
            piece = piece[n:]
            continue
        with target:
            n = min(len(target), step, len(piece))
            target[:n] = piece[:n]
        proto.payload_received(n)
        piece = piece[n:]
        in_place += n
    return in_place


def feed_both(data: bytes, cuts: list[int], step: int, mixed: bool = False, limit: int | None = LIMIT) -> int:
    fast, slow = protocol(limit), protocol(limit)
    start, in_place = 0, 0
    for cut in [*cuts, len(data)]:
        piece = data[start:cut]
        start = max(start, cut)
        if not piece:
            continue
        in_place += feed_in_place(fast, piece, step, mixed)
        with contextlib.suppress(EOFError):
            slow.receive_data(piece)
        assert observe(fast) == observe(slow)
    fast.receive_eof()
    slow.receive_eof()
    assert observe(fast) == observe(slow)
    return in_place


SIZES = [LARGE_PAYLOAD - 1, LARGE_PAYLOAD, LARGE_PAYLOAD + 1, TARGET_START + 3, 4 * TARGET_START + 5]


@st.composite
def pieces(draw: Any) -> bytes:
    """A large binary message (maybe fragmented, control frames between the
    fragments), a small message, a large text frame, or noise."""
    kind = draw(st.sampled_from(["large", "large", "fragmented", "small", "text", "close", "noise", "toobig"]))
    mask: bytes = draw(st.binary(min_size=4, max_size=4))
    if kind == "large":
        return frame(OP_BINARY, pattern(draw(st.sampled_from(SIZES)), 1), mask=mask)
    if kind == "fragmented":
        sizes = draw(st.lists(st.sampled_from([0, 5, *SIZES[:4]]), min_size=2, max_size=3))
        controls = [b"", frame(0x9, b"ping"), frame(0xA, b"pong"), frame(0x8, struct.pack("!H", 1000))]
        out = b""
        for i, size in enumerate(sizes):
            last = i == len(sizes) - 1
            out += frame(OP_CONT if i else OP_BINARY, pattern(size, i), fin=last, mask=mask)
            if not last:
                out += draw(st.sampled_from(controls))
        return out
    if kind == "small":
        return frame(OP_BINARY, b"abc", mask=mask)
    if kind == "text":
        return frame(OP_TEXT, b"t" * draw(st.sampled_from([LARGE_PAYLOAD, TARGET_START + 1])), mask=mask)
    if kind == "close":
        return frame(0x8, struct.pack("!H", 1001))
    if kind == "toobig":
        return struct.pack("!BBQ", 0x82, 0xFF, LIMIT + 1) + mask + b"\0" * 100
    noise: bytes = draw(st.binary(max_size=12))
    return noise


@st.composite
def streams(draw: Any) -> tuple[bytes, list[int], int, bool]:
    data = b"".join(draw(st.lists(pieces(), min_size=1, max_size=4)))
    cuts = sorted(draw(st.lists(st.integers(min_value=0, max_value=len(data)), max_size=8)))
    step = draw(st.sampled_from([1 << 10, 65536, 300_000, 1 << 21]))
    return data, cuts, step, draw(st.booleans())


@settings(
    max_examples=examples(120), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(streams())
def test_receiving_in_place_equals_the_parser(stream: tuple[bytes, list[int], int, bool]) -> None:
    data, cuts, step, mixed = stream
    feed_both(data, cuts, step, mixed)


def test_a_large_payload_split_at_every_boundary_of_its_frame() -> None:
    # Header, extended length, mask and payload cut at every byte around
    # them, a ping and a close between the fragments: all equal to the parser,
    # and the payload itself (past the first piece) received in place.
    first = frame(OP_BINARY, pattern(LARGE_PAYLOAD + 10, 3), fin=False)
    rest = frame(0x9, b"hi") + frame(OP_CONT, pattern(TARGET_START + 1, 4)) + frame(0x8, struct.pack("!H", 1000))
    data = first + rest
    edges = [*range(0, 20), *range(len(first) - 3, len(first) + 30), len(data) - 5]
    for cut in edges:
        # A second cut inside the first payload: what follows it arrives in place.
        in_place = feed_both(data, sorted([cut, 1014]), 1 << 20)
        assert in_place >= len(first) - max(cut, 1014) - 1


def test_a_payload_in_many_small_reads() -> None:
    payload = pattern(3 * TARGET_START + 7, 5)
    proto = protocol()
    data = frame(OP_BINARY, payload)
    in_place = feed_in_place(proto, data[:100], 100, False) + feed_in_place(proto, data[100:], 4096, False)
    assert in_place == len(data) - 100
    assert [m.data for m in proto.inbox] == [payload]
    assert type(proto.inbox[0].data) is bytes


def test_an_oversized_announcement_is_refused_before_any_allocation() -> None:
    proto = protocol()
    tracemalloc.start()
    try:
        proto.receive_data(struct.pack("!BBQ", 0x82, 0xFF, 1 << 30) + b"mask")
        assert proto.payload_target() is None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024
    assert observe(proto)[4] == (1009, "frame with 1073741824 bytes exceeds limit of 1048576 bytes")


@pytest.mark.parametrize("limit", [1 << 30, None])
def test_an_announced_length_alone_reserves_little(limit: int | None) -> None:
    # 14 bytes announcing 1 GiB (within the limit, or without one): the buffer
    # grows with what arrives, not with what was announced.
    proto = protocol(limit)
    proto.receive_data(struct.pack("!BBQ", 0x82, 0xFF, 1 << 30) + b"mask")
    tracemalloc.start()
    try:
        target = proto.payload_target()
        assert target is not None and len(target) == TARGET_START
        target.release()
        proto.payload_received(TARGET_START)
        target = proto.payload_target()
        assert target is not None and len(target) == 3 * TARGET_START
        target.release()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * TARGET_START  # the grown buffer, the old one and the zeros it grew by
    proto.release()
    assert proto.reader.target is None  # type: ignore[attr-defined]


def resident_kib(region: mmap.mmap) -> int:
    """How much of ``region`` is resident (mincore(2)): the kernel may merge
    neighbouring mappings, so /proc/self/smaps cannot tell it apart."""
    libc = ctypes.CDLL(None, use_errno=True)
    pages = (len(region) + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    vector = (ctypes.c_ubyte * pages)()
    start = ctypes.c_void_p(ctypes.addressof(ctypes.c_char.from_buffer(region)))
    assert libc.mincore(start, ctypes.c_size_t(len(region)), vector) == 0, ctypes.get_errno()
    return sum(byte & 1 for byte in vector) * mmap.PAGESIZE // 1024


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mincore(2) through Linux's C library")
def test_a_mapping_becomes_resident_only_as_the_payload_arrives(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(protocol_module, "_REGION_OFFSET", MAPPING_OFFSET)
    proto = protocol(SPARE_MAX)
    # 14 bytes announcing the largest payload a mapping takes.
    proto.receive_data(struct.pack("!BBQ", 0x82, 0xFF, SPARE_MAX) + b"mask")
    target = proto.payload_target()
    assert target is not None and len(target) == SPARE_MAX
    region = target.obj
    assert isinstance(region, mmap.mmap)
    assert resident_kib(region) == 0  # the announcement alone: address space, no memory
    with target:
        target[:TARGET_START] = b"x" * TARGET_START
    proto.payload_received(TARGET_START)
    assert TARGET_START // 1024 <= resident_kib(region) <= TARGET_START // 1024 + 8
    proto.release()


def test_the_spare_buffer_is_reused_cut_and_grown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(protocol_module, "_REGION_OFFSET", None)
    proto = protocol(None)
    sizes = [TARGET_START + 5, LARGE_PAYLOAD, 3 * TARGET_START, SPARE_MAX + 1, TARGET_START]
    for i, size in enumerate(sizes):
        payload = pattern(size, i)
        data = frame(OP_BINARY, payload)
        feed_in_place(proto, data[:1000], 1000, False)
        assert feed_in_place(proto, data[1000:], 1 << 20, False) == len(data) - 1000
        assert proto.inbox[-1].data == payload
        # Kept after a payload up to SPARE_MAX (the first spare from the loop before).
        assert [len(spare) for spare in protocol_module._spare] == ([] if size > SPARE_MAX else [size])
    spare = protocol_module._spare[0]
    proto.receive_data(frame(OP_BINARY, pattern(LARGE_PAYLOAD))[:1000])
    target = proto.payload_target()
    assert target is not None and protocol_module._spare == []
    assert proto.reader.target is spare  # type: ignore[attr-defined]
    target.release()


def test_payloads_up_to_spare_max_go_into_one_reused_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    offset = MAPPING_OFFSET
    assert offset is not None and 0 < offset < mmap.PAGESIZE
    monkeypatch.setattr(protocol_module, "_REGION_OFFSET", offset)
    proto = protocol(None)
    mappings = []
    for i, size in enumerate([LARGE_PAYLOAD, SPARE_MAX, TARGET_START + 1, SPARE_MAX + 1]):
        payload = pattern(size, i)
        data = frame(OP_BINARY, payload)
        feed_in_place(proto, data[:20], 20, False)
        target = proto.payload_target()
        assert target is not None
        mappings.append(target.obj)
        if size <= SPARE_MAX:
            assert isinstance(target.obj, mmap.mmap) and len(target) == size - 6
            # The payload's first byte sits at the chosen offset into a page
            # (a mapping starts on a page boundary).
            start = memoryview(target.obj)[offset:]
            assert ctypes.addressof(ctypes.c_char.from_buffer(start)) % mmap.PAGESIZE == offset
            start.release()
        else:
            assert isinstance(target.obj, bytearray)  # grown as it fills
        target.release()
        assert feed_in_place(proto, data[20:], 1 << 20, False) == len(data) - 20
        assert proto.inbox[-1].data == payload and type(proto.inbox[-1].data) is bytes
    # One mapping for all three, kept as the spare.
    assert mappings[0] is mappings[1] is mappings[2]
    assert protocol_module._spare_regions == [mappings[0]]


def test_a_refused_mapping_falls_back_to_a_bytearray(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(protocol_module, "_REGION_OFFSET", MAPPING_OFFSET)

    def refuse(*args: Any, **kwargs: Any) -> mmap.mmap:
        raise OSError(errno.ENOMEM, "Cannot allocate memory")

    monkeypatch.setattr(mmap, "mmap", refuse)
    proto = protocol()
    payload = pattern(TARGET_START + 9, 2)
    data = frame(OP_BINARY, payload)
    feed_in_place(proto, data[:20], 20, False)
    target = proto.payload_target()
    assert target is not None and isinstance(target.obj, bytearray)
    target.release()
    feed_in_place(proto, data[20:], 1 << 20, False)
    assert [m.data for m in proto.inbox] == [payload]


def test_text_and_small_payloads_are_not_received_in_place() -> None:
    proto = protocol()
    proto.receive_data(frame(OP_TEXT, b"t" * (2 * LARGE_PAYLOAD))[:1000])
    assert proto.payload_target() is None  # validated as it arrives (8.1)
    proto = protocol()
    proto.receive_data(frame(OP_BINARY, b"b" * (LARGE_PAYLOAD - 1))[:1000])
    assert proto.payload_target() is None
    proto = protocol()
    proto.receive_data(frame(OP_BINARY, b"b" * LARGE_PAYLOAD)[:1000])
    target = proto.payload_target()
    assert target is not None and len(target) == LARGE_PAYLOAD - (1000 - 14)
    target.release()


# -- through a real socket -----------------------------------------------------------------------


def read_until(conn: Connection, done: Any, limit: int = 10_000) -> None:
    import select

    for _ in range(limit):
        if done():
            return
        select.select([conn.sock], [], [], 5.0)
        conn.read()
    raise AssertionError("never done")


def test_connection_receives_a_large_message_in_place_and_echoes_it() -> None:
    backend = FakeBackend()
    payload = pattern(LIMIT, 9)
    data = frame(OP_BINARY, payload, fin=False) + frame(0x9, b"p") + frame(OP_CONT, payload[:1000])
    with socket_pair() as (server, client):
        conn = make_connection(server, backend, max_message_size=2 * LIMIT, **NO_TIMERS)
        conn.start(b"")
        calls = []
        real = conn.protocol.payload_received

        def spy(n: int) -> None:
            calls.append(n)
            real(n)

        conn.protocol.payload_received = spy  # type: ignore[method-assign]
        sender = threading.Thread(target=client.sendall, args=(data,))
        sender.start()
        ws = conn.websocket
        assert isinstance(ws, Recorder)
        try:
            read_until(conn, lambda: backend.run_scheduled() >= 0 and any(e[0] == "message" for e in ws.events))
        finally:
            sender.join(10)
        assert [e for e in ws.events if e[0] == "message"] == [("message", payload + payload[:1000])]
        assert conn.bytes_in == len(data)
        assert sum(calls) > LIMIT // 2
        # The pong went out.
        client.settimeout(5.0)
        assert client.recv(16) == b"\x8a\x01p"
        client.shutdown(socket.SHUT_WR)
        read_until(conn, lambda: conn.finalized)


def test_connection_dropped_mid_payload_reports_1006_and_frees_the_buffer() -> None:
    backend = FakeBackend()
    with socket_pair() as (server, client):
        conn = make_connection(server, backend, **NO_TIMERS)
        conn.start(b"")
        sender = threading.Thread(target=client.sendall, args=(frame(OP_BINARY, pattern(LIMIT))[: LIMIT // 2],))
        sender.start()
        try:
            read_until(conn, lambda: conn.bytes_in == LIMIT // 2)
        finally:
            sender.join(10)
        assert conn.protocol.reader.target is not None  # type: ignore[attr-defined]
        client.shutdown(socket.SHUT_WR)
        read_until(conn, lambda: conn.finalized)
        backend.run_scheduled()
        ws = conn.websocket
        assert isinstance(ws, Recorder)
        assert ws.events[-1] == ("closed", 1006, "")
        assert conn.protocol.reader.target is None  # type: ignore[attr-defined]


def test_after_a_large_payload_the_next_header_is_read_alone() -> None:
    # The next large payload then goes in place whole; a small frame after it
    # arrives intact and turns full reads back on.
    backend = FakeBackend()
    first, second = pattern(LIMIT // 2, 1), pattern(LIMIT // 2 + 3, 2)
    with socket_pair() as (server, client):
        conn = make_connection(server, backend, **NO_TIMERS)
        conn.start(b"")
        ws = conn.websocket
        assert isinstance(ws, Recorder)
        calls: list[int] = []
        real = conn.protocol.payload_received

        def spy(n: int) -> None:
            calls.append(n)
            real(n)

        conn.protocol.payload_received = spy  # type: ignore[method-assign]

        def messages() -> list[Any]:
            backend.run_scheduled()
            return [e[1] for e in ws.events if e[0] == "message"]

        for payload, count in ((first, 1), (second, 2)):
            calls.clear()
            sender = threading.Thread(target=client.sendall, args=(frame(OP_BINARY, payload),))
            sender.start()
            try:
                read_until(conn, lambda count=count: len(messages()) == count)
            finally:
                sender.join(10)
        assert conn.protocol.large_next
        assert sum(calls) == len(second)  # all of it in place, none through the receive buffer
        client.sendall(frame(OP_BINARY, b"small") + frame(OP_TEXT, b"text"))
        read_until(conn, lambda: len(messages()) == 4)
        assert messages() == [first, second, b"small", "text"]
        assert not conn.protocol.large_next


def test_bytes_fed_while_a_payload_is_received_in_place_fill_it_first() -> None:
    # Bytes that come through receive_data meanwhile (a server's buffered
    # bytes): the payload's part goes into its buffer, the rest is parsed after.
    payload = pattern(TARGET_START + 100, 6)
    data = frame(OP_BINARY, payload) + frame(OP_TEXT, b"after") + frame(0x9, b"p")
    proto = protocol()
    proto.receive_data(data[:1000])
    target = proto.payload_target()
    assert target is not None
    with target:
        target[:5000] = data[1000:6000]
    proto.payload_received(5000)
    proto.receive_data(data[6000:7000])
    assert proto.inbox == [] and proto.reader.target is not None  # type: ignore[attr-defined]
    proto.receive_data(data[7000:])
    assert [m.data for m in proto.inbox] == [payload, "after"]
    assert proto.data_to_send() == [b"\x8a\x01p"]
    # Exactly the payload's end: nothing left to parse.
    proto = protocol()
    proto.receive_data(data[:1000])
    target = proto.payload_target()
    assert target is not None
    target.release()
    proto.receive_data(data[1000 : len(data) - 18])
    assert [m.data for m in proto.inbox] == [payload]
    assert proto.reader.target is None and not proto.reader.buffer  # type: ignore[attr-defined]


def test_a_compressed_payload_is_received_in_place_then_inflated() -> None:
    import os
    import zlib

    from .helpers import accept

    payload = os.urandom(2 * LARGE_PAYLOAD)  # incompressible: stays large
    compressor = zlib.compressobj(wbits=-15)
    body = (compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
    data = bytearray(frame(OP_BINARY, body))
    data[0] |= 0x40  # RSV1: compressed (RFC 7692)
    protos = []
    for in_place in (True, False):
        the_accept = accept(HTTP_SEC_WEBSOCKET_EXTENSIONS="permessage-deflate")
        proto = MessageProtocol.accepted(the_accept, LIMIT)
        proto.receive_data(bytes(data[:1000]))
        if in_place:
            assert feed_in_place(proto, bytes(data[1000:]), 1 << 20, False) == len(data) - 1000
        else:
            proto.receive_data(bytes(data[1000:]))
        protos.append(proto)
    seen = observe(protos[0])
    assert seen == observe(protos[1])
    assert [m.data for m in seen[0]] == [payload]
