"""The protocol engine: websockets' Sans-I/O ``ServerProtocol`` plus message assembly.

Framing, masking, limits and permessage-deflate are websockets'. What this
layer owns is turning frames into messages, strictly:

- invalid UTF-8 fails the connection (1007) at the first fragment that proves
  it, not at the end of the message (RFC 6455 section 8.1);
- a Close frame arriving in the middle of a fragmented message is answered
  with a Close, as control frames may be interleaved (section 5.4);
- no limit on the number of fragments as such, but every fragment counts
  toward the message size limit with the smallest overhead a client frame
  has (6 bytes: header and mask), so millions of empty fragments are refused
  (1009) like one large message.
"""

from __future__ import annotations

import codecs
import mmap
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from websockets.exceptions import PayloadTooBig
from websockets.extensions.base import Extension
from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import Side, State
from websockets.server import ServerProtocol
from websockets.streams import StreamReader
from websockets.typing import LoggerLike

from ._websockets import SIZE_ATTRIBUTE, fragmented_size, reset_fragmented_size
from .events import Message, Pong

if TYPE_CHECKING:
    from .handshake import Accept

try:  # websockets' C unmasking; the pure-Python one where it is not built
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover
    from websockets.utils import apply_mask

__all__ = ["ClientMessageProtocol", "MessageProtocol"]


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
        # How many bytes the read the parser waits in asks for.
        self.want = 0
        # A large payload being received in place (MessageProtocol.payload_target):
        # its own buffer (a view of a mapping, or a bytearray) and how much of
        # it is filled; ``buffer`` stays empty meanwhile.
        self.target: memoryview | bytearray | None = None
        self.filled = 0
        self.head: bytes | bytearray = b""
        self.mask: bytes | bytearray = b""
        # Validation of a text payload still arriving: (frame serial, bytes
        # validated, decoder), or None.
        self.partial: tuple[int, int, codecs.IncrementalDecoder] | None = None

    def at_eof(self) -> Generator[None, None, bool]:
        # The parser asks this between frames only.
        self.mid_frame = False
        self.frame_serial += 1
        self.reads = 0
        return (yield from super().at_eof())

    def feed_data(self, data: bytes | bytearray) -> None:
        # Feeding nothing changes nothing, and the buffer may then be a payload
        # received into a mapping (a memoryview, which has no +=).
        if data or self.eof:
            super().feed_data(data)

    def read_exact(self, n: int) -> Generator[None, None, bytearray]:
        # StreamReader.read_exact, inline (one generator layer less per read),
        # recording what the frame parser reads.
        index = self.reads
        self.reads = index + 1
        if len(self.buffer) < n:
            self.mid_frame = True
            self.want = n
            while len(self.buffer) < n:
                if self.eof:
                    raise EOFError(f"stream ends after {len(self.buffer)} bytes, expected {n} bytes")
                yield
        buffer = self.buffer
        if len(buffer) == n:
            # The buffer is exactly this read (a large payload arriving on its
            # own): hand it over rather than copy it.
            self.buffer = bytearray()
            data = buffer
        else:
            data = buffer[:n]
            del buffer[:n]
        if index == 0:
            self.head = data
        elif n == 4:
            self.mask = data
        return data

    def waiting_for_payload(self) -> bool:
        """Whether the parser has the header and mask and waits for the payload."""
        if not self.mid_frame or len(self.head) != 2:
            return False
        return self.reads - 1 == (3 if self.head[1] & 0x7F >= 126 else 2)


_utf8_decoder = codecs.getincrementaldecoder("utf-8")
_new_message = object.__new__
# A module constant: on Python 3.11, every attribute of an Enum class is looked
# up through EnumType's __getattr__ hook, which costs a few times a plain lookup.
_OPEN = State.OPEN
_set_message_data = Message.__dict__["data"].__set__

OP_CONT, OP_TEXT, OP_BINARY = Opcode.CONT, Opcode.TEXT, Opcode.BINARY
# The smallest client frame: 2 header bytes and the 4-byte mask.
FRAME_OVERHEAD = 6
OP_CLOSE, OP_PING, OP_PONG = Opcode.CLOSE, Opcode.PING, Opcode.PONG
#: Payloads from this size on are received in place (:meth:`MessageProtocol.payload_target`).
LARGE_PAYLOAD = 64 * 1024
# The first buffer of a payload received in place: at most this or 4x the
# bytes of it already here, whichever is larger; it grows 4x as it fills.
# A header alone (14 bytes announcing max_size) reserves no more than this.
TARGET_START = 256 * 1024
# One spare payload buffer per process, taken by the next large payload (any
# connection or thread: list.pop and append are atomic), as a fresh
# bytearray() is zeroed: a pass over memory the payload overwrites anyway.
# Only the parser held it (it unmasks into new bytes), so nothing sees it again.
_spare: list[bytearray] = []
SPARE_MAX = 4 * 2**20
# A payload of up to SPARE_MAX bytes is received into an anonymous mapping of
# its own, _REGION_OFFSET bytes into a page; a larger one (or where there are
# no private mappings: Windows) into a bytearray that grows as it fills.
#
# Why a mapping: its pages become resident only as they are written, so a
# mapping of the largest size costs an announced length only address space,
# and its page offset is ours to choose. A client's frame of 64 KiB or more
# usually starts a page of the kernel's buffer, its payload 14 bytes in
# (header and mask): 2 KiB apart within a page, the kernel's copy straight
# into the mapping stays clear of 4K aliasing (see connection.receive_buffer),
# where a bytearray's bytes start wherever malloc put them and had to come
# through the receive buffer, one copy more. Server CPU per 1 MiB echoed, on
# one core: 498 -> 447 us on wsgiref, 543 -> 471 us on CherryPy.
_REGION_OFFSET: int | None = 0x800 + 14 if hasattr(mmap, "MAP_PRIVATE") else None
# One spare mapping per process, like the spare bytearray.
_spare_regions: list[mmap.mmap] = []


class MessageProtocol(ServerProtocol):
    """websockets' server-side protocol, assembling messages: ``inbox`` collects
    :class:`Message` and :class:`Pong` events (see :mod:`ws4py_integrations._websockets`
    for the internals it relies on)."""

    @classmethod
    def accepted(
        cls, accept: Accept, max_message_size: int | None, logger: LoggerLike | None = None
    ) -> MessageProtocol:
        """The protocol of a connection whose handshake ``accept`` concluded."""
        protocol = cls(max_size=max_message_size, state=State.OPEN, logger=logger)
        protocol.extensions = list(accept.extensions)
        protocol.subprotocol = accept.subprotocol  # type: ignore[assignment]
        return protocol

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Our own copy: websockets renamed its attribute (max_size, max_message_size).
        self.size_limit: int | None = kwargs.get("max_size")
        # Restart the parser on a reader that tracks frame boundaries (no
        # data has been fed yet, so nothing is lost), once it has something to
        # parse (_start_parser): a suspended parser is a chain of generator
        # frames (~1 KiB), and an idle connection, or one whose frames all take
        # the fast path, never needs it.
        self.reader = _Reader()
        self.parser = None  # type: ignore[assignment]
        self.inbox: list[Message | Pong] = []
        # The fragmented message being received, if any.
        self._asm: _Assembly | None = None
        # No further attribute here: with websockets' own, the instance has 29,
        # and from 30 on CPython stops sharing the keys of its instances'
        # dicts: every connection would hold a 1.5 KiB dict instead of 0.3 KiB
        # (tests/unit/test_protocol_memory.py). New state goes on the class
        # (set on an instance only when it changes) or on the reader.

    #: Parse small complete frames without websockets' parser (see :meth:`_parse_fast`).
    fast_path = True
    #: The last frame was received in place (:meth:`payload_target`): the
    #: next is likely large too (Connection.read reads its header alone). A
    #: class default: only connections that receive large payloads set it.
    large_next = False

    def receive_data(self, data: bytes | bytearray) -> None:
        self.receive_some(data, None)

    def receive_some(self, data: bytes | bytearray, max_messages: int | None) -> bytes | bytearray:
        """:meth:`receive_data`, stopping once ``max_messages`` messages wait in
        :attr:`inbox`; returns the bytes not processed yet (give them back first
        next time). Only the fast path stops early: the parser takes all it gets."""
        reader = self.reader
        if reader.target is not None:  # type: ignore[attr-defined]
            # Bytes that did not come through payload_target(): the payload's
            # part goes into its buffer, the rest is parsed once it is complete.
            data = self._fill_target(data)
            if not data:
                return b""
        if (
            self.fast_path
            # _state and getattr rather than the state property and
            # fragmented_size(): this test runs on every read.
            and self._state is _OPEN
            and not self.extensions
            and self._asm is None
            and not reader.buffer
            and not reader.mid_frame  # type: ignore[attr-defined]
            and not self.debug
            and getattr(self, SIZE_ATTRIBUTE) is None
        ):
            data = self._parse_fast(data, max_messages)
            if not data or (max_messages is not None and len(self.inbox) >= max_messages):
                return data
        if self.parser is None:
            self._start_parser()
        super().receive_data(data)
        if reader.mid_frame and self._state is _OPEN and reader.waiting_for_payload():  # type: ignore[attr-defined]
            self._validate_partial_text()
        return b""

    def payload_target(self) -> memoryview | None:
        """Where the next bytes from the peer go while the parser waits for the rest
        of a large binary payload: a view of that payload's own buffer, which
        spares copying the payload into the reader's and out again; else
        ``None``. Report what was received with
        :meth:`payload_received`, and release the view first.

        Only a payload the parser accepted (within the size limit) gets one,
        and the memory it takes grows with the bytes received, not with the
        announced length: a mapping's pages become resident as they are
        written, and a bytearray grows as it fills.
        """
        reader: _Reader = self.reader  # type: ignore[assignment]
        target = reader.target
        if target is None:
            want = reader.want
            if (
                want < LARGE_PAYLOAD
                or not reader.mid_frame
                or self.state is not State.OPEN
                or self.side is not Side.SERVER
                or reader.eof
                or not reader.waiting_for_payload()
                or self._text_payload()
            ):
                return None
            buffer = reader.buffer
            target = _take_region(want) if want <= SPARE_MAX else None
            if target is None:
                target = _take_spare(want, max(4 * len(buffer), TARGET_START))
            target[: len(buffer)] = buffer
            reader.target, reader.filled, reader.buffer = target, len(buffer), bytearray()
        elif reader.filled == len(target) and isinstance(target, bytearray):
            # (A mapping's view has the payload's length from the start.)
            target += bytes(min(reader.want, 4 * len(target)) - len(target))
        return memoryview(target)[reader.filled :]

    def payload_received(self, n: int) -> None:
        """``n`` bytes were received into the view :meth:`payload_target` returned."""
        reader: _Reader = self.reader  # type: ignore[assignment]
        reader.filled += n
        if reader.filled == reader.want:
            self._complete_target()

    def _fill_target(self, data: bytes | bytearray) -> bytes | bytearray:
        """Copy the payload's part of ``data`` into its buffer; return the rest."""
        reader: _Reader = self.reader  # type: ignore[assignment]
        target, filled = reader.target, reader.filled
        assert target is not None
        take = min(len(data), reader.want - filled)
        # Past the buffer's end this slice assignment grows it (to want at most).
        target[filled : filled + take] = memoryview(data)[:take]
        reader.filled = filled + take
        if reader.filled < reader.want:
            return b""
        self._complete_target()
        return data[take:]

    def _complete_target(self) -> None:
        # The payload is whole: it becomes the reader's buffer, which
        # read_exact hands to the parser as is.
        reader: _Reader = self.reader  # type: ignore[assignment]
        assert reader.target is not None and len(reader.target) == reader.want
        target = reader.target
        # A mapping's view too: the parser only unmasks it (into new bytes).
        reader.buffer, reader.target = target, None  # type: ignore[assignment]
        ServerProtocol.receive_data(self, b"")
        self.large_next = True
        if reader.buffer is target:
            return  # the parser did not take it (it never holds it after unmasking)
        if isinstance(target, memoryview):
            if not _spare_regions:
                _spare_regions.append(target.obj)  # type: ignore[arg-type]
        elif len(target) <= SPARE_MAX and not _spare:
            _spare.append(target)

    def _text_payload(self) -> bool:
        """Whether the payload waited for is uncompressed text (validated as it arrives)."""
        first = self.reader.head[0]  # type: ignore[attr-defined]
        if first & 0x40:
            return False
        opcode = first & 0x0F
        return opcode == OP_TEXT or (opcode == OP_CONT and self._asm is not None and self._asm.decoder is not None)

    def receive_eof(self) -> None:
        if self.parser is None:
            self._start_parser()
        super().receive_eof()

    def _start_parser(self) -> None:
        # Exactly where websockets starts it: nothing has been fed to the
        # parser yet, so it waits for the first frame header.
        self.parser = self.parse()
        next(self.parser)

    def _parse_fast(self, data: bytes | bytearray, max_messages: int | None = None) -> bytes | bytearray:
        """Turn the complete, unfragmented, uncompressed text and binary frames at
        the start of ``data`` into messages; return the rest for websockets' parser.

        The common case (a client's small message in one frame, several per
        read under load) skips the generator-based parser. It only takes what
        the parser would accept and turn into the same message: FIN set, no
        RSV bit, masked, a 7- or 16-bit length within the size limit, valid
        UTF-8 for text. Anything else, including a control frame, stops it
        there; the parser then sees exactly the bytes it would have seen from
        that frame on. Proven equal to the parser by the differential tests
        in ``tests/unit/test_fast_path.py`` and the Autobahn runs.
        """
        pos, size, limit, inbox = 0, len(data), self.size_limit, self.inbox
        room = size if max_messages is None else max_messages - len(inbox)
        while size - pos >= 6 and room > 0:
            first, second = data[pos], data[pos + 1]
            if (first != 0x81 and first != 0x82) or second < 0x80:
                break
            length = second & 0x7F
            if length < 126:
                start = pos + 6
            elif length == 126 and size - pos >= 8:
                length = (data[pos + 2] << 8) | data[pos + 3]
                start = pos + 8
            else:
                break
            end = start + length
            if end > size or (limit is not None and length > limit):
                break
            payload = apply_mask(data[start:end], data[start - 4 : start])
            # Message(...) without the frozen dataclass's __init__ (which costs twice as much).
            message = _new_message(Message)
            if first == 0x81:
                try:
                    _set_message_data(message, payload.decode())
                except UnicodeDecodeError:
                    break  # the parser fails it with 1007, exactly as it would have
            else:
                _set_message_data(message, payload)
            inbox.append(message)
            pos = end
            room -= 1
        return data[pos:] if pos else data

    def _validate_partial_text(self) -> None:
        """Fail with 1007 on invalid UTF-8 in a text payload not yet complete (8.1:
        at the first byte that proves it, not at the end of the frame)."""
        reader: _Reader = self.reader  # type: ignore[assignment]
        first, opcode = reader.head[0], Opcode(reader.head[0] & 0x0F)
        if first & 0x40:
            return  # compressed: validated once inflated
        asm = self._asm
        if opcode is OP_TEXT:
            seed = None
        elif opcode is OP_CONT and asm is not None and asm.decoder is not None:
            seed = asm.decoder
        else:
            return
        partial = reader.partial
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
        # Bytes of an incomplete character the decoder kept from the last
        # piece come first in what it reports positions in.
        kept = len(decoder.getstate()[0])
        try:
            decoder.decode(apply_mask(bytes(reader.buffer[done:available]), mask), False)
        except UnicodeDecodeError as exc:
            reader.partial = None
            self.fail(CloseCode.INVALID_DATA, f"{exc.reason} at position {done - kept + exc.start}")
            self.parser_exc = exc
            return
        reader.partial = (serial, available, decoder)

    def recv_frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is OP_CLOSE and fragmented_size(self) is not None:
            # 5.4: control frames MAY be injected in a fragmented message; the
            # partial message is abandoned and the Close answered normally.
            reset_fragmented_size(self)
            self._asm = None
        # websockets validates the frame sequence and answers control frames.
        super().recv_frame(frame)
        # The frame event is ours to translate; drop websockets' copy.
        self.events.pop()
        if opcode is OP_TEXT:
            if frame.fin:
                # UnicodeDecodeError propagates to parse(), which fails with 1007.
                self.inbox.append(Message(bytes(frame.data).decode()))
            else:
                decoder: codecs.IncrementalDecoder = _utf8_decoder()
                self._asm = _Assembly(decoder)
                self._asm.parts.append(decoder.decode(frame.data, False))
                self._count(self._asm, frame)
        elif opcode is OP_BINARY:
            if frame.fin:
                self.inbox.append(Message(bytes(frame.data)))
            else:
                self._asm = _Assembly(None)
                self._asm.parts.append(frame.data)
                self._count(self._asm, frame)
        elif opcode is OP_CONT:
            current = self._asm
            assert current is not None
            asm: _Assembly = current
            self._count(asm, frame)
            if asm.decoder is not None:
                piece = asm.decoder.decode(frame.data, frame.fin)
                if piece:
                    asm.parts.append(piece)
                if frame.fin:
                    self.inbox.append(Message("".join(asm.parts)))
                    self._asm = None
            else:
                if frame.data:
                    asm.parts.append(frame.data)
                if frame.fin:
                    self.inbox.append(Message(b"".join(asm.parts)))
                    self._asm = None
        elif opcode is OP_PONG:
            self.inbox.append(Pong(bytes(frame.data)))

    def _count(self, asm: _Assembly, frame: Frame) -> None:
        """Charge a fragment to its message: payload plus frame overhead."""
        asm.cost += len(frame.data) + FRAME_OVERHEAD
        limit = self.size_limit
        if limit is not None and asm.cost > limit:
            self._asm = None
            # websockets adds its own count to a PayloadTooBig raised while it
            # tracks a fragmented message; ours (with overhead) replaces it.
            reset_fragmented_size(self)
            raise PayloadTooBig(asm.cost, limit)

    def release(self) -> None:
        """Drop what a message in progress holds (the connection is gone): at
        once, without waiting for the cycle collector to free the protocol."""
        self._asm = None
        self.inbox = []
        reader: _Reader = self.reader  # type: ignore[assignment]
        reader.buffer = bytearray()
        reader.target = None
        reader.partial = None
        reader.head = reader.mask = b""


def _take_region(want: int) -> memoryview | None:
    """A view of ``want`` (at most ``SPARE_MAX``) bytes of the spare mapping or
    a new one; ``None`` where there are no mappings or no more can be made."""
    offset = _REGION_OFFSET
    if offset is None:
        return None
    try:
        region = _spare_regions.pop()
    except IndexError:
        try:
            region = mmap.mmap(-1, SPARE_MAX + offset, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        except OSError:
            return None  # out of address space or of mappings (vm.max_map_count)
    return memoryview(region)[offset : offset + want]


def _take_spare(want: int, size: int) -> bytearray:
    """A buffer for a payload of ``want`` bytes: the spare one (its length cut or
    grown to what is allowed), or a new one of ``min(want, size)`` bytes."""
    try:
        target = _spare.pop()
    except IndexError:
        return bytearray(min(want, size))
    # The spare's memory is already ours: using all of it reserves nothing.
    size = min(want, max(size, len(target)))
    if len(target) > size:
        del target[size:]
    elif len(target) < size:
        target += bytes(size - len(target))
    return target


class _Assembly:
    """A fragmented message in progress: decoded text pieces, or bytes."""

    __slots__ = ("cost", "decoder", "parts")

    def __init__(self, decoder: codecs.IncrementalDecoder | None) -> None:
        self.decoder = decoder
        self.parts: list[Any] = []
        # Bytes charged against the size limit: payload plus frame overhead.
        self.cost = 0


# -- client mode ----------------------------------------------------------------

_NO_MASK = b"\x00\x00\x00\x00"


class _ClientReader(_Reader):
    """A :class:`_Reader` for unmasked (server) frames: there is no mask to
    record, and the payload follows the header and extended length directly."""

    def __init__(self) -> None:
        super().__init__()
        self.mask = _NO_MASK

    def read_exact(self, n: int) -> Generator[None, None, bytearray]:
        data = yield from super().read_exact(n)
        # A 4-byte read here is a length or a payload, never a mask: XOR with
        # zeros leaves the partial text validation exact.
        self.mask = _NO_MASK
        return data

    def waiting_for_payload(self) -> bool:
        if not self.mid_frame or len(self.head) != 2:
            return False
        return self.reads - 1 == (2 if self.head[1] & 0x7F >= 126 else 1)


class ClientMessageProtocol(MessageProtocol):
    """:class:`MessageProtocol` on the client side of an open connection: it masks
    the frames it sends, expects unmasked ones and leaves closing TCP to the
    server (websockets reads ``side`` at each frame, so only it changes)."""

    #: The fast path parses masked (client) frames only.
    fast_path = False

    @classmethod
    def connected(
        cls,
        extensions: list[Extension],
        subprotocol: str | None,
        max_message_size: int | None,
        logger: LoggerLike | None = None,
    ) -> ClientMessageProtocol:
        """The protocol of a client connection whose handshake concluded."""
        protocol = cls(max_size=max_message_size, state=State.OPEN, logger=logger)
        protocol.side = Side.CLIENT
        protocol.extensions = list(extensions)
        protocol.subprotocol = subprotocol  # type: ignore[assignment]
        return protocol

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reader = _ClientReader()
        self.parser = self.parse()
        next(self.parser)
