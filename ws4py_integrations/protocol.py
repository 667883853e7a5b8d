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

from websockets.frames import Frame, Opcode
from websockets.server import ServerProtocol
from websockets.streams import StreamReader

from .events import Message, Pong

__all__ = ["ServerConnectionProtocol"]


class _Reader(StreamReader):
    """A stream reader that knows whether the parser waits inside a frame."""

    mid_frame = False

    def at_eof(self) -> Generator[None, None, bool]:
        # The parser asks this between frames only.
        self.mid_frame = False
        return (yield from super().at_eof())

    def read_exact(self, n: int) -> Generator[None, None, bytearray]:
        if len(self.buffer) < n:
            self.mid_frame = True
        return (yield from super().read_exact(n))


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
