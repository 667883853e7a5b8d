"""The ``gevent.pywsgi`` side: a handler class that offers connections for a handover.

pywsgi ends every request by reading once more from the socket and closing
it, and its ``StreamServer`` closes the socket when the handler returns. The
handler therefore detaches the socket from pywsgi (no final read, no close,
no response written): the request greenlet ends at the upgrade, and an open
WebSocket holds no slot of the server's pool (gunicorn's
``worker_connections``). :class:`WSGIServer` then leaves the socket open when
the request ends; under a stock pywsgi server the manager gets a socket
object of its own on the same descriptor, pywsgi's left empty. A TLS socket
cannot move to another object: its request greenlet stays parked until the
manager has closed the WebSocket.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Iterable
from typing import Any

from .._extras import missing_extra
from .._head import ReplayReader, plain_fields, read_header_lines
from .._signals import DEFAULT_SIGNALS
from ..adapter import HANDOVER_KEY, Handover, LineRecorder, raw_header_fields, take_buffered
from ..manager import Manager

try:
    import gevent
    import gevent.ssl
    from gevent import pywsgi
except ImportError as exc:
    raise missing_extra("ws4py_integrations.gevent", "gevent", exc) from exc

from ..manager.gevent import GeventManager

# What pywsgi makes of log=None, and of a logging.Logger given as log.
_NoopLog: Any = getattr(pywsgi, "_NoopLog", ())
_LoggingLogAdapter: Any = getattr(pywsgi, "LoggingLogAdapter", ())
# The message class of pywsgi's parser (Python 3), which the fast path fills in.
_OldMessage: Any = getattr(pywsgi, "OldMessage", None)

__all__ = ["WSGIServer", "WebSocketHandler", "server_manager"]

logger = logging.getLogger("ws4py_integrations.gevent")

#: Attribute of a pywsgi server holding the manager of its WebSockets.
MANAGER_ATTRIBUTE = "ws4py_manager"
_manager_lock = threading.Lock()


def server_manager(server: Any) -> Manager:
    """The manager of a pywsgi ``server``'s WebSockets (``server.ws4py_manager``),
    created on first use: call ``server_manager(server).stop()`` to close them
    with 1001 before stopping a stock pywsgi server."""
    manager: Manager | None = getattr(server, MANAGER_ATTRIBUTE, None)
    if manager is None:
        with _manager_lock:
            manager = getattr(server, MANAGER_ATTRIBUTE, None)
            if manager is None:
                manager = GeventManager()
                setattr(server, MANAGER_ATTRIBUTE, manager)
    return manager


class _DetachedInput:
    """Stands for ``wsgi.input`` once detached: pywsgi must not read the body."""

    def _discard(self) -> None:
        pass


class _Handover(Handover):
    """One pywsgi request's connection."""

    def __init__(
        self,
        handler: WebSocketHandler,
        manager: Manager,
        raw_lines: list[bytes] | None,
        raw_headers: list[tuple[str, str]] | None = None,
    ) -> None:
        self._handler: WebSocketHandler | None = handler
        self.manager = manager
        # What accept() returned: getpeername() spared.
        self.peer_address = handler.client_address
        if raw_headers is not None:
            self.raw_headers = raw_headers
        elif raw_lines is not None:
            self.raw_headers = raw_header_fields(raw_lines)

    def release(self) -> None:
        """The request is over: forget the handler (see WebSocketHandler.handle)."""
        self._handler = None

    def detach(self) -> tuple[socket.socket, bytes]:
        handler = self._handler
        if handler is None:
            raise RuntimeError("the request of this connection is over")
        sock: socket.socket = handler.socket
        rfile = handler.rfile
        handler.ws_detached = True
        handler.close_connection = True
        # pywsgi must neither read the request body, nor do its final recv, nor close.
        handler.socket = None
        handler.wsgi_input = _DetachedInput()
        buffered = take_buffered(rfile, sock)
        # Drops the reader's reference to the socket (it does not close it).
        rfile.close()
        if isinstance(sock, (ssl.SSLSocket, gevent.ssl.SSLSocket)):
            # TLS state cannot move to another socket object: the request
            # greenlet stays parked until the WebSocket is done (see _park).
            return sock, buffered
        # The request greenlet (and its pool slot) ends now instead of living
        # as long as the WebSocket; the server must then not close the socket.
        handler.ws_parked = False
        keep = getattr(handler.server, "_ws_keep_open", None)
        if keep is not None:
            # Our server leaves it open when the request ends (WSGIServer.do_close).
            keep(sock)
            own = sock
        else:
            # A stock pywsgi server closes it: a socket object of our own on the
            # same descriptor, pywsgi's left empty (its close() closes nothing).
            # This costs a new gevent socket (two watchers) per handshake.
            own = type(sock)(sock.family, sock.type, sock.proto, fileno=sock.detach())
        # Non-blocking like the one it replaces (take_buffered made it so): the
        # 101 then goes out in one send, without gevent's sendall (a Python loop
        # and a getsockopt per call). gevent keeps the descriptor non-blocking
        # whatever the timeout, so this makes no system call.
        own.settimeout(0.0)
        return own, buffered


class WebSocketHandler(pywsgi.WSGIHandler):  # type: ignore[misc]
    """``gevent.pywsgi.WSGIHandler`` that can hand its connection to a WebSocket.

    Use it as ``pywsgi.WSGIServer(address, app, handler_class=WebSocketHandler)``.
    The server's WebSockets run on ``server.ws4py_manager`` (a
    :class:`GeventManager` created on first use, or the one given to
    :class:`WSGIServer`).
    """

    ws_detached = False
    # Whether the request greenlet must wait for the WebSocket (TLS sockets).
    ws_parked = True
    _ws_handover: _Handover | None = None
    _ws_raw_lines: list[bytes] | None = None

    _ws_raw_headers: list[tuple[str, str]] | None = None

    def MessageClass(self, *args: Any) -> Any:
        # pywsgi parses the header lines with http.client and the email
        # package. Plain lines (see ws4py_integrations._head) make the same
        # message without it; any other head goes to pywsgi's parser on the
        # same bytes. The lines are kept as received, for Handover.raw_headers.
        if not args:
            return super().MessageClass()
        lines, plain = read_header_lines(args[0])
        if plain and _OldMessage is not None:
            fields, self._ws_raw_headers = plain_fields(lines)
            self._ws_raw_lines = None  # set per request: a connection may carry several
            message = _OldMessage()
            message._headers = fields
            return message
        recorder = LineRecorder(ReplayReader(lines, args[0]))
        self._ws_raw_lines = recorder.lines
        self._ws_raw_headers = None
        return super().MessageClass(recorder, *args[1:])

    def log_request(self) -> None:
        # pywsgi formats the access line (a datetime, the request line) before
        # its log sees it, even a log that drops it (log=None) or a logger not
        # enabled for its level: skip the formatting for those.
        log = self.server.log
        if isinstance(log, _NoopLog):
            return
        if isinstance(log, _LoggingLogAdapter) and not log._logger.isEnabledFor(log._level):
            return
        super().log_request()

    def _headers(self) -> Iterable[tuple[str, str]]:
        # pywsgi's, without formatting each field as a line and splitting it
        # again: the same keys, values and order (the email message's fields
        # hold no line of their own, so no field continues another here).
        fields = getattr(self.headers, "_headers", None)
        if type(fields) is not list:
            yield from super()._headers()
            return
        for name, value in fields:
            if "_" in name:
                continue  # pywsgi drops names with underscores
            key = name.replace("-", "_").upper()
            if key != "CONTENT_TYPE" and key != "CONTENT_LENGTH":
                yield "HTTP_" + key, value.strip()

    def get_environ(self) -> dict[str, Any]:
        environ: dict[str, Any] = super().get_environ()
        handover = _Handover(self, server_manager(self.server), self._ws_raw_lines, self._ws_raw_headers)
        self._ws_handover = environ[HANDOVER_KEY] = handover
        return environ

    def finalize_headers(self) -> None:
        # pywsgi closes the connection after an HTTP/1.1 request that asked for
        # "close" without saying so: a client that pools its sockets (Node's
        # agent) then reuses a closed one. RFC 9112 §9.6: a server that closes
        # sends "Connection: close".
        super().finalize_headers()
        if self.connection_upgraded:
            return
        headers: list[tuple[bytes, bytes]] = self.response_headers
        if (
            self.code not in (204, 304)
            and not self.response_use_chunked
            and not any(name.lower() == b"content-length" for name, _ in headers)
        ):
            self.close_connection = True  # the body ends where the connection does
        if not self.close_connection:
            return
        tokens = [
            token.strip().lower()
            for name, value in headers
            if name.lower() == b"connection"
            for token in value.split(b",")
        ]
        if b"close" not in tokens:
            headers[:] = [(name, value) for name, value in headers if name.lower() != b"connection"]
            headers.append((b"Connection", b"close"))

    def process_result(self) -> None:
        if not self.ws_detached:
            super().process_result()
        # Detached: the middleware wrote the 101; the response is only for the log.

    def handle_error(self, t: Any, v: Any, tb: Any) -> None:
        if not self.ws_detached:
            super().handle_error(t, v, tb)
            return
        # No error response can go on a connection that is not ours any more.
        self._log_error(t, v, tb)
        self.close_connection = True

    def handle(self) -> None:
        try:
            super().handle()
        finally:
            if self.ws_detached and self.ws_parked:
                self._park()
            handover = self._ws_handover
            if handover is not None:
                # The last request's environ holds the handover, which holds this
                # handler: without this the handler, its reader and the request
                # would wait for the cyclic garbage collector, on every connection.
                handover.release()

    def _park(self) -> None:
        """Keep this request greenlet until the WebSocket no longer needs the socket."""
        handover = self._ws_handover
        websocket = handover.websocket if handover is not None else None
        if websocket is None:
            return  # the upgrade failed; the middleware closed the socket
        manager = websocket.manager
        try:
            if isinstance(manager, GeventManager):
                manager.wait_released(websocket)
            else:
                # A thread-based manager: waiting on its lock would block the
                # hub, so poll until it is done with the socket.
                while not manager.wait_released(websocket, 0):
                    gevent.sleep(0.25)
        except BaseException:
            # Killed (server stop timeout, worker exit): the server closes the
            # socket after us, so drop the WebSocket first.
            websocket.terminate()
            raise


class WSGIServer(pywsgi.WSGIServer):  # type: ignore[misc]
    """``gevent.pywsgi.WSGIServer`` with :class:`WebSocketHandler` and a manager.

    ``manager`` defaults to a new :class:`GeventManager`. :meth:`close` and
    :meth:`stop` close every WebSocket with 1001 (``stop`` waits for the
    closing handshakes, up to the largest ``close_timeout``); :meth:`run`
    serves until SIGTERM or Ctrl-C, then stops. TLS takes pywsgi's arguments
    (``keyfile``/``certfile`` or ``ssl_context``).
    """

    handler_class = WebSocketHandler

    def __init__(
        self, listener: Any, application: Any = None, *args: Any, manager: Manager | None = None, **kwargs: Any
    ) -> None:
        setattr(self, MANAGER_ATTRIBUTE, manager if manager is not None else GeventManager())
        self._ws_stopper: gevent.Greenlet[Any, Any] | None = None
        # ids of client sockets a WebSocket took (see do_close): each stays
        # alive, so its id unique, until its request's do_close.
        self._ws_kept: set[int] = set()
        super().__init__(listener, application, *args, **kwargs)

    def _ws_keep_open(self, sock: Any) -> None:
        """A WebSocket took ``sock`` (plain TCP): do not close it when its request ends."""
        self._ws_kept.add(id(sock))

    def do_close(self, sock: Any, *args: Any) -> None:
        # StreamServer closes every client socket when its request ends.
        try:
            self._ws_kept.remove(id(sock))
        except KeyError:
            super().do_close(sock, *args)

    @property
    def manager(self) -> Manager:
        """The manager running this server's WebSockets."""
        manager: Manager = getattr(self, MANAGER_ATTRIBUTE)
        return manager

    def close(self) -> None:
        """Stop accepting, and start closing every WebSocket with 1001 (in a greenlet)."""
        super().close()
        if self._ws_stopper is None:
            self._ws_stopper = gevent.spawn(self.manager.stop)

    def stop(self, timeout: float | None = None) -> None:
        """Stop accepting, close every WebSocket with 1001 and wait for them, then stop pywsgi."""
        self.close()
        stopper = self._ws_stopper
        if stopper is not None and stopper is not gevent.getcurrent():
            stopper.join()
        super().stop(timeout)

    def run(self, signals: Iterable[int] = DEFAULT_SIGNALS) -> None:
        """Serve until one of ``signals`` (SIGTERM, SIGINT) arrives, then :meth:`stop`."""
        watchers = [gevent.signal_handler(sig, self._stop_on_signal) for sig in signals]
        try:
            self.serve_forever()
        finally:
            for watcher in watchers:
                watcher.cancel()

    def _stop_on_signal(self) -> None:
        logger.info("signal received: stopping (WebSockets get 1001)")
        self.stop()
