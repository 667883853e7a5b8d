"""Engine.IO v4 packets: types, and their encoding on each transport."""

from __future__ import annotations

import base64
import binascii
import enum

__all__ = [
    "RECORD_SEPARATOR",
    "PacketError",
    "PacketType",
    "decode_payload",
    "decode_text_packet",
    "encode_payload",
    "encode_polling_packet",
]

#: Separates the packets of one HTTP long-polling payload.
RECORD_SEPARATOR = "\x1e"


class PacketType(enum.IntEnum):
    OPEN = 0
    CLOSE = 1
    PING = 2
    PONG = 3
    MESSAGE = 4
    UPGRADE = 5
    NOOP = 6


class PacketError(ValueError):
    """A packet or payload that is not valid Engine.IO v4."""


#: A decoded packet: its type and its data (``bytes`` only for a binary message).
Packet = tuple[PacketType, "str | bytes"]


# Packet types by their digit: a dict lookup costs less than calling the enum.
_TYPES = {str(int(kind)): kind for kind in PacketType}


def decode_text_packet(text: str) -> Packet:
    """A packet as sent in a WebSocket text frame (``<type>[<data>]``)."""
    kind = _TYPES.get(text[:1])
    if kind is None:
        raise PacketError(f"invalid packet type in {text[:20]!r}")
    return kind, text[1:]


def decode_payload(body: bytes) -> list[Packet]:
    """The packets of an HTTP long-polling payload (a POST body)."""
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise PacketError("the payload is not UTF-8") from None
    packets: list[Packet] = []
    for part in text.split(RECORD_SEPARATOR):
        if part.startswith("b"):
            try:
                packets.append((PacketType.MESSAGE, base64.b64decode(part[1:], validate=True)))
            except binascii.Error:
                raise PacketError("invalid base64 in a binary packet") from None
        else:
            packets.append(decode_text_packet(part))
    return packets


def encode_polling_packet(kind: PacketType, data: str | bytes = "") -> str:
    """One packet as it goes into a long-polling payload (binary: ``b`` + base64)."""
    if isinstance(data, bytes):
        return "b" + base64.b64encode(data).decode("ascii")
    return f"{int(kind)}{data}"


def encode_payload(packets: list[str]) -> bytes:
    """A long-polling payload of packets already encoded with :func:`encode_polling_packet`."""
    return RECORD_SEPARATOR.join(packets).encode()
