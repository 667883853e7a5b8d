"""Differential tests: the fast path for small frames equals websockets' parser.

The same bytes, in the same pieces, go to a protocol with the fast path and
to one without it; after every piece both must have produced the same
messages, the same bytes to send, the same state and the same close frames.
The frames are drawn to sit on the fast path's edges: lengths around 125/126
and 65535, every opcode and RSV combination, unmasked frames, invalid UTF-8,
fragments, control frames in between, a size limit, and plain noise.
"""

from __future__ import annotations

import contextlib
import struct
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.examples import examples
from ws4py_integrations.events import Message
from ws4py_integrations.protocol import MessageProtocol

from .helpers import accept

LIMIT = 4096


def protocol(fast: bool, limit: int | None = LIMIT) -> MessageProtocol:
    proto = MessageProtocol.accepted(accept(), limit)
    proto.fast_path = fast
    return proto


@st.composite
def frames(draw: Any) -> bytes:
    """One frame, mostly well-formed, sometimes not."""
    opcode = draw(st.sampled_from([0x0, 0x1, 0x1, 0x2, 0x2, 0x8, 0x9, 0xA, 0x3, 0xB]))
    fin = draw(st.booleans()) if opcode in (0x0, 0x1, 0x2) else True
    rsv = draw(st.sampled_from([0, 0, 0, 0, 0x40, 0x20, 0x10]))
    masked = draw(st.sampled_from([True, True, True, True, False]))
    kind = draw(st.sampled_from(["text", "text", "binary", "bad-utf8", "split-utf8"]))
    size = draw(st.sampled_from([0, 1, 5, 124, 125, 126, 127, 300, LIMIT, LIMIT + 1, 65535, 65536]))
    if opcode in (0x8, 0x9, 0xA):
        size = min(size, draw(st.sampled_from([0, 2, 5, 125, 126])))
    if kind == "text":
        payload = ("é" * size).encode()[:size]
        payload = payload.decode(errors="ignore").encode()
    elif kind == "binary":
        payload = bytes(i % 251 for i in range(size))
    elif kind == "bad-utf8":
        payload = b"a" * max(size - 1, 0) + b"\xff"
    else:
        payload = "é".encode()[:1] * min(size, 1)
    if opcode == 0x8 and payload and draw(st.booleans()):
        payload = struct.pack("!H", draw(st.sampled_from([1000, 1001, 1002, 1005, 999, 3000, 5000]))) + payload[:20]
    mask = draw(st.binary(min_size=4, max_size=4))
    head = (0x80 if fin else 0) | rsv | opcode
    length = len(payload)
    mask_bit = 0x80 if masked else 0
    if length < 126 and not draw(st.booleans()):
        header = bytes((head, mask_bit | length))
    elif length < 65536:
        header = struct.pack("!BBH", head, mask_bit | 126, length)
    else:
        header = struct.pack("!BBQ", head, mask_bit | 127, length)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload)) if masked else payload
    return header + (mask if masked else b"") + body


@st.composite
def good_frames(draw: Any) -> bytes:
    """A well-formed, unfragmented data frame at a size edge (the fast path's own ground)."""
    size = draw(st.sampled_from([0, 1, 125, 126, LIMIT - 1, LIMIT, LIMIT + 1, 65535]))
    text = draw(st.booleans())
    payload = b"x" * size if text else bytes(i % 256 for i in range(size))
    if text and draw(st.integers(0, 9)) == 0 and size:
        payload = payload[:-1] + b"\xc3"  # a truncated character: invalid UTF-8
    mask = draw(st.binary(min_size=4, max_size=4))
    head = 0x81 if text else 0x82
    header = bytes((head, 0x80 | size)) if size < 126 else struct.pack("!BBH", head, 0x80 | 126, size)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


@st.composite
def streams(draw: Any) -> tuple[bytes, list[int]]:
    """Frames (or noise) and where to cut them into pieces."""
    parts = draw(
        st.lists(st.one_of(good_frames(), good_frames(), frames(), frames(), st.binary(max_size=12)), max_size=12)
    )
    data = b"".join(parts)
    cuts = sorted(draw(st.lists(st.integers(min_value=0, max_value=max(len(data), 1)), max_size=6)))
    return data, cuts


def observe(proto: MessageProtocol) -> tuple[Any, ...]:
    inbox, proto.inbox = proto.inbox, []
    rcvd = proto.close_rcvd and (proto.close_rcvd.code, proto.close_rcvd.reason)
    sent = proto.close_sent and (proto.close_sent.code, proto.close_sent.reason)
    return (inbox, proto.data_to_send(), proto.state, rcvd, sent)


def feed_both(data: bytes, cuts: list[int], limit: int | None) -> None:
    fast, slow = protocol(True, limit), protocol(False, limit)
    start = 0
    for cut in [*cuts, len(data)]:
        piece = data[start:cut]
        start = max(start, cut)
        if not piece:
            continue
        for proto in (fast, slow):
            # Both raise it for data after the stream ended; the states are compared below.
            with contextlib.suppress(EOFError):
                proto.receive_data(piece)
        assert observe(fast) == observe(slow)
    fast.receive_eof()
    slow.receive_eof()
    assert observe(fast) == observe(slow)


@settings(
    max_examples=examples(600), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(streams())
def test_the_fast_path_equals_the_parser(stream: tuple[bytes, list[int]]) -> None:
    data, cuts = stream
    feed_both(data, cuts, LIMIT)


@settings(
    max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(streams())
def test_the_fast_path_equals_the_parser_without_a_size_limit(stream: tuple[bytes, list[int]]) -> None:
    data, cuts = stream
    feed_both(data, cuts, None)


def test_the_fast_path_takes_the_common_case() -> None:
    # Several small masked frames in one read: all of them without the parser.
    proto = protocol(True)
    mask = b"\x01\x02\x03\x04"
    frame = bytes((0x81, 0x80 | 5)) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(b"hello"))
    parsed = []
    original = proto._parse_fast

    def spy(data: bytes | bytearray, max_messages: int | None = None) -> bytes | bytearray:
        rest = original(data, max_messages)
        parsed.append(len(data) - len(rest))
        return rest

    proto._parse_fast = spy  # type: ignore[method-assign]
    proto.receive_data(frame * 3)
    assert proto.inbox == [Message("hello")] * 3
    assert parsed == [len(frame) * 3]
    assert proto.data_to_send() == []


def test_the_fast_path_stops_at_a_message_budget() -> None:
    proto = protocol(True)
    mask = b"\x01\x02\x03\x04"
    frame = bytes((0x82, 0x80 | 2)) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(b"ab"))
    rest = proto.receive_some(frame * 5, 2)
    assert proto.inbox == [Message(b"ab")] * 2
    assert rest == frame * 3  # given back unparsed; the parser has seen none of it
    proto.inbox = []
    assert proto.receive_some(rest, None) == b""
    assert proto.inbox == [Message(b"ab")] * 3


def feed_budgeted(data: bytes, cuts: list[int], budget: int) -> None:
    """As Connection does under backpressure: at most ``budget`` messages per call,
    the rest given back first next time. The outcome must equal the parser's."""
    fast, slow = protocol(True), protocol(False)
    fast_seen: list[Any] = []
    slow_seen: list[Any] = []
    held: bytes | bytearray = b""
    start = 0
    for cut in [*cuts, len(data)]:
        piece, start = data[start:cut], max(start, cut)
        with contextlib.suppress(EOFError):
            slow.receive_data(piece)
        held = bytes(held) + piece
        for _ in range(len(held) + 1):  # each call takes a message or ends the loop
            with contextlib.suppress(EOFError):
                held = fast.receive_some(held, budget)
            fast_seen.append(observe(fast))
            if not held:
                break
        slow_seen.append(observe(slow))
    fast.receive_eof()
    slow.receive_eof()
    fast_seen.append(observe(fast))
    slow_seen.append(observe(slow))

    def total(seen: list[Any]) -> tuple[Any, ...]:
        messages = [m for step in seen for m in step[0]]
        sent = [b for step in seen for b in step[1]]
        return messages, sent, seen[-1][2:]

    assert total(fast_seen) == total(slow_seen)


@settings(
    max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(streams(), st.integers(min_value=1, max_value=3))
def test_a_message_budget_changes_nothing_but_timing(stream: tuple[bytes, list[int]], budget: int) -> None:
    data, cuts = stream
    feed_budgeted(data, cuts, budget)
