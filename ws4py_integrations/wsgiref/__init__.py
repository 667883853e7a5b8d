"""WebSocket on the standard library's ``wsgiref`` server.

``make_server(host, port, app)`` returns a threaded :class:`WSGIServer` whose
request handler offers each connection for a handover
(:mod:`ws4py_integrations.adapter`). Plain HTTP is handled exactly as by
stock ``wsgiref``; nothing is patched process-wide. ``server.run()`` runs
until SIGTERM or Ctrl-C, then closes every WebSocket with 1001.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterable
from typing import Any
from wsgiref import simple_server

from .._signals import DEFAULT_SIGNALS, stop_on_signals
from ..adapter import HANDOVER_KEY, Handover, take_buffered
from ..manager import Manager, ThreadedManager
from ..middleware import WSGIApp

__all__ = ["WSGIServer", "WebSocketWSGIRequestHandler", "make_server"]


class _Handover(Handover):
    """One wsgiref request's connection."""

    def __init__(self, handler: WebSocketWSGIRequestHandler, manager: Manager | None) -> None:
        self._handler = handler
        self.manager = manager

    def detach(self) -> tuple[socket.socket, bytes]:
        handler = self._handler
        sock: socket.socket = handler.connection
        handler.detached = True
        server = handler.server
        if isinstance(server, WSGIServer):
            server.mark_detached(sock)
        return sock, take_buffered(handler.rfile, sock)


class _ServerHandler(simple_server.ServerHandler):
    request_handler: WebSocketWSGIRequestHandler

    def finish_response(self) -> None:
        if not self.request_handler.detached:
            super().finish_response()
            return
        # The connection belongs to a manager now: write nothing.
        result: Any = getattr(self, "result", None)
        try:
            if hasattr(result, "close"):
                result.close()
        finally:
            self.close()


class WebSocketWSGIRequestHandler(simple_server.WSGIRequestHandler):
    """``wsgiref``'s request handler, plus the contract that lets a request be detached."""

    detached = False

    def handle(self) -> None:
        # As WSGIRequestHandler.handle, with our ServerHandler and the contract.
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
            self.requestline = ""
            self.request_version = ""
            self.command = ""
            self.send_error(414)
            return
        if not self.parse_request():
            return
        environ = self.get_environ()
        manager = self.server.manager if isinstance(self.server, WSGIServer) else None
        environ[HANDOVER_KEY] = _Handover(self, manager)
        handler = _ServerHandler(
            self.rfile,
            self.wfile,  # type: ignore[arg-type]
            self.get_stderr(),
            environ,
            multithread=True,
        )
        handler.request_handler = self
        handler.run(self.server.get_app())  # type: ignore[attr-defined]


class WSGIServer(socketserver.ThreadingMixIn, simple_server.WSGIServer):
    """A threaded ``wsgiref`` server that owns a manager for its WebSockets.

    :meth:`server_close` closes every WebSocket with 1001 and stops the
    manager; :meth:`run` serves until a signal, then does so.
    """

    daemon_threads = True
    block_on_close = False
    # socketserver's default backlog of 5 drops SYNs when clients connect in
    # bursts (each dropped one waits a 1 s retransmit).
    request_queue_size = 128

    def __init__(self, *args: Any, manager: Manager | None = None, **kwargs: Any) -> None:
        self.manager: Manager = manager if manager is not None else ThreadedManager(name="ws4py-wsgiref")
        self._detached: set[int] = set()
        self._detached_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def mark_detached(self, sock: socket.socket) -> None:
        with self._detached_lock:
            self._detached.add(id(sock))

    def shutdown_request(self, request: Any) -> None:
        with self._detached_lock:
            if id(request) in self._detached:
                self._detached.discard(id(request))
                return
        super().shutdown_request(request)

    def server_close(self) -> None:
        """Close every WebSocket with 1001 (waiting for the closing handshakes), then the socket."""
        self.manager.stop()
        super().server_close()

    def run(self, signals: Iterable[int] = DEFAULT_SIGNALS) -> None:
        """Serve until one of ``signals`` (SIGTERM, SIGINT) arrives, then close every
        WebSocket with 1001 and the server. Call it on the main thread."""
        with stop_on_signals(self.shutdown, signals):
            try:
                self.serve_forever()
            finally:
                self.server_close()


def make_server(
    host: str,
    port: int,
    app: WSGIApp,
    server_class: type[WSGIServer] = WSGIServer,
    handler_class: type[WebSocketWSGIRequestHandler] = WebSocketWSGIRequestHandler,
    manager: Manager | None = None,
) -> WSGIServer:
    """Create a threaded WebSocket-capable ``wsgiref`` server (port 0 picks a free port)."""
    server = server_class((host, port), handler_class, manager=manager)
    server.set_app(app)
    return server
