"""WebSocket on the standard library's ``wsgiref`` server.

``make_server(host, port, app)`` returns a :class:`WSGIServer` whose request
handler offers each connection for a handover
(:mod:`ws4py_integrations.adapter`). Plain HTTP is handled as by stock
``wsgiref``; nothing is patched process-wide. ``server.run()`` runs until
SIGTERM or Ctrl-C, then closes every WebSocket with 1001.

Unlike ``socketserver.ThreadingMixIn``, which starts a thread per connection
that then blocks reading the request head, the server reads what has arrived
when it accepts a connection, without waiting, and waits for the rest of
request heads on one selector thread (:class:`HeadReader`): a connection gets one of
``max_threads`` worker threads only once its head is complete, a head that
takes longer than ``head_timeout`` is answered 408, one larger than
``max_head_size`` 431. Silent or trickling connections cost a file
descriptor, not a thread.
"""

from __future__ import annotations

import contextlib
import io
import logging
import queue
import re
import selectors
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref import simple_server

from .._head import ReplayReader, plain_fields, read_header_lines
from .._signals import DEFAULT_SIGNALS, stop_on_signals
from ..adapter import HANDOVER_KEY, Handover, raw_header_fields, take_buffered
from ..manager import Manager, ThreadedManager
from ..middleware import WSGIApp

__all__ = ["HeadReader", "WSGIServer", "WebSocketWSGIRequestHandler", "make_server"]

logger = logging.getLogger("ws4py_integrations.wsgiref")
#: The access log: ``http.server``'s request and error lines, at INFO.
access_logger = logging.getLogger("ws4py_integrations.wsgiref.access")

#: The end of a request head as ``http.server`` reads it: an empty line (CRLF or LF),
#: or the request line itself being empty (refused at once by the handler).
_HEAD_END = re.compile(rb"\n\r?\n|\A\r?\n")
_RECV_SIZE = 65536
# A request line parse_request takes apart the same way on every Python
# (three words of visible ASCII, HTTP/1.0 or 1.1); others go to it.
_SIMPLE_REQUEST_LINE = re.compile(r"([!-~]+) ([!-~]+) (HTTP/1\.[01])")
_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class _PrefixedSocketIO(socket.SocketIO):
    """A socket's raw reader that first serves the bytes the head reader already took."""

    def __init__(self, sock: socket.socket, prefix: bytes) -> None:
        super().__init__(sock, "rb")
        self._prefix = prefix

    def take_prefix(self) -> bytes:
        prefix, self._prefix = self._prefix, b""
        return prefix

    def readinto(self, b: Any) -> int | None:
        if self._prefix:
            view = memoryview(b).cast("B")
            count = min(len(view), len(self._prefix))
            view[:count] = self._prefix[:count]
            self._prefix = self._prefix[count:]
            return count
        return super().readinto(b)


class _Handover(Handover):
    """One wsgiref request's connection."""

    def __init__(
        self, handler: WebSocketWSGIRequestHandler, manager: Manager | None, raw_headers: list[tuple[str, str]]
    ) -> None:
        self._handler = handler
        self.manager = manager
        self.raw_headers = raw_headers
        # What accept() returned (TLS included): getpeername() spared.
        self.peer_address = handler.client_address

    def detach(self) -> tuple[socket.socket, bytes]:
        handler = self._handler
        sock: socket.socket = handler.connection
        handler.detached = True
        server = handler.server
        if isinstance(server, WSGIServer):
            server.mark_detached(sock)
        rfile = handler.rfile
        buffered = take_buffered(rfile, sock)
        raw = getattr(rfile, "raw", None)
        if isinstance(raw, _PrefixedSocketIO):
            # Bytes the head reader took that the buffered reader has not pulled in yet.
            buffered += raw.take_prefix()
        return sock, buffered


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
    #: The bytes :class:`HeadReader` read for this connection (the head, and maybe more).
    head = b""

    def setup(self) -> None:
        server = self.server
        head = server.take_head(self.request) if isinstance(server, WSGIServer) else b""
        if not head:
            super().setup()
            return
        self.head = head
        # The reader of the socket that setup() makes is replaced at once: a raw
        # one, then (a buffered reader costs more to make).
        self.rbufsize = 0  # type: ignore[misc]  # a ClassVar in typeshed; setup() reads it from the instance
        try:
            super().setup()
        finally:
            del self.rbufsize
        self.rfile.close()
        # The reader's buffer holds the whole prefix at once, so that the
        # handover's peek sees every byte past the head.
        self.rfile = io.BufferedReader(_PrefixedSocketIO(self.connection, head), max(io.DEFAULT_BUFFER_SIZE, len(head)))

    _raw_fields: list[tuple[str, str]] | None = None

    def parse_request(self) -> bool:
        # http.server parses the header lines with http.client and the email
        # package. Plain lines (see ws4py_integrations._head) whose fields
        # change nothing in parse_request's own checks (Connection: close or
        # keep-alive, Expect) make the same message without it: the parser
        # then sees only the empty line. Any other head goes to it as read.
        rfile = self.rfile
        lines, plain = read_header_lines(rfile)
        fields: list[tuple[str, str]] = []
        if plain:
            fields, raw = plain_fields(lines)
            plain = _plain_enough(fields)
            if plain and self._parse_simple_request_line():
                # What parse_request would make of this line and these fields,
                # without its email parser run over an empty head.
                headers = self.MessageClass()
                headers._headers = fields
                self.headers = headers
                self._raw_fields = raw
                return True
        self.rfile = ReplayReader([b"\r\n"] if plain else lines, rfile)  # type: ignore[assignment]
        try:
            parsed = super().parse_request()
        finally:
            self.rfile = rfile
        if parsed and plain:
            self.headers._headers = fields  # type: ignore[attr-defined]
            self._raw_fields = raw
        return parsed

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # A line formatted and written per request is a measurable share of a
        # WebSocket handshake's cost: only when someone reads it.
        if access_logger.isEnabledFor(logging.INFO):
            super().log_request(code, size)

    def log_message(self, format: str, *args: Any) -> None:
        """``http.server``'s request and error lines go to the
        ``ws4py_integrations.wsgiref.access`` logger at INFO, not to stderr."""
        if access_logger.isEnabledFor(logging.INFO):
            access_logger.info("%s - %s", self.address_string(), format % args)

    def _parse_simple_request_line(self) -> bool:
        """Set what ``parse_request`` sets for a request line of the one common
        shape (``METHOD SP TARGET SP HTTP/1.x``, visible ASCII, single spaces);
        ``False`` (nothing set) for any other line, left to ``parse_request``."""
        requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        match = _SIMPLE_REQUEST_LINE.fullmatch(requestline)
        if match is None:
            return False
        command, path, version = match.groups()
        if path.startswith("//"):
            return False  # parse_request rewrites these
        self.requestline = requestline
        self.command, self.path, self.request_version = command, path, version
        self.close_connection = not (version == "HTTP/1.1" and self.protocol_version >= "HTTP/1.1")
        return True

    def raw_headers(self) -> list[tuple[str, str]]:
        """The request's header fields as received (see :attr:`Handover.raw_headers`)."""
        if self._raw_fields is not None:
            return self._raw_fields
        if self.head:
            return raw_header_fields(io.BytesIO(self.head).readlines()[1:])
        # Not read by a HeadReader: rebuild them from what the email parser kept verbatim.
        fields = []
        for name, value in self.headers.raw_items():
            first, *folded = str(value).split("\r\n")
            fields.append((name, "\n".join([first.strip(" \t"), *folded])))
        return fields

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
        if isinstance(self.connection, ssl.SSLSocket):
            # wsgiref's handler derives wsgi.url_scheme from HTTPS; the
            # same-origin check needs the scheme the client really used.
            environ["HTTPS"] = "on"
        manager = self.server.manager if isinstance(self.server, WSGIServer) else None
        environ[HANDOVER_KEY] = _Handover(self, manager, self.raw_headers())
        handler = _ServerHandler(
            self.rfile,
            self.wfile,  # type: ignore[arg-type]
            self.get_stderr(),
            environ,
            multithread=True,
        )
        handler.request_handler = self
        handler.run(self.server.get_app())  # type: ignore[attr-defined]


def _plain_enough(fields: list[tuple[str, str]]) -> bool:
    """Whether ``parse_request`` would do nothing more with ``fields`` than with none."""
    connection_seen = False
    for name, value in fields:
        lowered = name.lower()
        if lowered == "expect":
            return False
        if lowered == "connection" and not connection_seen:
            connection_seen = True
            if value.lower() in ("close", "keep-alive"):
                return False
    return True


class _Pending:
    """A connection whose head is not complete yet."""

    __slots__ = ("address", "buffer", "deadline", "handshaking", "sock")

    def __init__(self, sock: socket.socket, address: Any, deadline: float) -> None:
        self.sock = sock
        self.address = address
        self.deadline = deadline
        self.buffer = bytearray()
        self.handshaking = isinstance(sock, ssl.SSLSocket)


class HeadReader:
    """Waits, on one thread, for the request heads of many connections.

    ``add(sock, address)`` takes a freshly accepted socket (a TLS socket not
    handshaken yet is handshaken here, without blocking). ``ready(sock,
    address, data)`` is called, on the reader's thread, once ``data`` holds a
    complete head (and whatever followed it); the socket is blocking again
    by then. A connection that does not complete its head within
    ``timeout`` seconds is answered 408 and closed, one whose head exceeds
    ``max_size`` bytes 431; one that closes or fails its TLS handshake is
    closed.
    """

    def __init__(
        self,
        ready: Callable[[socket.socket, Any, bytes], None],
        *,
        timeout: float = 10.0,
        max_size: int = 65536,
        name: str = "ws4py-head-reader",
    ) -> None:
        self._ready = ready
        self.timeout = timeout
        self.max_size = max_size
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._incoming: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        # Insertion order is deadline order (one timeout for all): the oldest come first.
        self._pending: dict[int, _Pending] = {}
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, sock: socket.socket, address: Any, data: bytes = b"") -> None:
        """Wait for ``sock``'s request head (from any thread); ``data`` is the
        start of it, already read (not a complete head)."""
        pending = _Pending(sock, address, time.monotonic() + self.timeout)
        pending.buffer += data
        self._incoming.put(pending)
        self._wake()

    def close(self) -> None:
        """Stop the thread and close every connection still waiting."""
        self._stopping = True
        self._wake()
        self._thread.join(10)

    def _wake(self) -> None:
        # OSError: a wake-up is already pending, or the reader is gone.
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def _run(self) -> None:
        try:
            while not self._stopping:
                timeout = None
                if self._pending:
                    first = next(iter(self._pending.values()))
                    timeout = max(0.0, first.deadline - time.monotonic())
                for key, events in self._selector.select(timeout):
                    if key.data is None:
                        self._drain_wakeups()
                    else:
                        self._step(key.data, events)
                self._expire(time.monotonic())
        except Exception:
            logger.exception("the head reader failed; waiting connections are closed")
        finally:
            for pending in list(self._pending.values()):
                self._drop(pending)
            while not self._incoming.empty():
                self._incoming.get_nowait().sock.close()
            self._selector.close()
            self._wake_r.close()
            self._wake_w.close()

    def _drain_wakeups(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        while not self._incoming.empty():
            pending = self._incoming.get_nowait()
            try:
                pending.sock.setblocking(False)
                self._selector.register(pending.sock, selectors.EVENT_READ, pending)
            except (OSError, ValueError):
                pending.sock.close()
                continue
            self._pending[id(pending.sock)] = pending
            if len(pending.buffer) > self.max_size:
                self._refuse(pending, "431 Request Header Fields Too Large")
                continue
            # New connections are stepped at once: the head often arrived with the SYN's ACK.
            self._step(pending, selectors.EVENT_READ)

    def _step(self, pending: _Pending, events: int) -> None:
        sock = pending.sock
        try:
            if pending.handshaking:
                assert isinstance(sock, ssl.SSLSocket)
                try:
                    sock.do_handshake()
                except ssl.SSLWantWriteError:
                    self._selector.modify(sock, selectors.EVENT_WRITE, pending)
                    return
                except ssl.SSLWantReadError:
                    self._selector.modify(sock, selectors.EVENT_READ, pending)
                    return
                pending.handshaking = False
                if events & selectors.EVENT_WRITE:
                    self._selector.modify(sock, selectors.EVENT_READ, pending)
            while True:
                chunk = sock.recv(_RECV_SIZE)
                if not chunk:
                    self._drop(pending)  # closed before a complete head
                    return
                pending.buffer += chunk
                if _HEAD_END.search(pending.buffer) is not None:
                    self._hand_over(pending)
                    return
                if len(pending.buffer) > self.max_size:
                    self._refuse(pending, "431 Request Header Fields Too Large")
                    return
                if not (isinstance(sock, ssl.SSLSocket) and sock.pending()):
                    return
        except _WOULD_BLOCK:
            return
        except (OSError, ValueError) as exc:
            logger.debug("connection from %s failed before its request head: %s", pending.address, exc)
            self._drop(pending)

    def _expire(self, now: float) -> None:
        while self._pending:
            pending = next(iter(self._pending.values()))
            if pending.deadline > now:
                return
            self._refuse(pending, "408 Request Timeout")

    def _forget(self, pending: _Pending) -> None:
        self._pending.pop(id(pending.sock), None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(pending.sock)

    def _drop(self, pending: _Pending) -> None:
        self._forget(pending)
        pending.sock.close()

    def _refuse(self, pending: _Pending, status: str) -> None:
        if pending.handshaking:
            self._drop(pending)
            return
        body = status.encode("ascii")
        response = b"HTTP/1.0 %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (
            body,
            len(body),
            body,
        )
        with contextlib.suppress(OSError, ValueError):
            pending.sock.send(response)  # best effort: never wait for this peer
        logger.info("%s to %s before its request head was complete", status, pending.address)
        self._drop(pending)

    def _hand_over(self, pending: _Pending) -> None:
        self._forget(pending)
        sock = pending.sock
        try:
            sock.setblocking(True)
            self._ready(sock, pending.address, bytes(pending.buffer))
        except Exception:
            logger.exception("could not hand a connection from %s to a worker", pending.address)
            sock.close()


class _Workers:
    """Up to ``size`` daemon threads, started as needed, running queued calls."""

    def __init__(self, size: int, name: str) -> None:
        self._size = size
        self._name = name
        self._queue: queue.SimpleQueue[tuple[Callable[..., None], tuple[Any, ...]] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0  # threads waiting for work and not promised an item yet

    def submit(self, function: Callable[..., None], *args: Any) -> None:
        with self._lock:
            self._queue.put((function, args))
            if self._idle:
                self._idle -= 1
                return
            if self._threads >= self._size:
                return  # queued until a worker is free
            self._threads += 1
            number = self._threads
        threading.Thread(target=self._work, name=f"{self._name}-{number}", daemon=True).start()

    def stop(self) -> None:
        with self._lock:
            threads = self._threads
        for _ in range(threads):
            self._queue.put(None)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            function, args = item
            try:
                function(*args)
            except Exception:  # pragma: no cover - process_request_thread handles its errors
                logger.exception("worker call failed")
            with self._lock:
                self._idle += 1


class WSGIServer(socketserver.ThreadingMixIn, simple_server.WSGIServer):
    """A ``wsgiref`` server, with bounded threads, that owns a manager for its WebSockets.

    Request heads are read by a :class:`HeadReader` (``head_timeout``,
    ``max_head_size``), requests run on at most ``max_threads`` worker
    threads (more wait in a queue). A handler class that is not a
    :class:`WebSocketWSGIRequestHandler` gets ``ThreadingMixIn``'s thread per
    connection instead. :meth:`server_close` closes every WebSocket with 1001
    and stops the manager; :meth:`run` serves until a signal, then does so.
    """

    daemon_threads = True
    block_on_close = False
    # socketserver's default backlog of 5 drops SYNs when clients connect in
    # bursts (each dropped one waits a 1 s retransmit).
    request_queue_size = 128

    def __init__(
        self,
        *args: Any,
        manager: Manager | None = None,
        head_timeout: float = 10.0,
        max_head_size: int = 65536,
        max_threads: int = 64,
        **kwargs: Any,
    ) -> None:
        if head_timeout <= 0 or max_head_size <= 0 or max_threads <= 0:
            raise ValueError("head_timeout, max_head_size and max_threads must be positive")
        self.manager: Manager = manager if manager is not None else ThreadedManager(name="ws4py-wsgiref")
        self.head_timeout = head_timeout
        self.max_head_size = max_head_size
        self.max_threads = max_threads
        self._detached: set[int] = set()
        self._detached_lock = threading.Lock()
        self._heads: dict[int, bytes] = {}
        self._head_reader: HeadReader | None = None
        self._workers = _Workers(max_threads, "ws4py-wsgiref")
        super().__init__(*args, **kwargs)

    def get_request(self) -> tuple[socket.socket, Any]:
        listener = self.socket
        if isinstance(listener, ssl.SSLSocket):
            # SSLSocket.accept() would run the TLS handshake here, blocking the
            # accept loop on a silent peer: accept plain, handshake in the reader.
            sock, address = socket.socket.accept(listener)
            return listener.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address
        # socket.accept(), without turning the listener's family and type into
        # enums again for every connection.
        fd, address = listener._accept()  # type: ignore[attr-defined]
        kind = self._accepted_kind
        if kind is None:
            kind = self._accepted_kind = (int(listener.family), int(listener.type), listener.proto)
        sock = socket.socket(*kind, fileno=fd)
        if socket.getdefaulttimeout() is None and listener.gettimeout():
            sock.setblocking(True)
        return sock, address

    _accepted_kind: tuple[int, int, int] | None = None

    def process_request(self, request: Any, client_address: Any) -> None:
        handler_class: Any = self.RequestHandlerClass
        if not (isinstance(handler_class, type) and issubclass(handler_class, WebSocketWSGIRequestHandler)):
            super().process_request(request, client_address)
            return
        data = b""
        if not isinstance(request, ssl.SSLSocket):
            # The head usually arrives with (or just after) the connection: read
            # what is there without waiting, and if the head is complete, go to a
            # worker straight away, sparing the head reader's handoff.
            try:
                request.setblocking(False)
                data = request.recv(_RECV_SIZE)
            except _WOULD_BLOCK:
                pass
            except OSError as exc:
                logger.debug("connection from %s failed before its request head: %s", client_address, exc)
                request.close()
                return
            else:
                if not data:
                    request.close()  # closed before a complete head
                    return
                if _HEAD_END.search(data) is not None:
                    request.setblocking(True)
                    self._head_ready(request, client_address, data)
                    return
        reader = self._head_reader
        if reader is None:
            reader = self._head_reader = HeadReader(
                self._head_ready, timeout=self.head_timeout, max_size=self.max_head_size
            )
        reader.add(request, client_address, data)

    def _head_ready(self, sock: socket.socket, address: Any, head: bytes) -> None:
        with self._detached_lock:
            self._heads[id(sock)] = head
        self._workers.submit(self.process_request_thread, sock, address)

    def take_head(self, sock: socket.socket) -> bytes:
        """The bytes the head reader read from ``sock`` (once; then ``b""``)."""
        with self._detached_lock:
            return self._heads.pop(id(sock), b"")

    def mark_detached(self, sock: socket.socket) -> None:
        with self._detached_lock:
            self._detached.add(id(sock))

    def shutdown_request(self, request: Any) -> None:
        with self._detached_lock:
            self._heads.pop(id(request), None)
            if id(request) in self._detached:
                self._detached.discard(id(request))
                return
        super().shutdown_request(request)

    def server_close(self) -> None:
        """Close every WebSocket with 1001 (waiting for the closing handshakes), then the socket."""
        self.manager.stop()
        reader, self._head_reader = self._head_reader, None
        if reader is not None:
            reader.close()
        self._workers.stop()
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
    **options: Any,
) -> WSGIServer:
    """Create a WebSocket-capable ``wsgiref`` server (port 0 picks a free port).

    ``options`` go to ``server_class``: ``head_timeout``, ``max_head_size``, ``max_threads``.
    """
    server = server_class((host, port), handler_class, manager=manager, **options)
    server.set_app(app)
    return server
