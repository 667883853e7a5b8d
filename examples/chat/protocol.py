"""The chat's wire protocol: JSON text messages, validated strictly.

Every client message is one JSON object with a ``type`` and exactly the fields
that type needs::

    {"type": "hello", "nick": "alice"}          pick a nickname (first)
    {"type": "join",  "room": "lobby"}          join a room (created on demand)
    {"type": "leave", "room": "lobby"}
    {"type": "say",   "room": "lobby", "text": "hi"}
    {"type": "rooms"}                           ask for the room directory

Server messages: ``welcome``, ``ready``, ``rooms``, ``joined``, ``left``,
``message``, ``presence`` and ``error`` (see :mod:`examples.chat.server`).

:func:`parse` never trusts the client: anything else raises :class:`ChatError`,
whose ``code`` and ``message`` go back to that client only.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_FRAME",
    "MAX_NICK",
    "MAX_ROOM",
    "MAX_TEXT",
    "ChatError",
    "Command",
    "Hello",
    "Join",
    "Leave",
    "ListRooms",
    "Say",
    "check_nick",
    "check_room",
    "check_text",
    "parse",
]

#: Largest client message, in UTF-8 bytes, the chat reads (a longer one gets ``too_long``).
MAX_FRAME = 4096
#: Longest chat message, in characters.
MAX_TEXT = 500
#: Longest nickname, in characters.
MAX_NICK = 20
#: Longest room name, in characters.
MAX_ROOM = 24

# Letters and digits of any script, then also "_", "." and "-": no spaces, so
# a nickname cannot pass for a system notice or another user's "alice (away)".
_NICK = re.compile(rf"[^\W_][\w.-]{{0,{MAX_NICK - 1}}}")
_ROOM = re.compile(rf"[^\W_][\w-]{{0,{MAX_ROOM - 1}}}")


class ChatError(Exception):
    """A client message the chat refuses; ``code`` is stable, ``message`` human."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Hello:
    nick: str


@dataclass(frozen=True, slots=True)
class Join:
    room: str


@dataclass(frozen=True, slots=True)
class Leave:
    room: str


@dataclass(frozen=True, slots=True)
class Say:
    room: str
    text: str


@dataclass(frozen=True, slots=True)
class ListRooms:
    pass


Command = Hello | Join | Leave | Say | ListRooms

# Each type's fields: exactly these, all strings.
_FIELDS: dict[str, tuple[str, ...]] = {
    "hello": ("nick",),
    "join": ("room",),
    "leave": ("room",),
    "say": ("room", "text"),
    "rooms": (),
}


def check_nick(value: str) -> str:
    """A valid nickname (NFC-normalized) or :class:`ChatError` ``bad_nick``."""
    nick = unicodedata.normalize("NFC", value.strip())
    if not _NICK.fullmatch(nick):
        raise ChatError(
            "bad_nick",
            f"a nickname is 1 to {MAX_NICK} letters, digits, '_', '.' or '-', starting with a letter or digit",
        )
    return nick


def check_room(value: str) -> str:
    """A valid room name, lower-cased, or :class:`ChatError` ``bad_room``."""
    room = unicodedata.normalize("NFC", value.strip()).lower()
    if not _ROOM.fullmatch(room):
        raise ChatError(
            "bad_room", f"a room name is 1 to {MAX_ROOM} letters, digits, '_' or '-', starting with a letter or digit"
        )
    return room


def check_text(value: str) -> str:
    """Message text without control characters (newlines and tabs kept), or ``bad_text``/``too_long``."""
    # Control and format characters (bidi overrides among them) could make a
    # message look like someone else's; drop them rather than refuse.
    text = "".join(ch for ch in value if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cf", "Cs"))
    text = text.strip()
    if not text:
        raise ChatError("bad_text", "a message cannot be empty")
    if len(text) > MAX_TEXT:
        raise ChatError("too_long", f"a message is at most {MAX_TEXT} characters ({len(text)} sent)")
    return text


def parse(data: str | bytes) -> Command:
    """Validate one client WebSocket message and return its command."""
    if not isinstance(data, str):
        raise ChatError("bad_message", "send JSON as text messages, not binary")
    if len(data) > MAX_FRAME or len(data.encode("utf-8", "surrogatepass")) > MAX_FRAME:
        raise ChatError("too_long", f"a client message is at most {MAX_FRAME} bytes")
    try:
        obj: Any = json.loads(data)
    except (ValueError, RecursionError):
        raise ChatError("bad_json", "the message is not valid JSON") from None
    if not isinstance(obj, dict):
        raise ChatError("bad_message", "the message must be a JSON object")
    kind = obj.get("type")
    if not isinstance(kind, str) or kind not in _FIELDS:
        raise ChatError("bad_message", f"'type' must be one of {', '.join(sorted(_FIELDS))}")
    expected = _FIELDS[kind]
    got = set(obj) - {"type"}
    if got != set(expected):
        raise ChatError(
            "bad_message", f"a {kind!r} message has exactly the fields: type{''.join(', ' + f for f in expected)}"
        )
    for name in expected:
        if not isinstance(obj[name], str):
            raise ChatError("bad_message", f"{name!r} must be a string")
    if kind == "hello":
        return Hello(check_nick(obj["nick"]))
    if kind == "join":
        return Join(check_room(obj["room"]))
    if kind == "leave":
        return Leave(check_room(obj["room"]))
    if kind == "say":
        return Say(check_room(obj["room"]), check_text(obj["text"]))
    return ListRooms()
