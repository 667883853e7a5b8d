"""Socket.IO v5 packets: encoding, and decoding with binary attachments.

A packet travels as one Engine.IO text message,
``<type>[<attachments>-][<namespace>,][<ack id>][<JSON payload>]``, followed
for the binary types (``BINARY_EVENT``, ``BINARY_ACK``) by one Engine.IO
binary message per attachment; the JSON payload holds
``{"_placeholder": true, "num": N}`` where attachment ``N`` goes. No I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ACK",
    "BINARY_ACK",
    "BINARY_EVENT",
    "CONNECT",
    "CONNECT_ERROR",
    "DISCONNECT",
    "EVENT",
    "Decoder",
    "Packet",
    "PacketError",
    "encode",
    "encode_ack",
]

CONNECT = 0
DISCONNECT = 1
EVENT = 2
ACK = 3
CONNECT_ERROR = 4
BINARY_EVENT = 5
BINARY_ACK = 6

NAMES = {
    CONNECT: "CONNECT",
    DISCONNECT: "DISCONNECT",
    EVENT: "EVENT",
    ACK: "ACK",
    CONNECT_ERROR: "CONNECT_ERROR",
    BINARY_EVENT: "BINARY_EVENT",
    BINARY_ACK: "BINARY_ACK",
}

#: Event names a client may not send (they mean something else to the reference
#: implementation's event emitters); a packet carrying one is malformed.
RESERVED_EVENTS = frozenset(
    ("connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener")
)

#: More attachments than this in one packet is refused (each is a message of its own).
MAX_ATTACHMENTS = 100
#: Attachments of one packet larger than this in total are refused (they are
#: held until the packet is complete).
MAX_ATTACHMENT_BYTES = 16 * 2**20
# Packet types by their digit (ASCII only, as the reference parser reads them).
_KINDS = {str(kind): kind for kind in NAMES}
# An ack id is an unsigned integer the client counts up; the reference parser
# reads it as a JavaScript number, so more digits than this is not one.
_MAX_ID_DIGITS = 15


class PacketError(ValueError):
    """A malformed packet: the session that sent it is closed."""


@dataclass
class Packet:
    """One Socket.IO packet (binary types carry their attachments in ``data``)."""

    type: int
    namespace: str = "/"
    data: Any = None
    id: int | None = None
    #: Only meaningful while decoding: attachments still expected.
    attachments: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        if self.type not in NAMES:
            raise ValueError(f"unknown packet type {self.type}")


# The reference client and server write compact JSON; clients compare strings in
# tests. One encoder for every packet: json.dumps() with options builds one per call.
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


_BINARY = (bytes, bytearray, memoryview)
# What most arguments are: checked by type first, the cheapest answer.
_PLAIN = frozenset((str, int, float, bool, type(None)))


def _has_binary(value: Any) -> bool:
    if type(value) in _PLAIN:
        return False
    if isinstance(value, _BINARY):
        return True
    if isinstance(value, list | tuple):
        values: Any = value
    elif isinstance(value, dict):
        values = value.values()
    else:
        return False
    # A loop, not any(): a generator costs more than the check on every packet.
    for item in values:  # noqa: SIM110
        if type(item) not in _PLAIN and _has_binary(item):
            return True
    return False


def _deconstruct(value: Any, buffers: list[bytes]) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        buffers.append(bytes(value))
        return {"_placeholder": True, "num": len(buffers) - 1}
    if isinstance(value, list | tuple):
        return [_deconstruct(v, buffers) for v in value]
    if isinstance(value, dict):
        return {k: _deconstruct(v, buffers) for k, v in value.items()}
    return value


def _reconstruct(value: Any, buffers: list[bytes]) -> Any:
    if isinstance(value, dict):
        if value.get("_placeholder") is True and len(value) == 2 and "num" in value:
            num = value["num"]
            if type(num) is not int or not 0 <= num < len(buffers):
                raise PacketError(f"placeholder for a missing attachment: {num!r}")
            return buffers[num]
        return {k: _reconstruct(v, buffers) for k, v in value.items()}
    if isinstance(value, list):
        return [_reconstruct(v, buffers) for v in value]
    return value


def encode(packet: Packet) -> list[str | bytes]:
    """The Engine.IO messages for ``packet``: one text message, then its attachments.

    An ``EVENT`` or ``ACK`` whose data holds ``bytes`` is sent as the binary type.
    """
    kind = packet.type
    buffers: list[bytes] = []
    data = packet.data
    if kind in (EVENT, ACK, BINARY_EVENT, BINARY_ACK) and _has_binary(data):
        kind = BINARY_EVENT if kind in (EVENT, BINARY_EVENT) else BINARY_ACK
        data = _deconstruct(data, buffers)
    elif kind == BINARY_EVENT:
        kind = EVENT
    elif kind == BINARY_ACK:
        kind = ACK
    parts = [str(kind)]
    if buffers:
        parts.append(f"{len(buffers)}-")
    if packet.namespace != "/":
        parts.append(packet.namespace + ",")
    if packet.id is not None:
        parts.append(str(packet.id))
    if data is not None:
        parts.append(_dumps(data))
    return ["".join(parts), *buffers]


def encode_ack(namespace: str, ack_id: int, args: list[Any]) -> list[str | bytes]:
    """``encode(Packet(ACK, namespace, args, ack_id))``, the common answer, without
    building the packet."""
    if _has_binary(args):
        return encode(Packet(ACK, namespace, args, ack_id))
    if namespace == "/":
        return [f"3{ack_id}{_dumps(args)}"]
    return [f"3{namespace},{ack_id}{_dumps(args)}"]


def _valid_payload(kind: int, data: Any, present: bool) -> bool:
    """Whether ``data`` fits ``kind``, as the reference parser checks it (client to server)."""
    if kind == CONNECT:
        return not present or isinstance(data, dict)
    if kind == DISCONNECT:
        return not present
    if kind in (EVENT, BINARY_EVENT):
        if not isinstance(data, list) or not data:
            return False
        name = data[0]
        if isinstance(name, str):
            return name not in RESERVED_EVENTS
        return isinstance(name, int | float) and not isinstance(name, bool)
    if kind in (ACK, BINARY_ACK):
        return isinstance(data, list)
    return False  # CONNECT_ERROR is never sent by a client


class Decoder:
    """Turns a session's Engine.IO messages into packets; one per session (it keeps
    the partial binary packet between the text message and its attachments)."""

    def __init__(self, max_attachments: int = MAX_ATTACHMENTS, max_bytes: int = MAX_ATTACHMENT_BYTES) -> None:
        self.max_attachments = max_attachments
        self.max_bytes = max_bytes
        self._size = 0
        self._pending: Packet | None = None
        self._buffers: list[bytes] = []

    @property
    def waiting(self) -> bool:
        """Whether attachments of a binary packet are still expected."""
        return self._pending is not None

    def feed(self, message: str | bytes) -> Packet | None:
        """The packet ``message`` completes, or ``None`` while attachments are expected.

        Raises :class:`PacketError` for anything malformed.
        """
        if isinstance(message, _BINARY):
            pending = self._pending
            if pending is None:
                raise PacketError("binary message without a binary packet expecting it")
            self._size += len(message)
            if self._size > self.max_bytes:
                raise PacketError(f"attachments larger than {self.max_bytes} bytes")
            self._buffers.append(bytes(message))
            if len(self._buffers) < pending.attachments:
                return None
            self._pending = None
            self._size = 0
            buffers, self._buffers = self._buffers, []
            pending.data = _reconstruct(pending.data, buffers)
            pending.attachments = 0
            return pending
        if self._pending is not None:
            raise PacketError("text message while binary attachments were expected")
        packet = self.parse(message)
        if packet.attachments:
            self._pending = packet
            return None
        return packet

    def parse(self, text: str) -> Packet:
        """One packet's text form (attachments still as placeholders)."""
        kind = _KINDS.get(text[:1])
        if kind is None:
            raise PacketError(f"unknown packet type {text[:1]!r}")
        i = 1
        n = len(text)
        attachments = 0
        if kind in (BINARY_EVENT, BINARY_ACK):
            dash = text.find("-", i)
            count = text[i:dash] if dash >= 0 else ""
            if not count.isascii() or not count.isdigit():
                raise PacketError("illegal attachments count")
            attachments = int(count)
            if not 0 < attachments <= self.max_attachments:
                raise PacketError(f"illegal attachments count {attachments}")
            i = dash + 1
        namespace = "/"
        if i < n and text[i] == "/":
            comma = text.find(",", i)
            end = comma if comma >= 0 else n
            namespace = text[i:end]
            i = end + 1 if comma >= 0 else n
        ack_id: int | None = None
        start = i
        while i < n and "0" <= text[i] <= "9":
            i += 1
        if i > start:
            if i - start > _MAX_ID_DIGITS:
                raise PacketError("invalid ack id")
            ack_id = int(text[start:i])
        data: Any = None
        present = i < n
        if present:
            try:
                data = json.loads(text[i:])
            except ValueError as exc:
                raise PacketError(f"invalid payload: {exc}") from None
        if not _valid_payload(kind, data, present):
            raise PacketError(f"invalid payload for {NAMES[kind]}")
        if ack_id is not None and kind not in (EVENT, BINARY_EVENT, ACK, BINARY_ACK):
            raise PacketError(f"ack id on a {NAMES[kind]} packet")
        if kind in (ACK, BINARY_ACK) and ack_id is None:
            raise PacketError("ACK without an id")
        return Packet(kind, namespace, data, ack_id, attachments)
