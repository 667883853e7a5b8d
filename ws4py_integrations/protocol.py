"""The protocol engine: websockets' Sans-I/O ``ServerProtocol`` plus message assembly.

Framing, masking, limits and permessage-deflate are websockets'. What this
layer owns is turning frames into messages, strictly:

- invalid UTF-8 fails the connection (1007) at the first fragment that proves
  it, not at the end of the message (RFC 6455 section 8.1);
- a Close frame arriving in the middle of a fragmented message is answered
  with a Close, as control frames may be interleaved (section 5.4);
- no limit on the number of fragments, only on the message size.
"""

from __future__ import annotations

import codecs
from collections.abc import Generator
from typing import Any

from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.streams import StreamReader

from .events import Message, Pong

try:  # websockets' C unmasking; the pure-Python one where it is not built
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover
    from websockets.utils import apply_mask

__all__ = ["ServerConnectionProtocol"]


class _Reader(StreamReader):
    """A stream reader that knows where the parser is within a frame.

    websockets reads a frame as: 2 header bytes, 2 or 8 extended-length
    bytes if the header says so, the 4-byte mask, then the payload. Keeping
    the header and the mask it already read lets us validate a text payload
    while it is still arriving.
    """

    def __init__(self) -> None:
        super().__init__()
        self.mid_frame = False
        self.frame_serial = 0
        self.reads = 0
        self.head = b""
        self.mask = b""

    def at_eof(self) -> Generator[None, None, bool]:
        # The parser asks this between frames only.
        self.mid_frame = False
        self.frame_serial += 1
        self.reads = 0
        return (yield from super().at_eof())

    def read_exact(self, n: int) -> Generator[None, None, bytearray]:
        if len(self.buffer) < n:
            self.mid_frame = True
        index = self.reads
        self.reads = index + 1
        data = yield from super().read_exact(n)
        if index == 0:
            self.head = bytes(data)
        elif n == 4:
            self.mask = bytes(data)
        return data

    def waiting_for_payload(self) -> bool:
        """Whether the parser has the header and mask and waits for the payload."""
        if not self.mid_frame or len(self.head) != 2:
            return False
        return self.reads - 1 == (3 if self.head[1] & 0x7F >= 126 else 2)


_utf8_decoder = codecs.getincrementaldecoder("utf-8")

OP_CONT, OP_TEXT, OP_BINARY = Opcode.CONT, Opcode.TEXT, Opcode.BINARY
OP_CLOSE, OP_PING, OP_PONG = Opcode.CLOSE, Opcode.PING, Opcode.PONG


class ServerConnectionProtocol(ServerProtocol):
    """A server-side protocol whose ``inbox`` collects :class:`Message` and :class:`Pong`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Restart the parser on a reader that tracks frame boundaries (no
        # data has been fed yet, so nothing is lost).
        self.reader = _Reader()
        self.parser = self.parse()
        next(self.parser)
        self.inbox: list[Message | Pong] = []
        # Fragments of the message being received: decoded str pieces for text.
        self._parts: list[Any] = []
        self._decoder: codecs.IncrementalDecoder | None = None
        self._receiving_text = False
        # Validation of the text payload that is still arriving:
        # (frame serial, bytes validated, decoder).
        self._partial: tuple[int, int, codecs.IncrementalDecoder] | None = None

    def receive_data(self, data: bytes | bytearray) -> None:
        super().receive_data(data)
        reader = self.reader
        if reader.mid_frame and self.state is State.OPEN and reader.waiting_for_payload():  # type: ignore[attr-defined]
            self._validate_partial_text()

    def _validate_partial_text(self) -> None:
        """Fail with 1007 on invalid UTF-8 in a text payload not yet complete (8.1:
        at the first byte that proves it, not at the end of the frame)."""
        reader: _Reader = self.reader  # type: ignore[assignment]
        first, opcode = reader.head[0], Opcode(reader.head[0] & 0x0F)
        if first & 0x40:
            return  # compressed: validated once inflated
        if opcode is OP_TEXT:
            seed = None
        elif opcode is OP_CONT and self._receiving_text:
            seed = self._decoder
        else:
            return
        partial = self._partial
        if partial is None or partial[0] != reader.frame_serial:
            decoder: codecs.IncrementalDecoder = _utf8_decoder()
            if seed is not None:
                decoder.setstate(seed.getstate())
            partial = (reader.frame_serial, 0, decoder)
        serial, done, decoder = partial
        # The reader holds less than the payload (else the frame would be
        # complete), all of it payload, masked from payload offset 0.
        available = len(reader.buffer)
        if available <= done:
            return
        shift = done % 4
        mask = reader.mask[shift:] + reader.mask[:shift]
        try:
            decoder.decode(apply_mask(bytes(reader.buffer[done:available]), mask), False)
        except UnicodeDecodeError as exc:
            self._partial = None
            self.fail(CloseCode.INVALID_DATA, f"{exc.reason} at position {done + exc.start}")
            self.parser_exc = exc
            return
        self._partial = (serial, available, decoder)

    def recv_frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is OP_CLOSE and self.current_size is not None:
            # 5.4: control frames MAY be injected in a fragmented message; the
            # partial message is abandoned and the Close answered normally.
            self.current_size = None
            self._reset_message()
        # websockets validates the frame sequence and answers control frames.
        super().recv_frame(frame)
        # The frame event is ours to translate; drop websockets' copy.
        self.events.pop()
        if opcode is OP_TEXT:
            if frame.fin:
                # UnicodeDecodeError propagates to parse(), which fails with 1007.
                self.inbox.append(Message(bytes(frame.data).decode()))
            else:
                self._receiving_text = True
                self._decoder = _utf8_decoder()
                self._parts.append(self._decoder.decode(frame.data, False))
        elif opcode is OP_BINARY:
            if frame.fin:
                self.inbox.append(Message(bytes(frame.data)))
            else:
                self._receiving_text = False
                self._parts.append(frame.data)
        elif opcode is OP_CONT:
            if self._receiving_text:
                assert self._decoder is not None
                self._parts.append(self._decoder.decode(frame.data, frame.fin))
                if frame.fin:
                    self.inbox.append(Message("".join(self._parts)))
                    self._reset_message()
            else:
                self._parts.append(frame.data)
                if frame.fin:
                    self.inbox.append(Message(b"".join(self._parts)))
                    self._reset_message()
        elif opcode is OP_PONG:
            self.inbox.append(Pong(bytes(frame.data)))

    def _reset_message(self) -> None:
        self._parts = []
        self._decoder = None
        self._receiving_text = False
