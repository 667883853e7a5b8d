"""A fast path for the header lines of a request head, for handler classes we own.

``http.client.parse_headers`` (which ``http.server`` and ``gevent.pywsgi``
use) reads the header lines, then hands them to the ``email`` package,
which costs more than the rest of a WebSocket upgrade's parsing. For a head
whose every header line is plainly well-formed (a token name, a colon, a
value of visible ASCII, spaces and tabs, CRLF or LF), the ``email``
parser's answer is known in advance: one ``(name, value)`` per line, the
value without its leading spaces and tabs and its line ending.
:func:`read_header_lines` reads the lines exactly as ``http.client`` does
(the same line-length and line-count limits) and says whether they are all
plain; anything else (obs-fold, bare CR, control bytes, non-ASCII, a line
without a colon or with an invalid name, an oversized line, too many
lines) goes to the server's own parser, on the same bytes, so the server's
answer to unusual input does not change.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["PLAIN_LINE", "ReplayReader", "read_header_lines"]

# http.client's limits (_MAXLINE, _MAXHEADERS): a longer line or one line
# more and the server's own parser must give its answer.
MAX_LINE = 65536
MAX_LINES = 100

#: A header line the email parser reads as exactly one field: an RFC 9110
#: token, a colon, a value of visible ASCII, spaces and tabs, then CRLF or LF.
PLAIN_LINE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\t\x20-\x7e]*\r?\n")
_HEAD_END = (b"\r\n", b"\n", b"")


def read_header_lines(rfile: Any) -> tuple[list[bytes], bool]:
    """The header lines read from ``rfile`` (through the empty line) and whether all are plain.

    Reading stops, and the lines are not plain, at a line longer than
    ``MAX_LINE`` or once ``MAX_LINES`` lines were read: the server's parser
    then reads the rest itself (see :class:`ReplayReader`) and gives its
    own answer.
    """
    lines: list[bytes] = []
    plain = PLAIN_LINE.fullmatch
    while True:
        line: bytes = rfile.readline(MAX_LINE + 1)
        lines.append(line)
        if line in _HEAD_END:
            return lines, True
        if len(line) > MAX_LINE or len(lines) >= MAX_LINES or plain(line) is None:
            return lines, False


def plain_fields(lines: list[bytes]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The email parser's fields and :attr:`Handover.raw_headers` of plain ``lines``."""
    fields: list[tuple[str, str]] = []
    raw: list[tuple[str, str]] = []
    for line in lines:
        if line in _HEAD_END:
            break
        name, _, value = line.decode("ascii").partition(":")
        # As the email parser (compat32): leading spaces and tabs and the line ending go.
        value = value.lstrip(" \t").rstrip("\r\n")
        fields.append((name, value))
        raw.append((name, value.rstrip(" \t")))
    return fields, raw


class ReplayReader:
    """A reader whose ``readline`` returns ``lines`` first, then reads ``rfile``.

    Gives the server's own parser the lines already read, as if unread.
    """

    def __init__(self, lines: list[bytes], rfile: Any) -> None:
        self._lines = lines
        self._index = 0
        self._rfile = rfile

    def readline(self, size: int = -1) -> bytes:
        if self._index < len(self._lines):
            line = self._lines[self._index]
            self._index += 1
            return line
        line_read: bytes = self._rfile.readline(size)
        return line_read
