"""Django's development server (``runserver``), able to hand connections over.

:class:`WSGIServer` is what the ``runserver`` command of this app passes to
:func:`django.core.servers.basehttp.run` as ``server_cls``. Everything else
stays Django's: threading (or ``--nothreading``), the autoreloader, static
files, the ``django.server`` request log. Its request handler publishes a
:class:`~ws4py_integrations.adapter.Handover`; a detached connection is
neither answered, half-closed nor closed by the server, and its request
thread is free again at once.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import socket
import sys
import threading
from typing import Any
from wsgiref import simple_server

from django.core.servers import basehttp

from ..adapter import HANDOVER_KEY, Handover, take_buffered
from ..manager import Manager
from ..middleware import default_manager

__all__ = ["ServerHandler", "WSGIRequestHandler", "WSGIServer"]

logger = logging.getLogger("ws4py_integrations.django")


class _Handover(Handover):
    """One runserver request's connection."""

    def __init__(self, handler: WSGIRequestHandler, manager: Manager, raw_headers: list[tuple[str, str]]) -> None:
        self._handler = handler
        self.manager = manager
        self.raw_headers = raw_headers

    def detach(self) -> tuple[socket.socket, bytes]:
        handler = self._handler
        sock: socket.socket = handler.connection
        handler.detached = True
        handler.close_connection = True
        # Only WSGIServer installs this handler.
        handler.server.mark_detached(sock)
        return sock, take_buffered(handler.rfile, sock)


class ServerHandler(basehttp.ServerHandler):  # type: ignore[misc]
    """Django's ``ServerHandler``, writing nothing for a detached connection."""

    request_handler: WSGIRequestHandler

    def finish_response(self) -> None:
        if not self.request_handler.detached:
            super().finish_response()
            return
        # The connection belongs to a manager now: write nothing, but close
        # the response (Django's request_finished) and log the request.
        try:
            result: Any = getattr(self, "result", None)
            if hasattr(result, "close"):
                result.close()
        finally:
            self.close()

    def close(self) -> None:
        if self.request_handler.detached:
            # Django's close() drains the request body from the socket, which
            # the WebSocket owns now: only log (as 101) and reset.
            simple_server.ServerHandler.close(self)
        else:
            super().close()

    def handle_error(self) -> None:
        if self.request_handler.detached:
            # Nothing can be written to a connection the manager owns.
            logger.error(
                "the application raised after %s was upgraded (the WebSocket goes on)",
                self.environ.get("PATH_INFO"),
                exc_info=sys.exc_info(),
            )
            self.close()
        else:
            super().handle_error()


class WSGIRequestHandler(basehttp.WSGIRequestHandler):  # type: ignore[misc]
    """Django's request handler, plus the handover contract."""

    detached = False

    def raw_headers(self) -> list[tuple[str, str]]:
        """The request's header fields as received (see :attr:`Handover.raw_headers`)."""
        fields = []
        for name, value in self.headers.raw_items():
            first, *folded = str(value).split("\r\n")
            fields.append((name, "\n".join([first.strip(" \t"), *folded])))
        return fields

    def handle(self) -> None:
        # As Django's handle(), except that a detached connection is left alone:
        # no further request read from it, no half-close.
        self.close_connection = True
        self.handle_one_request()
        while not self.close_connection:
            self.handle_one_request()
        if self.detached:
            return
        with contextlib.suppress(AttributeError, OSError):
            self.connection.shutdown(socket.SHUT_WR)

    def handle_one_request(self) -> None:
        # As Django's, with our ServerHandler and a Handover in the environ.
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
            self.requestline = ""
            self.request_version = ""
            self.command = ""
            self.send_error(414)
            return
        if not self.parse_request():
            return
        # Before get_environ(), which drops the fields with underscores.
        raw_headers = self.raw_headers()
        environ = self.get_environ()
        environ[HANDOVER_KEY] = _Handover(self, self.server.manager, raw_headers)
        handler = ServerHandler(self.rfile, self.wfile, self.get_stderr(), environ)
        handler.request_handler = self
        handler.run(self.server.get_app())


class WSGIServer(basehttp.WSGIServer):  # type: ignore[misc]
    """Django's development server, with the handover contract.

    Django's ``run()`` builds it with Django's request handler; this one is
    used instead. WebSockets run on :func:`~ws4py_integrations.default_manager`
    (unless ``manager`` is given), so that views can broadcast through it;
    when the process exits (Ctrl-C, or the autoreloader restarting it), they
    are closed with 1001.
    """

    def __init__(
        self, server_address: Any, handler_class: Any, *args: Any, manager: Manager | None = None, **kwargs: Any
    ) -> None:
        if handler_class is basehttp.WSGIRequestHandler:
            handler_class = WSGIRequestHandler
        self.manager: Manager = manager if manager is not None else default_manager()
        self._detached: set[int] = set()
        self._detached_lock = threading.Lock()
        super().__init__(server_address, handler_class, *args, **kwargs)
        if manager is None:
            # The autoreloader ends the process with sys.exit() from its main
            # thread: atexit is the one moment both it and Ctrl-C go through.
            atexit.register(self.close_websockets)

    def mark_detached(self, sock: socket.socket) -> None:
        with self._detached_lock:
            self._detached.add(id(sock))

    def shutdown_request(self, request: Any) -> None:
        with self._detached_lock:
            if id(request) in self._detached:
                self._detached.discard(id(request))
                return
        super().shutdown_request(request)

    def close_websockets(self) -> None:
        """Close every WebSocket with 1001, waiting for the closing handshakes."""
        if self.manager.accepting and len(self.manager):
            logger.info("closing %d WebSocket(s) with 1001", len(self.manager))
        self.manager.stop()

    def server_close(self) -> None:
        self.close_websockets()
        super().server_close()
