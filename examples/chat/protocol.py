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
    "nick_key",
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


# -- nicknames -------------------------------------------------------------------
#
# Two nicknames that look the same must not both be in use, so uniqueness is
# decided on a folded key (nick_key), not on the text itself.

# Unicode's Default_Ignorable_Code_Point ranges (DerivedCoreProperties.txt),
# on top of category Cf: characters that render as nothing, such as zero-width
# spaces and joiners, variation selectors, bidi controls, tags and the Hangul
# fillers (letters to regular expressions, so "\u3164" alone passed as a nick).
_IGNORABLE_RANGES = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)

# Cyrillic and Greek letters that look like a Latin one, by their case-folded
# form (case folding runs first, so capitals are covered through their small
# letter). Where a capital and its small letter resemble different Latin
# letters (Cyrillic EN looks like H, its small letter does not; Greek NU is N
# or v) the form an impersonator would more likely type wins. The table is
# deliberately small and over-inclusive rather than complete (Unicode's
# confusables.txt has thousands of entries). Fullwidth and other
# compatibility forms need no entry: NFKC folds them. Written with character
# names, as the glyphs themselves are the very look-alikes a reader would miss.
# Latin-internal look-alikes (0/o, 1/l, I/l, rn/m) are not folded: such pairs
# are common in honest nicknames ("al1" next to "all") and differ on screen,
# whereas a Cyrillic small letter A is pixel-identical to a Latin "a".
_CONFUSABLES = str.maketrans(
    {
        unicodedata.lookup(name): latin
        for name, latin in (
            ("CYRILLIC SMALL LETTER A", "a"),
            ("CYRILLIC SMALL LETTER VE", "b"),
            ("CYRILLIC SMALL LETTER IE", "e"),
            ("CYRILLIC SMALL LETTER IO", "ë"),
            ("CYRILLIC SMALL LETTER SHHA", "h"),
            ("CYRILLIC SMALL LETTER EN", "h"),
            ("CYRILLIC SMALL LETTER BYELORUSSIAN-UKRAINIAN I", "i"),
            ("CYRILLIC SMALL LETTER YI", "ï"),
            ("CYRILLIC SMALL LETTER JE", "j"),
            ("CYRILLIC SMALL LETTER KA", "k"),
            ("CYRILLIC SMALL LETTER PALOCHKA", "l"),
            ("CYRILLIC SMALL LETTER EM", "m"),
            ("CYRILLIC SMALL LETTER O", "o"),
            ("CYRILLIC SMALL LETTER ER", "p"),
            ("CYRILLIC SMALL LETTER QA", "q"),
            ("CYRILLIC SMALL LETTER DZE", "s"),
            ("CYRILLIC SMALL LETTER TE", "t"),
            ("CYRILLIC SMALL LETTER U", "y"),
            ("CYRILLIC SMALL LETTER STRAIGHT U", "y"),
            ("CYRILLIC SMALL LETTER WE", "w"),
            ("CYRILLIC SMALL LETTER HA", "x"),
            ("CYRILLIC SMALL LETTER KOMI DE", "d"),
            ("CYRILLIC SMALL LETTER ES", "c"),
            ("CYRILLIC SMALL LETTER SOFT SIGN", "b"),
            ("GREEK SMALL LETTER ALPHA", "a"),
            ("GREEK SMALL LETTER BETA", "b"),
            ("GREEK SMALL LETTER EPSILON", "e"),
            ("GREEK SMALL LETTER ETA", "n"),
            ("GREEK SMALL LETTER IOTA", "i"),
            ("GREEK SMALL LETTER KAPPA", "k"),
            ("GREEK SMALL LETTER MU", "m"),
            ("GREEK SMALL LETTER NU", "v"),
            ("GREEK SMALL LETTER OMICRON", "o"),
            ("GREEK SMALL LETTER RHO", "p"),
            ("GREEK SMALL LETTER TAU", "t"),
            ("GREEK SMALL LETTER UPSILON", "u"),
            ("GREEK SMALL LETTER CHI", "x"),
            ("GREEK SMALL LETTER ZETA", "z"),
            ("GREEK LETTER YOT", "j"),
        )
    }
)

# Scripts whose letters impersonate each other; a nick may use one of them.
_LOOKALIKE_SCRIPTS = ("LATIN", "CYRILLIC", "GREEK")


def _invisible(ch: str) -> bool:
    """Whether ``ch`` renders as nothing (default-ignorable or a format character)."""
    if unicodedata.category(ch) == "Cf":
        return True
    code = ord(ch)
    return any(low <= code <= high for low, high in _IGNORABLE_RANGES)


def _strip_invisible(text: str) -> str:
    return "".join(ch for ch in text if not _invisible(ch))


def nick_key(nick: str) -> str:
    """The key nicknames are compared on: equal keys mean "looks the same".

    NFKC (fullwidth and other compatibility forms), case folding, invisible
    characters removed, then the Cyrillic/Greek look-alikes mapped to Latin.
    NFKC runs again after case folding, which can leave text unnormalized.
    """
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", nick).casefold())
    return _strip_invisible(folded).translate(_CONFUSABLES)


def _scripts(text: str) -> set[str]:
    """Which of the look-alike scripts the letters of ``text`` belong to.

    The script is read from the character's name ("CYRILLIC SMALL LETTER A"):
    the standard library has no script property, and for these three scripts
    the name prefix is exact enough.
    """
    found = set()
    for ch in text:
        if ch.isalpha():
            script = unicodedata.name(ch, "").split(" ", 1)[0]
            if script in _LOOKALIKE_SCRIPTS:
                found.add(script)
    return found


def check_nick(value: str) -> str:
    """A valid nickname as displayed (NFC, invisible characters removed), or ``nick_invalid``.

    Whether it is free is the server's business (:func:`nick_key`).
    """
    nick = unicodedata.normalize("NFC", value.strip())
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in nick):
        raise ChatError("nick_invalid", "a nickname cannot contain control characters")
    # Invisible characters only serve to tell apart names that look the same:
    # drop them from the name shown, not only from the key.
    nick = _strip_invisible(nick).strip()
    if not nick or not nick_key(nick):
        raise ChatError("nick_invalid", "a nickname needs visible characters")
    if not _NICK.fullmatch(nick):
        raise ChatError(
            "nick_invalid",
            f"a nickname is 1 to {MAX_NICK} letters, digits, '_', '.' or '-', starting with a letter or digit",
        )
    scripts = _scripts(unicodedata.normalize("NFKC", nick))
    if len(scripts) > 1:
        raise ChatError(
            "nick_invalid",
            f"a nickname cannot mix {' and '.join(s.title() for s in sorted(scripts))} letters (they look alike)",
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
