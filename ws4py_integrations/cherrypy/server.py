"""WebSocket on cheroot, the HTTP server of CherryPy (no CherryPy needed here).

cheroot calls its WSGI application through a *gateway* class, chosen per
server (``server.gateway``). :func:`websocket_gateway` derives a gateway that
offers each connection for a handover (:mod:`ws4py_integrations.adapter`); :func:`install_gateway` puts it on a server, and
:class:`WSGIServer` is a :class:`cheroot.wsgi.Server` with it installed.

Detaching a request uses cheroot's own per-request and per-connection flags,
nothing process-wide:

- ``req.close_connection = True``: the connection is not kept alive, so cheroot
  never re-selects or reads it again;
- ``conn.linger = True``: cheroot's ``HTTPConnection.close()`` leaves the socket
  alone (it only closes its reader);
- ``req.sent_headers = True``: cheroot believes the response has started and
  writes neither a response nor an error page;
- the connection's reader and writer are closed, so cheroot's shutdown, which
  only touches connections whose reader is open, never shuts the socket down.

The bytes cheroot's reader had buffered past the request head are handed over
with the socket, and the socket loses cheroot's timeout.

cheroot gives a connection to one of its worker threads as soon as it is
accepted or readable, and the worker then blocks reading the request head
until ``socket_timeout``: a few silent or trickling clients hold every
worker. :func:`install_gateway` therefore also makes the server wait for
complete request heads on its selector thread (:class:`HeadWait`, a
per-server ``process_conn``): a connection reaches a worker only once its
head has arrived, and is closed if that takes longer than ``socket_timeout``
(cheroot's expiry of idle connections). It records the raw header lines for
:attr:`Handover.raw_headers <ws4py_integrations.adapter.Handover.raw_headers>`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from .._extras import missing_extra
from .._signals import DEFAULT_SIGNALS, stop_on_signals
from ..adapter import HANDOVER_KEY, Handover, LineRecorder, raw_header_fields, take_buffered
from ..manager import Manager, ThreadedManager
from ..middleware import WSGIApp

try:
    import cheroot.makefile
    import cheroot.server
    import cheroot.wsgi
except ImportError as exc:
    raise missing_extra("ws4py_integrations.cherrypy", "cherrypy", exc) from exc

__all__ = ["HeadWait", "WSGIServer", "WebSocketGatewayMixin", "install_gateway", "websocket_gateway"]

logger = logging.getLogger("ws4py_integrations.cherrypy")

#: A manager, a callable returning the manager to use now, or ``None``.
ManagerSource = Manager | Callable[[], Manager | None] | None


def _discard(chunk: bytes) -> None:
    """The WSGI ``write`` of a detached request: the bytes go nowhere."""


class _Handover(Handover):
    """One cheroot request's connection."""

    def __init__(self, req: cheroot.server.HTTPRequest, manager_source: Callable[[], Manager | None]) -> None:
        self._req = req
        self._manager_source = manager_source
        self.detached = False
        lines: list[bytes] | None = getattr(req, "ws_raw_lines", None)
        if lines is not None:
            self.raw_headers = raw_header_fields(lines)

    @property
    def manager(self) -> Manager | None:
        # Looked up when the application upgrades: plain requests never
        # touch it, and an upgrade gets the manager current at that moment.
        return self._manager_source()

    @manager.setter
    def manager(self, manager: Manager | None) -> None:
        self._manager_source = lambda: manager

    def detach(self) -> tuple[socket.socket, bytes]:
        if self.detached:
            raise RuntimeError("this connection was already detached")
        req = self._req
        conn = req.conn
        sock: socket.socket = conn.socket
        self.detached = True
        # cheroot: do not keep the connection alive, do not close the socket,
        # do not write a response or an error page for this request.
        req.close_connection = True
        req.sent_headers = True
        conn.linger = True
        rfile = conn.rfile
        buffered = take_buffered(rfile, sock)
        # Closing the file objects leaves the socket open (they do not own it)
        # and tells cheroot's shutdown that this connection is none of its business.
        for stream in (rfile, conn.wfile):
            with contextlib.suppress(OSError, ValueError):
                stream.close()
        # cheroot's read timeout must not apply to a long-lived WebSocket.
        # Non-blocking rather than blocking: the 101 then goes out in one
        # send, and the manager needs the socket non-blocking anyway.
        sock.settimeout(0.0)
        return sock, buffered


class WebSocketGatewayMixin:
    """Adds the adapter contract to a :class:`cheroot.wsgi.Gateway` subclass.

    Use :func:`websocket_gateway` to build a gateway class from it.
    """

    req: cheroot.server.HTTPRequest
    _ws_base: type[cheroot.wsgi.Gateway]
    _ws_manager: ManagerSource = None
    _ws_handover: _Handover | None = None

    def get_environ(self) -> dict[str, Any]:
        environ: dict[str, Any] = super().get_environ()  # type: ignore[misc]
        # Only sockets the manager can run: plain sockets and ``ssl`` sockets
        # (cheroot's "builtin" TLS adapter), not pyOpenSSL connections. Without
        # the key, an upgrade is refused with 501 and a clear log message.
        if isinstance(self.req.conn.socket, socket.socket):
            self._ws_handover = _Handover(self.req, self._current_manager)
            environ[HANDOVER_KEY] = self._ws_handover
        return environ

    @classmethod
    def _current_manager(cls) -> Manager | None:
        # A class method: the handover keeps it, and a method bound to the
        # gateway would make gateway, handover and request a reference cycle.
        source = cls._ws_manager
        if source is None or isinstance(source, Manager):
            return source
        return source()

    @property
    def detached(self) -> bool:
        """Whether the application took this request's connection."""
        return self._ws_handover is not None and self._ws_handover.detached

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        if self.detached:
            # The application wrote the 101 itself; its response is ignored.
            return _discard
        result: Callable[[bytes], None] = super().start_response(status, headers, exc_info)  # type: ignore[misc]
        return result

    def write(self, chunk: bytes) -> None:
        if self.detached:
            return
        super().write(chunk)  # type: ignore[misc]


def websocket_gateway(
    base: type[cheroot.wsgi.Gateway] = cheroot.wsgi.Gateway_10, manager: ManagerSource = None
) -> type[cheroot.wsgi.Gateway]:
    """A subclass of the cheroot gateway ``base`` that offers connections for a handover.

    ``manager`` is the :class:`~ws4py_integrations.Manager` offered to the
    application, or a callable returning it at each request (``None``: the
    application's own or the process default).
    """
    if issubclass(base, WebSocketGatewayMixin):
        base = base._ws_base
    if not (isinstance(base, type) and issubclass(base, cheroot.wsgi.Gateway)):
        raise TypeError(f"base must be a cheroot.wsgi.Gateway subclass, not {base!r}")
    namespace = {"_ws_base": base, "_ws_manager": manager, "__module__": __name__}
    gateway: type[cheroot.wsgi.Gateway] = type(f"WebSocket{base.__name__}", (WebSocketGatewayMixin, base), namespace)
    return gateway


class _RecordingHeaderReader:
    """Wraps a cheroot header reader: the lines it reads are kept as received."""

    def __init__(self, inner: Any, sink: list[bytes]) -> None:
        self._inner = inner
        self._sink = sink

    def __call__(self, rfile: Any, hdict: Any = None) -> Any:
        recorder = LineRecorder(rfile)
        recorder.lines = self._sink
        return self._inner(recorder, hdict)


class _RecordingRequestMixin:
    """Keeps the raw header lines of the request in ``ws_raw_lines`` (cheroot merges duplicates)."""

    ws_raw_lines: list[bytes] | None = None
    header_reader: Any

    def read_request_headers(self) -> bool:
        inner = self.header_reader
        self.ws_raw_lines = []
        self.header_reader = _RecordingHeaderReader(inner, self.ws_raw_lines)
        try:
            result: bool = super().read_request_headers()  # type: ignore[misc]
        finally:
            self.header_reader = inner
        return result


class _UncycledConnectionMixin:
    """Drops, on close, the per-connection caches cheroot keeps as ``lru_cache``
    wrappers of its own bound methods: they make every connection a reference
    cycle, left to the cyclic garbage collector."""

    def close(self) -> None:
        super().close()  # type: ignore[misc]
        for name in ("resolve_peer_creds", "get_peer_creds"):
            self.__dict__.pop(name, None)


class _LineReader(cheroot.makefile.StreamReader):
    """cheroot's socket reader, taking a line its buffer already holds in one slice.

    The reader is a ``_pyio.BufferedReader``, whose ``readline`` peeks and
    reads its way to the newline in Python: several microseconds per line,
    for every request line, header line and chunk-size line. The result, and
    what is left in the buffer, are the same (see the differential test).
    """

    # _pyio.BufferedReader's own state (not in its type stubs).
    _read_lock: threading.Lock
    _read_buf: bytes
    _read_pos: int

    def readline(self, size: int | None = -1) -> bytes:
        if size is None:
            size = -1
        elif type(size) is not int:
            line: bytes = super().readline(size)
            return line
        with self._read_lock:
            buffer: bytes = self._read_buf
            start: int = self._read_pos
            end = len(buffer) if size < 0 else min(len(buffer), start + size)
            newline = buffer.find(b"\n", start, end)
            if newline >= 0:
                end = newline + 1
            elif size < 0 or end - start < size:
                end = -1  # no complete line here: the reader's own way, below
            if end >= 0:
                line = buffer[start:end]
                self._read_pos = end
                self.bytes_read += end - start
                return line
        line = super().readline(size)
        return line


class _LineReaderConnectionMixin:
    """Gives the connection a :class:`_LineReader` instead of cheroot's plain reader."""

    rfile: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if type(self.rfile) is cheroot.makefile.StreamReader:
            # Same object, one method more: no second socket reader to make.
            self.rfile.__class__ = _LineReader


def _recording_connection_class(base: type[cheroot.server.HTTPConnection]) -> type[cheroot.server.HTTPConnection]:
    """A subclass of the connection class ``base`` whose requests record their header lines."""
    if getattr(base, "_ws_recording", False):
        return base
    request_class = base.RequestHandlerClass
    recording_request = type(f"WebSocket{request_class.__name__}", (_RecordingRequestMixin, request_class), {})
    namespace = {"RequestHandlerClass": recording_request, "_ws_recording": True, "__module__": __name__}
    connection: type[cheroot.server.HTTPConnection] = type(
        f"WebSocket{base.__name__}", (_UncycledConnectionMixin, _LineReaderConnectionMixin, base), namespace
    )
    return connection


#: The end of a request head as cheroot reads it (CRLF line endings; one empty line before the request line is skipped).
_HEAD_END = re.compile(rb"\r\n\r\n")
_RECV_SIZE = 65536
# Sockets are file descriptors that os.read() takes (not on Windows).
_READ_DESCRIPTORS = os.name == "posix"
_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class HeadWait:
    """A cheroot server's ``process_conn`` that hands a connection to a worker only once its head is complete.

    Called on the server's selector thread (and by workers for keep-alive
    connections with bytes buffered), it reads what the connection has,
    without blocking, into the connection's reader; while the head is
    incomplete the connection goes back to cheroot's selector, where cheroot
    closes it ``socket_timeout`` seconds after its head began (the deadline
    does not move as bytes trickle in). A head larger than ``max_size`` is
    answered 431. Connections whose reader is not cheroot's ``StreamReader``
    (pyOpenSSL) go straight to a worker, as without it.
    """

    def __init__(self, server: cheroot.server.HTTPServer, process_conn: Callable[[Any], None], max_size: int = 65536):
        self.server = server
        self.process_conn = process_conn
        self.max_size = max_size

    def __call__(self, conn: Any) -> None:
        rfile = conn.rfile
        sock = conn.socket
        if not (isinstance(rfile, cheroot.makefile.StreamReader) and isinstance(sock, socket.socket)):
            self.process_conn(conn)
            return
        if getattr(conn, "ws_head_since", None) is None:
            conn.ws_head_since = time.time()
            conn.ws_head_bytes = b""
        state = self._read(conn, rfile, sock)
        if state == "wait":
            self.server.put_conn(conn)
            # put_conn() stamps the connection as just used; the head's deadline stays where it was.
            conn.last_used = conn.ws_head_since
            return
        conn.ws_head_since = None
        if state == "too large":
            self._refuse(conn, sock)
            return
        self.process_conn(conn)

    def _read(self, conn: Any, rfile: Any, sock: socket.socket) -> str:
        """``"ready"`` (complete head, end of stream or error: a worker deals with it), ``"wait"`` or ``"too large"``."""
        # cheroot's StreamReader is a _pyio.BufferedReader whose buffer is
        # _read_buf[_read_pos:] (cheroot's own has_data() relies on it). While
        # waiting, the bytes are kept on the connection, not in the reader:
        # cheroot's put() hands a connection with buffered bytes straight back here.
        with rfile._read_lock:
            buffer = conn.ws_head_bytes + rfile._read_buf[rfile._read_pos :]
            rfile._read_buf, rfile._read_pos = b"", 0
        conn.ws_head_bytes = b""
        state = "ready"
        timeout = sock.gettimeout()
        # A plain socket with a timeout has a non-blocking descriptor, and a
        # read(2) of it never waits: no timeout to switch off and back on, two
        # system calls per read that also hand the GIL to other threads.
        # A blocking socket, or a TLS one (whose recv() decrypts), switches.
        direct = _READ_DESCRIPTORS and timeout is not None and type(sock) is socket.socket
        if not direct:
            sock.settimeout(0)
        try:
            while _HEAD_END.search(buffer.lstrip(b"\r\n")) is None:
                if len(buffer) > self.max_size:
                    state = "too large"
                    break
                try:
                    chunk = os.read(sock.fileno(), _RECV_SIZE) if direct else sock.recv(_RECV_SIZE)
                except _WOULD_BLOCK:
                    state = "wait"
                    break
                if not chunk:
                    break
                buffer += chunk
        except (OSError, ValueError):
            state = "ready"
        finally:
            if not direct:
                with contextlib.suppress(OSError):
                    sock.settimeout(timeout)
        if state == "wait":
            conn.ws_head_bytes = buffer
        else:
            with rfile._read_lock:
                rfile._read_buf, rfile._read_pos = buffer, 0
        return state

    def _refuse(self, conn: Any, sock: socket.socket) -> None:
        body = b"Request header fields too large"
        response = b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
        sock.settimeout(0)
        with contextlib.suppress(OSError, ValueError):
            sock.send(response % (len(body), body))  # best effort: never wait for this peer
        logger.info("431 to %s: request head over %d bytes", getattr(conn, "remote_addr", None), self.max_size)
        conn.close()


def install_gateway(
    server: cheroot.server.HTTPServer, manager: ManagerSource = None, *, head_wait: bool = True
) -> None:
    """Make the cheroot WSGI ``server`` WebSocket-capable (before or after it starts).

    Replaces ``server.gateway`` with :func:`websocket_gateway` of it; calling
    it again only changes the manager. With ``head_wait`` (the default), it
    also gives ``server`` a :class:`HeadWait` (silent clients hold no
    worker) and a connection class that records raw header lines; both are
    attributes of this server only.
    """
    server.gateway = websocket_gateway(server.gateway, manager)
    server.ConnectionClass = _recording_connection_class(server.ConnectionClass)
    if head_wait and not isinstance(server.process_conn, HeadWait):
        server.process_conn = HeadWait(server, server.process_conn)  # type: ignore[method-assign]


class WSGIServer(cheroot.wsgi.Server):
    """A :class:`cheroot.wsgi.Server` whose applications can upgrade to WebSocket.

    It owns a manager (``manager`` or a new :class:`ThreadedManager`);
    :meth:`stop` closes every WebSocket with 1001, stops the manager and then
    the HTTP server; :meth:`run` serves until a signal, then stops. Other
    arguments are those of :class:`cheroot.wsgi.Server`.
    """

    def __init__(
        self, bind_addr: Any, wsgi_app: WSGIApp, *args: Any, manager: Manager | None = None, **kwargs: Any
    ) -> None:
        super().__init__(bind_addr, wsgi_app, *args, **kwargs)
        self.manager: Manager = manager if manager is not None else ThreadedManager(name="ws4py-cheroot")
        install_gateway(self, self.manager)

    def stop(self) -> None:
        """Close every WebSocket with 1001 (waiting for the closing handshakes), then stop serving."""
        try:
            self.manager.stop()
        finally:
            super().stop()

    def run(self, signals: Iterable[int] = DEFAULT_SIGNALS) -> None:
        """Serve until one of ``signals`` (SIGTERM, SIGINT) arrives, then :meth:`stop`.
        Call it on the main thread; after ``prepare()`` (to learn the port
        bound to port 0, for example) it serves the socket already bound."""
        with stop_on_signals(self.stop, signals):
            if self.ready:
                self.serve()
            else:
                self.safe_start()
