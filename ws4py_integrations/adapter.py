"""The adapter contract: how a WSGI server hands a connection to the WebSockets.

A server adapter does three things, nothing more:

1. put a :class:`Handover` in the environ of every request, under
   :data:`HANDOVER_KEY`;
2. when the middleware calls :meth:`Handover.detach`, stop the server from
   reading, writing, closing or reusing the connection, and return the
   socket with every byte the server already read past the request head
   (:func:`take_buffered` does the reading part for the usual readers);
3. ignore whatever the application returns for that request.

Everything else (the handshake, the 101 or the refusal, running the
connection) belongs to :mod:`ws4py_integrations.middleware` and the manager.
After the upgrade, :meth:`Handover.upgraded` tells the adapter which
:class:`~ws4py_integrations.WebSocket` now owns the socket, for servers that
must keep something alive until the manager is done with it (gevent parks
its request greenlet: :meth:`Manager.wait_released
<ws4py_integrations.Manager.wait_released>`).
"""

from __future__ import annotations

import abc
import os
import signal
import socket
import ssl
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .manager.base import Manager
    from .websocket import WebSocket

__all__ = [
    "HANDOVER_KEY",
    "NO_HANDOVER_KEY",
    "Handover",
    "LineRecorder",
    "raw_header_fields",
    "take_buffered",
    "take_connection",
    "take_connection_unsupported",
]

#: Environ key under which a server adapter publishes its :class:`Handover`.
HANDOVER_KEY = "ws4py_integrations.handover"

#: Environ key under which an adapter that cannot hand over this request (a TLS
#: connection it cannot share, say) puts the reason, with the fix: the
#: middleware answers 501 with it.
NO_HANDOVER_KEY = "ws4py_integrations.no_handover"

_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class Handover(abc.ABC):
    r"""One request's connection, as a server adapter offers it to the middleware.

    ``manager`` is the manager that should run the connection (``None``: the
    application's own or the process default); :attr:`websocket` is set once
    the upgrade succeeded.

    :attr:`raw_headers` is the request's header fields as the server
    received them, in order and with duplicates: ``(name, value)`` with the
    name exactly as sent (case, and any whitespace before the colon, kept)
    and the value stripped of the spaces and tabs around it. An obs-fold
    continuation line stays inside the value of the field it continues, as
    ``"\n"`` plus the line as received (its leading whitespace kept, its
    line ending dropped); a line without a colon is a name with an empty
    value. Bytes are decoded as latin-1. Servers' parsers merge duplicates
    or unfold lines in the environ; this is what the handshake checks
    compare it with. ``None``: the adapter could not see the raw head.
    """

    manager: Manager | None = None
    websocket: WebSocket | None = None
    raw_headers: list[tuple[str, str]] | None = None
    #: The peer's address as the server's ``accept()`` returned it (the same
    #: value as ``socket.getpeername()``), or ``None`` when the adapter does
    #: not know it: the connection then asks the socket.
    peer_address: Any = None

    @abc.abstractmethod
    def detach(self) -> tuple[socket.socket, bytes]:
        """Take the connection from the server: the socket and the bytes it buffered.

        Afterwards the server must not read, write, close or reuse the
        connection, and must ignore the application's response.
        """

    def upgraded(self, websocket: WebSocket) -> None:
        """The upgrade succeeded: ``websocket`` owns the socket now."""
        self.websocket = websocket


def raw_header_fields(lines: Iterable[bytes]) -> list[tuple[str, str]]:
    """The :attr:`Handover.raw_headers` of a request head's header lines (after the request line).

    Stops at the first empty line (or at the end of ``lines``).
    """
    fields: list[tuple[str, str]] = []
    for raw in lines:
        line = raw.decode("latin-1").rstrip("\r\n")
        if not line:
            break
        if line[0] in " \t":
            # obs-fold: the value goes on, as the peer sent it.
            if fields:
                name, value = fields[-1]
                fields[-1] = (name, f"{value}\n{line}")
            else:
                fields.append(("", line))
            continue
        name, colon, value = line.partition(":")
        fields.append((name, value.strip(" \t") if colon else ""))
    return fields


class LineRecorder:
    """A reader that passes ``readline`` through and keeps a copy of each line in :attr:`lines`.

    Adapters read header lines through it to fill :attr:`Handover.raw_headers`.
    """

    def __init__(self, rfile: Any) -> None:
        self._rfile = rfile
        self.lines: list[bytes] = []

    def readline(self, size: int = -1) -> bytes:
        line: bytes = self._rfile.readline(size)
        self.lines.append(line)
        return line


def take_buffered(reader: Any, sock: socket.socket) -> bytes:
    """The bytes a server's ``reader`` holds past the request head, without waiting.

    Works with cheroot's reader (``has_data()`` / ``peek()``, which never
    touches the socket) and with :class:`io.BufferedReader` (``peek()``
    returns its buffer, or reads once: the socket is made non-blocking first
    so that it never waits). Bytes still inside a TLS object are drained by
    the manager, which reads TLS sockets until they have nothing pending.
    """
    has_data = getattr(reader, "has_data", None)
    if has_data is not None:
        return bytes(reader.peek(0)) if has_data() else b""
    sock.setblocking(False)
    try:
        return bytes(reader.peek())
    except _WOULD_BLOCK:
        # The reader's buffer was empty and the socket had nothing more.
        return b""


def take_connection_unsupported(sock: object) -> str | None:
    """Why :func:`take_connection` cannot take ``sock`` here, or ``None`` if it can."""
    if isinstance(sock, ssl.SSLSocket):
        return "the server cannot hand over a TLS connection (its TLS state stays in its socket object)"
    if not isinstance(sock, socket.socket) or sock.fileno() < 0:
        return "the server published no open socket"
    if os.name != "posix":  # pragma: no cover - tested on POSIX only
        return "the server can hand over connections only on POSIX systems"
    if signal.getsignal(signal.SIGPIPE) == signal.SIG_DFL:
        # The server's last write goes to a dead socket; with SIGPIPE's
        # default action that would end the process instead of raising.
        return "SIGPIPE has its default action in this process (Python ignores it unless told otherwise)"
    return None


def take_connection(sock: socket.socket) -> socket.socket:
    """Take ``sock``'s connection from a server that keeps using ``sock``: returns a
    new socket object for the connection, and leaves ``sock`` on a dead socket.

    The descriptor is duplicated, then a dead socket (one end of a socket
    pair whose other end is closed) is put in its place, in one ``dup2``.
    Whatever the server does with ``sock`` afterwards touches only the dead
    socket: reads see end-of-file, writes fail with ``BrokenPipeError``,
    ``shutdown`` and ``close`` leave the connection alone. POSIX only, not
    for TLS sockets (see :func:`take_connection_unsupported`).
    """
    fd = sock.fileno()
    ours = socket.socket(fileno=os.dup(fd))
    dead, peer = socket.socketpair()
    peer.close()
    try:
        os.dup2(dead.fileno(), fd, inheritable=False)
    finally:
        dead.close()
    return ours
