"""MessageProtocol at the byte level: masked client frames in, messages and exact frames out."""

from __future__ import annotations

import pytest
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from ws4py_integrations._websockets import SIZE_ATTRIBUTE, fragmented_size
from ws4py_integrations.events import Message, Pong
from ws4py_integrations.protocol import MessageProtocol

from .helpers import (
    OP_BINARY,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    accept,
    client_close,
    client_frame,
    server_close,
    server_frame,
)

EOF_MARK = b""  # what data_to_send() returns for "half-close the TCP connection"


def protocol(max_size: int | None = 1024, **environ: str) -> MessageProtocol:
    return MessageProtocol.accepted(accept(**environ), max_size)


def feed_bytewise(proto: MessageProtocol, data: bytes) -> int:
    """Feed one byte at a time until the protocol stops being open; how many bytes it took."""
    for index in range(len(data)):
        proto.receive_data(data[index : index + 1])
        if proto.state is not State.OPEN:
            return index + 1
    return len(data)


# -- whole and fragmented messages ----------------------------------------------------------


def test_accepted_starts_open_with_the_handshake_results() -> None:
    proto = protocol(HTTP_SEC_WEBSOCKET_EXTENSIONS="permessage-deflate")
    assert proto.state is State.OPEN
    assert [ext.name for ext in proto.extensions] == ["permessage-deflate"]
    assert proto.subprotocol is None
    assert proto.inbox == []


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (client_frame(OP_TEXT, "héllo".encode()), Message("héllo")),
        (client_frame(OP_BINARY, b"\x00\xff\x80"), Message(b"\x00\xff\x80")),
        (client_frame(OP_TEXT, b""), Message("")),
        (client_frame(OP_BINARY, b"x" * 300), Message(b"x" * 300)),  # 16-bit length
    ],
    ids=["text", "binary", "empty-text", "extended-length"],
)
def test_whole_messages(frame: bytes, message: Message) -> None:
    proto = protocol()
    proto.receive_data(frame)
    assert proto.inbox == [message]
    assert proto.data_to_send() == []


def test_fragmented_text_split_inside_a_character() -> None:
    proto = protocol()
    # "é" is C3 A9: the fragment boundary falls between its two bytes.
    proto.receive_data(client_frame(OP_TEXT, b"caf\xc3", fin=False))
    assert fragmented_size(proto) == 4
    proto.receive_data(client_frame(OP_CONT, b"\xa9 ", fin=False))
    proto.receive_data(client_frame(OP_PING, b"p"))  # control frames may be interleaved (5.4)
    proto.receive_data(client_frame(OP_CONT, b"ok", fin=True))
    assert proto.inbox == [Message("café ok")]
    assert proto.data_to_send() == [server_frame(OP_PONG, b"p")]
    assert fragmented_size(proto) is None


def test_fragmented_binary() -> None:
    proto = protocol()
    proto.receive_data(client_frame(OP_BINARY, b"\x01", fin=False))
    proto.receive_data(client_frame(OP_CONT, b"\x02", fin=False))
    proto.receive_data(client_frame(OP_CONT, b"\x03", fin=True))
    assert proto.inbox == [Message(b"\x01\x02\x03")]


def test_several_frames_in_one_read_and_one_frame_byte_by_byte() -> None:
    proto = protocol()
    proto.receive_data(client_frame(OP_TEXT, b"a") + client_frame(OP_BINARY, b"b") + client_frame(OP_TEXT, b"c")[:3])
    assert proto.inbox == [Message("a"), Message(b"b")]
    proto.receive_data(client_frame(OP_TEXT, b"c")[3:])
    # Valid text fed byte by byte is validated as it arrives and still delivered whole.
    text = "ünïcödé ✓ " * 20
    assert feed_bytewise(proto, client_frame(OP_TEXT, text.encode())) == len(client_frame(OP_TEXT, text.encode()))
    assert proto.inbox == [Message("a"), Message(b"b"), Message("c"), Message(text)]
    assert proto.state is State.OPEN


def test_pings_are_answered_and_pongs_delivered() -> None:
    proto = protocol()
    proto.receive_data(client_frame(OP_PING, b"hi") + client_frame(OP_PONG, b"yo"))
    assert proto.inbox == [Pong(b"yo")]
    assert proto.data_to_send() == [server_frame(OP_PONG, b"hi")]


# -- invalid UTF-8: 1007 at the first fragment that proves it ---------------------------------------


def test_invalid_utf8_in_a_whole_frame() -> None:
    proto = protocol()
    proto.receive_data(client_frame(OP_TEXT, b"ok\xff"))
    assert proto.inbox == []
    assert proto.data_to_send() == [server_close(1007, "invalid start byte at position 2"), EOF_MARK]
    assert proto.state is State.CLOSING


def test_invalid_utf8_in_the_first_fragment_fails_before_the_message_ends() -> None:
    proto = protocol()
    proto.receive_data(client_frame(OP_TEXT, b"\xc0\xaf", fin=False))  # overlong: never valid
    assert proto.data_to_send() == [server_close(1007, "invalid start byte at position 0"), EOF_MARK]


def test_invalid_utf8_inside_a_frame_still_arriving() -> None:
    proto = protocol()
    payload = b"abcdefg\xff" + b"z" * 100
    frame = client_frame(OP_TEXT, payload)
    # 2 header bytes, 4 mask bytes, then the payload: the 8th payload byte proves it.
    assert feed_bytewise(proto, frame) == 2 + 4 + 8
    assert proto.data_to_send() == [server_close(1007, "invalid start byte at position 7"), EOF_MARK]
    assert proto.inbox == []


def test_invalid_utf8_in_a_continuation_still_arriving_continues_the_decoder() -> None:
    proto = protocol()
    proto.receive_data(client_frame(OP_TEXT, b"x\xe2\x82", fin=False))  # "€" begins: E2 82 AC
    cont = client_frame(OP_CONT, b"\xac\xe2\x28" + b"z" * 50, fin=True)
    # E2 followed by 28 is invalid: known at the 3rd payload byte of the continuation.
    assert feed_bytewise(proto, cont) == 2 + 4 + 3
    [close, eof] = proto.data_to_send()
    assert close[:4] == b"\x88" + bytes((len(close) - 2,)) + b"\x03\xef"
    assert close[4:].startswith(b"invalid continuation byte")
    assert eof == EOF_MARK


def test_invalid_utf8_in_a_frame_with_a_16_bit_length_arriving_in_odd_chunks() -> None:
    proto = protocol(max_size=None)
    payload = "é".encode() * 100 + b"\xff" + b"z" * 100
    frame = client_frame(OP_TEXT, payload)
    assert frame[1] & 0x7F == 126
    header = 2 + 2 + 4
    # Chunks that start at payload offsets not multiple of 4 (the mask is
    # rotated), each ending between two characters.
    proto.receive_data(frame[: header + 2])
    proto.receive_data(frame[header + 2 : header + 2])  # nothing new: nothing to validate
    proto.receive_data(frame[header + 2 : header + 102])
    assert proto.state is State.OPEN
    proto.receive_data(frame[header + 102 : header + 206])
    assert proto.data_to_send() == [server_close(1007, "invalid start byte at position 200"), EOF_MARK]


def test_invalid_utf8_position_when_a_chunk_ends_inside_a_character() -> None:
    proto = protocol(max_size=None)
    payload = "é".encode() * 100 + b"\xff" + b"z" * 100
    frame = client_frame(OP_TEXT, payload)
    header = 2 + 2 + 4
    proto.receive_data(frame[: header + 101])  # ends after the first byte of the 51st "é"
    proto.receive_data(frame[header + 101 : header + 205])
    assert proto.data_to_send() == [server_close(1007, "invalid start byte at position 200"), EOF_MARK]


def test_binary_and_unexpected_continuation_frames_are_not_validated_while_arriving() -> None:
    proto = protocol()
    proto.receive_data(client_frame(OP_BINARY, b"\xff" * 20)[:10])
    assert proto.state is State.OPEN
    proto.receive_data(client_frame(OP_BINARY, b"\xff" * 20)[10:])
    assert proto.inbox == [Message(b"\xff" * 20)]
    # A binary message's continuation is not text either.
    proto.receive_data(client_frame(OP_BINARY, b"\xff", fin=False))
    proto.receive_data(client_frame(OP_CONT, b"\xff" * 20)[:10])
    assert proto.state is State.OPEN
    proto.receive_data(client_frame(OP_CONT, b"\xff" * 20)[10:])
    assert proto.inbox[-1] == Message(b"\xff" * 21)
    # A continuation with no message to continue: websockets' 1002 once it is complete.
    frame = client_frame(OP_CONT, b"\xff\xff\xff")
    proto.receive_data(frame[:8])
    assert proto.state is State.OPEN
    proto.receive_data(frame[8:])
    assert proto.data_to_send() == [server_close(1002, "unexpected continuation frame"), EOF_MARK]


# -- closing -----------------------------------------------------------------------------------------


def test_close_is_echoed_and_the_server_half_closes() -> None:
    proto = protocol()
    proto.receive_data(client_close(1000, "bye"))
    assert proto.data_to_send() == [server_close(1000, "bye"), EOF_MARK]
    assert proto.close_rcvd is not None and proto.close_rcvd.code == 1000


def test_close_inside_a_fragmented_message_is_answered_normally() -> None:
    proto = protocol()
    proto.receive_data(client_frame(OP_TEXT, b"abc", fin=False))
    assert getattr(proto, SIZE_ATTRIBUTE) == 3
    proto.receive_data(client_close(1001, "going"))
    # Not websockets' 1002 "incomplete fragmented message": the partial message is dropped.
    assert proto.data_to_send() == [server_close(1001, "going"), EOF_MARK]
    assert proto.inbox == []
    assert fragmented_size(proto) is None
    assert proto.state is State.CLOSING


def test_eof_mid_frame_drops_the_connection_without_a_close_frame() -> None:
    proto = protocol()
    proto.receive_data(client_frame(OP_TEXT, b"hello")[:5])
    proto.receive_eof()
    assert proto.data_to_send() == [EOF_MARK]
    assert proto.state is State.CLOSED
    assert proto.close_rcvd is None and proto.close_sent is None
    assert isinstance(proto.parser_exc, EOFError)


# -- limits ------------------------------------------------------------------------------------------


def test_a_frame_over_max_size_is_1009() -> None:
    proto = protocol(max_size=10)
    proto.receive_data(client_frame(OP_TEXT, b"a" * 11))
    assert proto.data_to_send() == [server_close(1009, "frame with 11 bytes exceeds limit of 10 bytes"), EOF_MARK]


def test_a_fragmented_message_over_max_size_is_1009() -> None:
    proto = protocol(max_size=10)
    proto.receive_data(client_frame(OP_BINARY, b"a" * 6, fin=False))
    proto.receive_data(client_frame(OP_CONT, b"a" * 6, fin=True))
    [close, eof] = proto.data_to_send()
    assert close[2:4] == b"\x03\xf1" and eof == EOF_MARK
    assert proto.inbox == []


def test_many_small_fragments_are_fine_within_the_size_limit() -> None:
    # 102 frames: 101 payload bytes + 102 x 6 bytes of overhead = 713 <= 1000.
    proto = protocol(max_size=1000)
    proto.receive_data(client_frame(OP_TEXT, b"a", fin=False))
    proto.receive_data(b"".join(client_frame(OP_CONT, b"a", fin=False) for _ in range(100)))
    proto.receive_data(client_frame(OP_CONT, b"", fin=True))
    assert proto.inbox == [Message("a" * 101)]


def test_empty_fragments_count_their_overhead_and_end_in_1009() -> None:
    # Millions of empty fragments must not be free: each costs 6 bytes of
    # the limit, so the 167th of these (1002 > 1000) fails the connection.
    proto = protocol(max_size=1000)
    proto.receive_data(client_frame(OP_BINARY, b"", fin=False))
    proto.receive_data(b"".join(client_frame(OP_CONT, b"", fin=False) for _ in range(10_000)))
    assert proto.inbox == []
    close, eof = proto.data_to_send()
    assert (close[0], close[2:4], eof) == (0x88, b"\x03\xf1", b"")  # Close 1009, then the half-close
    assert proto.close_sent is not None and proto.close_sent.code == 1009


# -- permessage-deflate ------------------------------------------------------------------------------


def deflate_client() -> PerMessageDeflate:
    """The client's half of a default permessage-deflate negotiation."""
    return PerMessageDeflate(False, False, 15, 15)


def test_permessage_deflate_round_trip() -> None:
    proto = protocol(HTTP_SEC_WEBSOCKET_EXTENSIONS="permessage-deflate")
    client_ext = deflate_client()
    text = "compress me " * 50
    wire = Frame(Opcode.TEXT, text.encode()).serialize(mask=True, extensions=[client_ext])
    assert wire[0] == 0xC1  # FIN + RSV1 + text: compressed
    # Fragmented and compressed: RSV1 on the first frame only (RFC 7692 6.1).
    parts = [
        Frame(Opcode.BINARY, b"\x00" * 100, fin=False),
        Frame(Opcode.CONT, b"\x01" * 100, fin=True),
    ]
    wire += b"".join(frame.serialize(mask=True, extensions=[client_ext]) for frame in parts)
    # Arriving in small pieces: compressed payloads are validated once inflated.
    for index in range(0, len(wire), 7):
        proto.receive_data(wire[index : index + 7])
    assert proto.inbox == [Message(text), Message(b"\x00" * 100 + b"\x01" * 100)]

    proto.send_text(b"answer " * 20)
    client = ClientProtocol(parse_uri("ws://example.com/ws"), state=State.OPEN)
    client.extensions = [client_ext]
    for data in proto.data_to_send():
        assert data[0] == 0xC1
        client.receive_data(data)
    [frame] = client.events_received()
    assert isinstance(frame, Frame) and frame.data == b"answer " * 20


def test_compressed_invalid_utf8_is_1007_once_inflated() -> None:
    proto = protocol(HTTP_SEC_WEBSOCKET_EXTENSIONS="permessage-deflate")
    wire = Frame(Opcode.TEXT, b"ok\xff").serialize(mask=True, extensions=[deflate_client()])
    proto.receive_data(wire)
    assert proto.data_to_send() == [server_close(1007, "invalid start byte at position 2"), EOF_MARK]


def test_the_parser_starts_only_when_bytes_need_it() -> None:
    # Idle, or fed only frames the fast path takes: no suspended parser held.
    proto = protocol()
    assert proto.parser is None
    proto.receive_data(client_frame(OP_TEXT, b"fast"))
    assert proto.parser is None and proto.inbox == [Message("fast")]
    # A control frame goes to websockets' parser, started from the frame boundary.
    proto.receive_data(client_frame(OP_PING, b"p"))
    assert proto.parser is not None
    assert proto.data_to_send() == [server_frame(OP_PONG, b"p")]


def test_an_eof_before_any_frame_starts_the_parser() -> None:
    proto = protocol()
    proto.receive_eof()
    assert proto.state is State.CLOSED
    assert proto.data_to_send() == [EOF_MARK]


def test_the_private_state_attribute_read_on_every_read_tracks_the_state() -> None:
    # The per-read paths (MessageProtocol.receive_some, Connection._receive)
    # read websockets' _state rather than its state property; on every
    # supported websockets version (the minimum-versions run included) both
    # must agree through each transition.
    proto = protocol()
    seen = []
    for step in (
        lambda: None,
        lambda: proto.receive_data(client_frame(OP_TEXT, b"hi")),
        lambda: proto.receive_data(client_close(1000, "bye")),
        lambda: proto.receive_eof(),
    ):
        step()
        assert proto._state is proto.state
        seen.append(proto.state)
    assert seen == [State.OPEN, State.OPEN, State.CLOSING, State.CLOSED]
