"""WebSocket on werkzeug's development server (``flask run``, ``app.run()``).

Nothing to set up: :class:`~ws4py_integrations.WebSocketMiddleware` finds
werkzeug's server by what it publishes in the environ (``werkzeug.socket``,
and ``wsgi.input`` being the request handler's buffered reader) and takes
the connection with a :class:`WerkzeugHandover`.

How the connection is taken, without patching werkzeug: the bytes the
handler's reader already holds past the request head are copied, the
socket's file descriptor is duplicated for the WebSocket, and a dead socket
(one end of a socket pair whose other end is closed) is put in its place
with ``dup2``. From then on, whatever werkzeug does with its socket object
touches only the dead socket: its reads see end-of-file, its writes fail
with ``BrokenPipeError`` (which werkzeug treats as a client that went away,
silently), and its ``shutdown`` and ``close`` leave the WebSocket alone.
The request thread returns at once; the WebSocket runs on the manager.

Not supported, answered ``501`` with the reason: werkzeug over TLS
(``ssl_context``: the TLS state lives in werkzeug's socket object, which
cannot be shared), the forking server (``processes > 1``: each request's
process ends with the request) and Windows (sockets there are not file
descriptors).
"""

from __future__ import annotations

import atexit
import io
import logging
import socket
import ssl
import threading
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .adapter import Handover, take_buffered, take_connection, take_connection_unsupported

if TYPE_CHECKING:
    from .manager.base import Manager
    from .websocket import WebSocket

__all__ = ["WerkzeugHandover", "handover_from_environ"]

logger = logging.getLogger("ws4py_integrations.werkzeug")

#: How long, at most, the process waits at exit for WebSockets' closing handshakes.
EXIT_CLOSE_TIMEOUT = 2.0

#: The environ key under which werkzeug's server publishes the client socket.
SOCKET_KEY = "werkzeug.socket"


class WerkzeugHandover(Handover):
    """One request's connection on werkzeug's development server.

    ``sock`` is werkzeug's socket (``environ["werkzeug.socket"]``) and
    ``rfile`` its buffered reader (``environ["wsgi.input"]``).
    """

    def __init__(self, sock: socket.socket, rfile: io.BufferedReader) -> None:
        self._sock = sock
        self._rfile = rfile

    def detach(self) -> tuple[socket.socket, bytes]:
        sock = self._sock
        buffered = take_buffered(self._rfile, sock)
        ours = take_connection(sock)
        logger.debug("took a connection from werkzeug (%d bytes buffered)", len(buffered))
        return ours, buffered

    def upgraded(self, websocket: WebSocket) -> None:
        super().upgraded(websocket)
        _close_at_exit(websocket.manager)


_managers: weakref.WeakSet[Manager] = weakref.WeakSet()
_managers_lock = threading.Lock()


def _close_at_exit(manager: Manager) -> None:
    # werkzeug's server thread just stops when the process exits (Ctrl-C, or
    # the reloader restarting it): give the WebSockets their 1001 first.
    with _managers_lock:
        if not _managers:
            atexit.register(_stop_managers)
        _managers.add(manager)


def _stop_managers() -> None:
    with _managers_lock:
        managers = list(_managers)
        _managers.clear()
    for manager in managers:
        # stop() does nothing for a manager the application stopped already.
        logger.info("closing %d WebSocket(s) with 1001: the process is exiting", len(manager))
        manager.stop(EXIT_CLOSE_TIMEOUT)


def handover_from_environ(environ: Mapping[str, Any]) -> Handover | str:
    """A :class:`WerkzeugHandover` for a request served by werkzeug's server, or
    why it cannot have one (the reason, with the fix, goes into the ``501``)."""
    sock = environ.get(SOCKET_KEY)
    rfile = environ.get("wsgi.input")
    unsupported = take_connection_unsupported(sock)
    if isinstance(sock, ssl.SSLSocket):
        return (
            "werkzeug's server cannot hand over a TLS connection (ssl_context); run it without "
            "ssl_context behind a TLS-terminating proxy, or use the wsgiref, CherryPy or gevent adapter"
        )
    if unsupported is not None:
        return f"werkzeug: {unsupported}; use the wsgiref, CherryPy or gevent adapter"
    if environ.get("wsgi.multiprocess"):
        # The forking server's child process exits once the request is done,
        # and would take the WebSocket with it.
        return "werkzeug's server with processes > 1 ends each request's process; run it threaded (the default)"
    if not isinstance(rfile, io.BufferedReader):
        return (
            f"{SOCKET_KEY} is there but wsgi.input is not werkzeug's buffered reader (a chunked "
            "request?); run werkzeug's own server (flask run) or a ws4py_integrations adapter"
        )
    assert isinstance(sock, socket.socket)
    return WerkzeugHandover(sock, rfile)
