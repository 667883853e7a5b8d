"""One detached WebSocket connection: protocol state, outbound buffer, keepalive.

This module does no waiting of its own: a manager backend (threads and
selectors, or greenlets) owns the socket's readiness and calls
:meth:`Connection.feed`, :meth:`Connection.on_writable` and the timers; the
connection calls back into the backend through :class:`Backend`.

Locking: ``Connection.lock`` guards the protocol object, the outbound buffer
and every socket operation, so sends from any thread never interleave frames
and a TLS socket is never used by two threads at once.
"""

from __future__ import annotations

import itertools
import logging
import mmap
import os
import socket
import ssl
import struct
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import CLOSED, OPEN

from .events import Message, Pong
from .exceptions import WebSocketClosed
from .options import WebSocketOptions
from .protocol import MessageProtocol

if TYPE_CHECKING:
    from .handshake import Accept
    from .manager.base import Manager
    from .websocket import WebSocket

__all__ = ["Backend", "Connection", "TimerHandle", "connection_environ", "encode_frames", "receive_buffer"]

logger = logging.getLogger("ws4py_integrations.connection")
_protocol_logger = logging.getLogger("ws4py_integrations.protocol")
_serials = itertools.count(1)

_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
# Small frames waiting together are joined into one send of at most this size.
_COALESCE = 64 * 1024
#: Size of a backend's receive buffer (:attr:`Backend.recv_buffer`).
RECV_SIZE = 256 * 1024
# Where a receive buffer starts in its page (see receive_buffer).
_RECV_PAGE_OFFSET = 0x840
# The longest client frame header (2 bytes, 8 of length, 4 of mask).
_HEADER_MAX = 14


def receive_buffer(size: int = RECV_SIZE) -> memoryview:
    """A buffer of ``size`` bytes for :attr:`Backend.recv_buffer`, placed for the kernel's copy.

    It starts 2 KiB and 64 bytes into a page. A fresh allocation of this size
    starts 16 bytes into one, 2 bytes past where a payload starts after a
    14-byte header, and the kernel's copy into it then ran several times
    slower (the pattern of "4K aliasing": a load waits for a store it seems
    to overlap). Bulk echo on one core went from 1,316 to 1,852 MB/s on
    wsgiref with this placement (server CPU 704 to 473 us per MiB).
    """
    # An anonymous mapping starts on a page boundary, whatever malloc did before.
    # Private, as a bytearray's memory is: mmap's default on Unix is shared, and
    # a manager made before a fork would then receive into one buffer from
    # several processes.
    flags = getattr(mmap, "MAP_PRIVATE", None)
    if flags is None:  # Windows: no such flag, and no fork
        region = mmap.mmap(-1, size + _RECV_PAGE_OFFSET)
    else:
        region = mmap.mmap(-1, size + _RECV_PAGE_OFFSET, flags=flags | mmap.MAP_ANONYMOUS)
    return memoryview(region)[_RECV_PAGE_OFFSET:]


def _data_header(frame: Frame) -> bytes:
    """The header of an unmasked, uncompressed server data frame (RFC 6455 5.2)."""
    return _header((0x80 if frame.fin else 0) | frame.opcode, len(frame.data))


# The 2-byte headers of short unfragmented messages, made once rather than per message.
_TEXT_HEADERS = tuple(bytes((0x81, n)) for n in range(126))
_BINARY_HEADERS = tuple(bytes((0x82, n)) for n in range(126))


def _header(head1: int, length: int) -> bytes:
    if length < 126:
        return bytes((head1, length))
    if length < 65536:
        return struct.pack("!BBH", head1, 126, length)
    return struct.pack("!BBQ", head1, 127, length)


class RLockLike(Protocol):
    """What a connection needs of its lock: ``threading.RLock``'s ``acquire``,
    ``release`` and context manager."""

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool: ...

    def release(self) -> None: ...

    def __enter__(self) -> object: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None, /
    ) -> object: ...


class TimerHandle(Protocol):
    """What :meth:`Backend.call_later` returns."""

    def cancel(self) -> None:
        """Drop the call if it has not run yet (from any thread)."""


class _ProtocolLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """websockets' protocol log, as trace lines of one connection.

    websockets logs each frame at DEBUG and every close at INFO; here all of
    it is DEBUG (a close is routine), prefixed with the connection's id.
    """

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if self.logger.isEnabledFor(logging.DEBUG):
            self.logger.debug(f"%s {msg}", self.extra["id"], *args, **kwargs)  # type: ignore[index]

    def isEnabledFor(self, level: int) -> bool:
        return bool(self.logger.isEnabledFor(logging.DEBUG))


_QUIET_PROTOCOL_LOG = _ProtocolLog(_protocol_logger, {"id": "#?"})

# Server plumbing that means nothing once the connection is a WebSocket, and
# that would keep the server's request objects (and their buffers) alive.
# gunicorn's socket keys hold the server's socket object, emptied or dead once detached.
_PLUMBING = frozenset(
    {
        "wsgi.input",
        "wsgi.errors",
        "wsgi.file_wrapper",
        "ws4py_integrations.handover",
        "gunicorn.sock",
        "gunicorn.socket",
    }
)


_process_environ: tuple[int, dict[str, str]] = (-1, {})


def _process_environ_snapshot() -> dict[str, str]:
    # os.environ encodes every key it is asked about: a plain copy, taken
    # again only when the process environment changed size, is 10x cheaper.
    global _process_environ
    size, snapshot = _process_environ
    if size != len(os.environ):
        snapshot = dict(os.environ)
        _process_environ = (len(snapshot), snapshot)
    return snapshot


# Values that differ from one connection to the next: not worth sharing.
_UNIQUE = frozenset({"HTTP_SEC_WEBSOCKET_KEY", "REMOTE_PORT"})
_intern = sys.intern


def connection_environ(environ: Mapping[str, Any]) -> dict[str, Any]:
    """The environ a WebSocket keeps: the request's, less the server's stream
    objects and the copy of the process environment some servers (wsgiref) add.

    Its string keys and values are shared between connections (interned):
    servers make new ones for every request, yet most are the same for every
    connection (method, protocol, host, path, upgrade headers), and thousands
    of idle connections would each keep their own copies (~0.5 KiB).
    """
    process = _process_environ_snapshot()
    kept: dict[str, Any] = {}
    for key, value in environ.items():
        if key in _PLUMBING or process.get(key, _PLUMBING) == value:
            continue
        if type(key) is str:
            if type(value) is str and key not in _UNIQUE and len(value) <= 256:
                value = _intern(value)
            key = _intern(key)
        kept[key] = value
    return kept


class Backend(Protocol):
    """What a connection needs from the manager backend that runs it."""

    #: The buffer :meth:`Connection.read` receives into (``RECV_SIZE`` bytes,
    #: from :func:`receive_buffer`).
    #: One per backend, not per connection or thread: a backend reads one
    #: socket at a time on its loop, and the bytes are copied out at once (a
    #: fresh 256 KiB allocation per ``recv()`` would cost more than the copy:
    #: glibc maps it anew).
    recv_buffer: memoryview

    def schedule(self, conn: Connection, func: Callable[..., Any], *args: Any) -> None:
        """Run ``func(*args)`` after every callback scheduled before for ``conn``."""

    def want_write(self, conn: Connection) -> None:
        """Call ``conn.on_writable()`` when the socket can take more bytes."""

    def call_later(self, delay: float, func: Callable[[], Any]) -> TimerHandle:
        """Run ``func()`` on the I/O loop after ``delay`` seconds."""

    def connection_lost(self, conn: Connection) -> None:
        """Stop watching ``conn``'s socket and close it (from any thread)."""

    def new_lock(self) -> RLockLike:
        """A reentrant lock for a connection's engine."""

    def reading_changed(self, conn: Connection) -> None:
        """``conn.reading_paused`` changed (``conn.lock`` held, any thread): stop or
        resume watching the socket for reading (then call ``conn.read()`` at once:
        TLS may hold bytes the socket will not signal)."""


def encode_frames(data: str | bytes | bytearray | memoryview | Iterable[str | bytes]) -> list[Frame]:
    """Frames for one message: str is text, bytes-like is binary, an iterable is fragmented."""
    if isinstance(data, str):
        return [Frame(Opcode.TEXT, data.encode())]
    if isinstance(data, (bytes, bytearray, memoryview)):
        return [Frame(Opcode.BINARY, bytes(data))]
    frames: list[Frame] = []
    text: bool | None = None
    for part in data:
        if isinstance(part, str):
            payload, is_text = part.encode(), True
        elif isinstance(part, (bytes, bytearray, memoryview)):
            payload, is_text = bytes(part), False
        else:
            raise TypeError(f"cannot send a fragment of type {type(part).__name__}")
        if text is None:
            text = is_text
            frames.append(Frame(Opcode.TEXT if is_text else Opcode.BINARY, payload, fin=False))
        elif text != is_text:
            raise TypeError("fragments of one message must all be str or all bytes")
        else:
            frames.append(Frame(Opcode.CONT, payload, fin=False))
    if not frames:
        raise ValueError("cannot send an empty iterable as a fragmented message")
    frames.append(Frame(Opcode.CONT, b"", fin=True))
    return frames


class Connection:
    """The engine behind a :class:`~ws4py_integrations.WebSocket`."""

    # Thousands of idle connections: no per-instance dict, and the queues and
    # the room set exist only while they hold something.
    __slots__ = (
        "_close_queued",
        "_close_timer",
        "_eof_pending",
        "_gather",
        "_handled",
        "_head_tried",
        "_held",
        "_keepalive_timer",
        "_out",
        "_ping_payload",
        "_ping_sent_at",
        "_read_timer",
        "_received",
        "backend",
        "bytes_in",
        "bytes_out",
        "closed_code",
        "closed_reason",
        "environ",
        "finalized",
        "holds_messages",
        "id",
        "io",
        "is_tls",
        "latency",
        "lock",
        "messages_in",
        "messages_out",
        "options",
        "out_size",
        "peer_address",
        "protocol",
        "reading_paused",
        "sock",
        "websocket",
    )

    def __init__(
        self,
        sock: socket.socket,
        accept: Accept,
        options: WebSocketOptions,
        environ: Mapping[str, Any],
        manager: Manager,
        handler_cls: type[WebSocket],
        peer_address: Any = None,
    ) -> None:
        """Build the engine for ``sock`` and its ``handler_cls`` instance (last:
        an exception from the handler's constructor leaves nothing running).
        ``peer_address``: what ``accept()`` returned, if known (else the socket is asked)."""
        #: A short id for log lines: ``#`` and a per-process serial number.
        self.id = f"#{next(_serials)}"
        self.sock = sock
        #: What reads and writes go through: ``sock``, or what a backend puts in
        #: its place (gevent: the native socket inside gevent's wrapper, whose
        #: waiting is of no use for non-blocking I/O and costs a Python call).
        self.io: Any = sock
        # A logger adapter of its own only while tracing: idle connections stay small.
        tracing = _protocol_logger.isEnabledFor(logging.DEBUG)
        self.protocol = MessageProtocol.accepted(
            accept,
            options.max_message_size,
            _ProtocolLog(_protocol_logger, {"id": self.id}) if tracing else _QUIET_PROTOCOL_LOG,
        )
        self.options = options
        self.environ = connection_environ(environ)
        self.backend: Backend = manager
        # Whatever lock the manager's backend works with (a real one under
        # gevent too: the engine never waits while it holds it).
        self.lock = manager.new_lock()
        self.is_tls = isinstance(sock, ssl.SSLSocket)
        # sendmsg gathers buffers in one write; TLS sockets cannot (a backend
        # may mark a socket as TLS after this, so is_tls is checked again).
        self._gather = not self.is_tls and hasattr(sock, "sendmsg")
        self._out: deque[bytes | bytearray | memoryview] | None = None
        self.out_size = 0
        # After a failed TLS write the same buffer must be retried as is.
        self._head_tried = False
        # The protocol asked to half-close once the buffer is flushed.
        self._eof_pending = False
        # Our close frame has been queued: no more data frames after it.
        self._close_queued = False
        self.finalized = False
        self.closed_code: int = CloseCode.ABNORMAL_CLOSURE
        self.closed_reason = ""
        self.messages_in = self.messages_out = self.bytes_in = self.bytes_out = 0
        self.latency: float | None = None
        # Messages received and handled so far; reading pauses while
        # max_queue of them wait. One writer each (the reader, the callback
        # queue), so counting needs no lock; only a pause or resume takes it.
        self._received = self._handled = 0
        self.reading_paused = False
        # Bytes read but not parsed yet: a read that brings more messages than
        # max_queue leaves the rest here until reading resumes.
        self._held = b""
        # Set by a handler that takes messages later than received_message
        # (the blocking API's receive()): it calls message_handled() itself.
        self.holds_messages = False
        self._ping_payload: bytes | None = None
        self._ping_sent_at = 0.0
        self._keepalive_timer: TimerHandle | None = None
        self._close_timer: TimerHandle | None = None
        self._read_timer: TimerHandle | None = None
        if peer_address is None:
            try:
                peer_address = sock.getpeername()
            except OSError:
                peer_address = None
        self.peer_address: Any = peer_address
        self.websocket: WebSocket = handler_cls(self, manager)

    def __repr__(self) -> str:
        return f"<Connection {self.id} {self.peer_address}>"

    # -- called by the backend ---------------------------------------------

    def start(self, buffered: bytes) -> None:
        """Begin: schedule ``opened()``, then process bytes the server already read."""
        websocket = self.websocket
        if not getattr(websocket, "_opened_is_noop", False) or "opened" in getattr(websocket, "__dict__", ()):
            self.backend.schedule(self, self._dispatch, websocket.opened)
        if self.options.ping_interval is not None:
            self._keepalive_timer = self.backend.call_later(self.options.ping_interval, self._keepalive)
        if buffered:
            self.feed(buffered)

    def read(self) -> bool:
        """Read what the socket has and process it; ``False`` once the connection is done."""
        # acquire() and release() rather than ``with``: on Python 3.11 a with
        # statement on a lock costs about four times as much, once per message.
        lock = self.lock
        while True:
            lock.acquire()
            try:
                if self.finalized or self.reading_paused:
                    return not self.finalized
                if self._held:
                    self._process(b"", eof=False)
                    continue
                # The rest of a large payload goes into its own buffer (through
                # the receive buffer, see below): not into the parser's, and
                # not through bytes objects copied again on the way.
                protocol = self.protocol
                reader = protocol.reader
                # Between frames there is no payload to receive in place
                # (payload_target()'s own first test, inline: once per read).
                target = None if reader.target is None and not reader.mid_frame else protocol.payload_target()  # type: ignore[attr-defined]
                received = 0
                # After a payload received in place, the next frame's header
                # alone: its payload then comes in place too, rather than up
                # to 256 KiB of it through the receive buffer (three copies).
                peek = target is None and protocol.large_next
                try:
                    if target is None:
                        view = self.backend.recv_buffer
                        data = bytes(view[: self.io.recv_into(view[:_HEADER_MAX] if peek else view)])
                    elif type(target.obj) is not bytearray:
                        # A mapping placed for the kernel's copy (protocol._REGION_OFFSET).
                        with target:
                            received = self.io.recv_into(target)
                        data = b""
                    else:
                        # Through the backend's buffer (see receive_buffer): a
                        # bytearray's bytes start where malloc put them, often 16
                        # bytes into a page, and the kernel's copy straight into
                        # it cost several times that copy plus the one below.
                        view = self.backend.recv_buffer
                        with target:
                            received = self.io.recv_into(view[: len(target)])
                            target[:received] = view[:received]
                        data = b""
                except _WOULD_BLOCK:
                    return True
                except OSError as exc:
                    logger.debug("%s: recv failed: %s", self.id, exc)
                    self.abort()
                    return False
                if received:
                    self._receive(b"", False, received)
                else:
                    self._receive(data, not data)
                    if peek and protocol.payload_target() is None:
                        protocol.large_next = False  # not a large payload: full reads again
                # TLS may hold decrypted bytes the socket does not report as readable.
                more = bool(data or received) and self.is_tls and not self.finalized and self.sock.pending() > 0  # type: ignore[attr-defined]
            finally:
                lock.release()
            if not more:
                return not self.finalized

    def feed(self, data: bytes) -> None:
        """Process bytes from the peer (``b""`` means end of stream)."""
        self._process(data, eof=not data)

    def _process(self, data: bytes, eof: bool) -> None:
        with self.lock:
            self._receive(data, eof)

    def _receive(self, data: bytes, eof: bool, received: int = 0) -> None:
        # With the lock held: read() holds it already, so a read takes it once.
        # received: bytes read into the view protocol.payload_target() gave.
        if self.finalized:
            return
        protocol = self.protocol
        was_open = protocol.close_sent is None
        self.bytes_in += len(data) + received
        if received:
            protocol.payload_received(received)
        if self._held:
            data, self._held = self._held + data, b""
        options = self.options
        if data:
            limit = options.max_queue
            # At most what max_queue still has room for (at least one, so a
            # message always makes progress); the rest waits, unparsed.
            if limit is None or eof:
                budget = None
            else:
                budget = limit - (self._received - self._handled)
                if budget < 1:
                    budget = 1
            held = protocol.receive_some(data, budget)
            if held:
                self._held = bytes(held)
        if eof:
            protocol.receive_eof()
        inbox = protocol.inbox
        if inbox:
            protocol.inbox = []
        writes = protocol.data_to_send()
        closing_now = was_open and protocol.close_sent is not None
        if options.read_timeout is not None:
            mid_frame = protocol.reader.mid_frame and not eof  # type: ignore[attr-defined]
            if mid_frame or self._read_timer is not None:
                self._arm_read_timer(mid_frame)
        if writes and not closing_now:
            # Pongs first: a callback on another thread must not answer a
            # message completed after a ping before the pong is queued.
            self._release_locked(writes)
            self._over_send_limit()
            writes = []
        if inbox:
            schedule, handle, limit = self.backend.schedule, self._handle_message, options.max_queue
            for event in inbox:
                if isinstance(event, Message):
                    # Once per message: kept inline.
                    self.messages_in += 1
                    self._received += 1
                    if limit is not None and self._received - self._handled >= limit and not self.reading_paused:
                        self._pause_reading()
                    schedule(self, handle, event)
                else:
                    self._pong_received(event)
        if writes:
            if closing_now:
                # Strict order: answers to messages received before a close or
                # a protocol error go out before our close frame.
                self.backend.schedule(self, self._release, writes)
            else:
                self._release_locked(writes)
                # Pongs count toward the send buffer like everything else:
                # a peer that pings and never reads is closed (1008).
                self._over_send_limit()
        if protocol._state is CLOSED:  # not the property: this runs on every read
            self.abort()
        elif closing_now:
            self._start_close_timer()

    def _pause_reading(self) -> None:
        with self.lock:
            # Backpressure through TCP: the peer's sends wait in its
            # kernel buffers, not in our memory.
            self.reading_paused = True
            self.backend.reading_changed(self)

    def _handle_message(self, message: Message) -> None:
        # _dispatch inline: this runs once per message.
        try:
            self.websocket.received_message(message)
        except Exception:
            self._callback_failed(self.websocket.received_message)
        if not self.holds_messages:
            # message_handled inline.
            self._handled += 1
            if self.reading_paused:
                self._resume_if_drained()

    def message_handled(self) -> None:
        """One received message is handled: it no longer counts toward ``max_queue``.

        Called after ``received_message`` returns, or, when ``holds_messages``
        is set, by the handler itself once it took the message (one thread at
        a time, in order).
        """
        self._handled += 1
        if self.reading_paused:
            self._resume_if_drained()

    def _resume_if_drained(self) -> None:
        limit = self.options.max_queue
        with self.lock:
            # Resume at a quarter, so a busy peer does not flap the watch.
            if (
                self.reading_paused
                and not self.finalized
                and (limit is None or self._received - self._handled <= limit // 4)
            ):
                self.reading_paused = False
                self.backend.reading_changed(self)

    def on_writable(self) -> bool:
        """Flush the outbound buffer; ``True`` while bytes are still waiting."""
        with self.lock:
            self._flush()
            return self._out is not None and not self.finalized

    # -- sending ------------------------------------------------------------

    def _closed_error(self) -> WebSocketClosed:
        if self.finalized:
            return WebSocketClosed(self.closed_code, self.closed_reason)
        sent = self.protocol.close_sent
        return WebSocketClosed(sent.code, sent.reason) if sent is not None else WebSocketClosed()

    def _over_send_limit(self) -> bool:
        """Whether the peer is too slow (then the connection is failed with 1008)."""
        limit = self.options.max_send_buffer
        if limit is None or self.out_size <= limit:
            return False
        logger.warning(
            "%s: closing %s: %d bytes wait to be sent, more than max_send_buffer=%d (peer too slow)",
            self.id,
            self.peer_address,
            self.out_size,
            limit,
        )
        self._fail(CloseCode.POLICY_VIOLATION, "peer too slow: send buffer limit exceeded")
        return True

    def send_frames(self, frames: list[Frame]) -> None:
        """Queue one message's frames (any thread); raises :class:`WebSocketClosed` once closing."""
        with self.lock:
            if self._close_queued or self.finalized or self._over_send_limit():
                raise self._closed_error()
            if _protocol_logger.isEnabledFor(logging.DEBUG):
                for frame in frames:
                    _protocol_logger.debug("%s > %s", self.id, frame)
            extensions = self.protocol.extensions
            for frame in frames:
                if extensions or len(frame.data) < _COALESCE:
                    self._queue(frame.serialize(mask=False, extensions=extensions))
                else:
                    # A large uncompressed payload is queued as is, behind its
                    # header: no copy of it into a serialized frame.
                    self._queue(_data_header(frame))
                    self._queue(frame.data)
            self.messages_out += 1
            self._flush()

    def send_message(self, payload: bytes, text: bool) -> None:
        """Queue one unfragmented message (any thread): what ``WebSocket.send`` does
        for ``str`` and bytes. Raises :class:`WebSocketClosed` once closing."""
        lock = self.lock
        lock.acquire()  # not ``with``: see read()
        try:
            if self.protocol.extensions:
                # Compression keeps per-message state in the extension.
                self.send_frames([Frame(Opcode.TEXT if text else Opcode.BINARY, payload)])
                return
            if self._close_queued or self.finalized or (self.out_size and self._over_send_limit()):
                raise self._closed_error()
            if _protocol_logger.isEnabledFor(logging.DEBUG):
                _protocol_logger.debug("%s > %s [%d bytes]", self.id, "TEXT" if text else "BINARY", len(payload))
            size = len(payload)
            if size < 126:
                header = (_TEXT_HEADERS if text else _BINARY_HEADERS)[size]
            else:
                header = _header(0x81 if text else 0x82, size)
            if size < _COALESCE:
                frame: bytes | memoryview = header + payload
                if self._out is None:
                    # Nothing waits to be sent (the common case): write now,
                    # queueing only what the socket did not take.
                    # _send inline: this runs once per message.
                    try:
                        sent = self.io.send(frame)
                    except OSError as exc:
                        sent = self._send_failed(exc)
                    else:
                        if not sent:
                            self._sent_nothing()
                    self.messages_out += 1
                    if sent:
                        self._head_tried = False
                        self.bytes_out += sent
                        if sent < len(frame):
                            # The rest, as _flush would: again until it would block.
                            self._queue(memoryview(frame)[sent:])
                            self._flush()
                    elif not self.finalized:
                        # Nothing taken: writability is watched (_send), the
                        # same buffer retried then.
                        self._queue(frame)
                    return
                self._queue(frame)
            else:
                # A large payload is queued as is, behind its header: no copy.
                self._queue(header)
                self._queue(payload)
            self.messages_out += 1
            self._flush()
        finally:
            lock.release()

    def send_encoded(self, frame: bytes) -> bool:
        """Queue an already serialized frame (broadcast); ``False`` if it cannot be sent."""
        with self.lock:
            if self._close_queued or self.finalized or self._over_send_limit():
                return False
            if _protocol_logger.isEnabledFor(logging.DEBUG):
                _protocol_logger.debug("%s > %d bytes of an encoded broadcast", self.id, len(frame))
            self._queue(frame)
            self.messages_out += 1
            self._flush()
            return True

    def ping(self, data: bytes) -> None:
        with self.lock:
            if self._close_queued or self.finalized:
                raise self._closed_error()
            self.protocol.send_ping(data)
            self._release_locked(self.protocol.data_to_send())

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake (section 7.1.2); idempotent."""
        with self.lock:
            if self.finalized or self.protocol.state is not OPEN:
                return
            self.protocol.send_close(code, reason)
            self._release_locked(self.protocol.data_to_send())
        self._start_close_timer()

    def _fail(self, code: int, reason: str) -> None:
        with self.lock:
            if self.finalized:
                return
            if self.protocol.state is OPEN:
                self.protocol.fail(code, reason)
            self._release_locked(self.protocol.data_to_send())
        self._start_close_timer()

    # -- buffer -------------------------------------------------------------

    def _queue(self, data: bytes | bytearray | memoryview) -> None:
        if self._out is None:
            self._out = deque()
        self._out.append(data)
        self.out_size += len(data)

    def _release(self, writes: list[bytes]) -> None:
        with self.lock:
            self._release_locked(writes)

    def _release_locked(self, writes: list[bytes]) -> None:
        if self.finalized:
            return
        for data in writes:
            if data:
                if data[0] & 0x0F == Opcode.CLOSE:
                    self._close_queued = True
                self._queue(data)
            else:
                self._eof_pending = True
        self._flush()

    def _send(self, send: Callable[[Any], int], data: Any) -> int:
        """One non-blocking write; 0 when the socket took nothing (the caller
        stops: writability is being watched, or the connection is aborted)."""
        try:
            sent = send(data)
        except OSError as exc:
            return self._send_failed(exc)
        if not sent:
            self._sent_nothing()
        return sent

    def _send_failed(self, exc: OSError) -> int:
        """What :meth:`_send` returns when the write raised ``exc``."""
        if isinstance(exc, _WOULD_BLOCK):
            self._sent_nothing()
        else:
            logger.debug("%s: send failed: %s", self.id, exc)
            self.abort()
        return 0

    def _sent_nothing(self) -> None:
        # Nothing taken (gevent's non-blocking SSLSocket.send() returns 0
        # where the standard library raises SSLWantWriteError): a TLS
        # write must be retried with the same buffer.
        self._head_tried = True
        self.backend.want_write(self)

    def _flush(self) -> None:
        out = self._out
        sock = self.io
        while out:
            if len(out) > 1 and self._gather and not self.is_tls:
                # Plain sockets: one gathering write, no joining copy.
                sent = self._send(sock.sendmsg, list(itertools.islice(out, 0, 64)))
                if not sent:
                    return
                self.bytes_out += sent
                self.out_size -= sent
                while sent:
                    head = out[0]
                    if len(head) <= sent:
                        out.popleft()
                        sent -= len(head)
                    else:
                        out[0] = memoryview(head)[sent:]
                        sent = 0
                continue
            if not self._head_tried and len(out) > 1 and len(out[0]) < _COALESCE:
                parts = [out.popleft()]
                size = len(parts[0])
                while out and size + len(out[0]) <= _COALESCE:
                    part = out.popleft()
                    parts.append(part)
                    size += len(part)
                out.appendleft(b"".join(parts))
            head = out[0]
            sent = self._send(sock.send, head)
            if not sent:
                return
            self._head_tried = False
            self.bytes_out += sent
            self.out_size -= sent
            if sent == len(head):
                out.popleft()
            else:
                out[0] = memoryview(head)[sent:]
        self._out = None
        if self._eof_pending:
            self._eof_pending = False
            try:
                # The server starts the TCP close (section 7.1.1); the peer's
                # EOF or the close timeout finishes it.
                self.sock.shutdown(socket.SHUT_WR)
            except OSError:
                self.abort()

    # -- closing --------------------------------------------------------------

    def _start_close_timer(self) -> None:
        with self.lock:
            if self._close_timer is None and not self.finalized:
                self._close_timer = self.backend.call_later(self.options.close_timeout, self._close_timeout)

    def _close_timeout(self) -> None:
        if not self.finalized:
            logger.debug("%s: closing handshake timed out; dropping TCP", self.id)
            self.abort()

    def abort(self) -> None:
        """Drop the TCP connection (if still open) and report ``closed()`` once."""
        with self.lock:
            if self.finalized:
                return
            self.finalized = True
            # The peer's close frame if it sent one; else ours (the peer never
            # answered it); else 1006, the connection dropped.
            close = self.protocol.close_rcvd or self.protocol.close_sent
            if close is not None:
                self.closed_code, self.closed_reason = close.code, close.reason
            self._out = None
            self.out_size = 0
            # A message in progress can be large: free it now, not when the
            # cycle collector gets to the protocol.
            self.protocol.release()
            for timer in (self._keepalive_timer, self._close_timer, self._read_timer):
                if timer is not None:
                    timer.cancel()
        logger.debug("%s: closed %d %s", self.id, self.closed_code, self.closed_reason)
        self.backend.schedule(self, self._dispatch, self.websocket.closed, self.closed_code, self.closed_reason)
        self.backend.connection_lost(self)

    def close_unstarted(self, code: int, reason: str) -> None:
        """Close a connection that will never run (its manager stopped between
        the 101 and :meth:`~ws4py_integrations.manager.Manager.run`): send the
        close frame without waiting for the answer, then close the socket.

        The client sees ``code`` rather than an abrupt 1006. The handler was
        never opened, so none of its callbacks run.
        """
        with self.lock:
            if self.finalized:
                return
            self.finalized = True
            self.protocol.send_close(code, reason)
            frame = b"".join(self.protocol.data_to_send())
            self.protocol.release()
        sock = self.sock
        try:
            # A few dozen bytes into a new connection's empty send buffer:
            # never worth blocking a server thread for.
            sock.setblocking(False)
            sock.send(frame)
            sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            logger.debug("%s: the close frame was not sent: %s", self.id, exc)
        finally:
            sock.close()

    # -- read timeout -------------------------------------------------------------

    def _arm_read_timer(self, mid_frame: bool) -> None:
        # Called with the lock held, after each read: restart the clock while
        # the peer is inside a frame, stop it at a frame boundary.
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None
        if mid_frame and not self.finalized and self.options.read_timeout is not None:
            self._read_timer = self.backend.call_later(self.options.read_timeout, self._read_timed_out)

    def _read_timed_out(self) -> None:
        with self.lock:
            if self.finalized or self._read_timer is None:
                return
            self._read_timer = None
        logger.info(
            "%s: closing %s: stalled inside a frame for read_timeout=%ss",
            self.id,
            self.peer_address,
            self.options.read_timeout,
        )
        self._fail(CloseCode.POLICY_VIOLATION, "read timeout: incomplete frame")

    # -- keepalive --------------------------------------------------------------

    def _keepalive(self) -> None:
        interval, timeout = self.options.ping_interval, self.options.ping_timeout
        assert interval is not None
        with self.lock:
            if self.finalized or self.protocol.state is not OPEN:
                return
            if self._ping_payload is not None:
                # The previous keepalive ping is still unanswered.
                return
            self._ping_payload = os.urandom(4)
            self._ping_sent_at = time.monotonic()
            self.protocol.send_ping(self._ping_payload)
            self._release_locked(self.protocol.data_to_send())
            self._keepalive_timer = self.backend.call_later(
                timeout if timeout is not None else interval, self._keepalive_check
            )

    def _keepalive_check(self) -> None:
        with self.lock:
            if self.finalized:
                return
            if self._ping_payload is not None and self.options.ping_timeout is not None:
                logger.info(
                    "%s: closing %s: no pong within ping_timeout=%ss",
                    self.id,
                    self.peer_address,
                    self.options.ping_timeout,
                )
                self._keepalive_timer = None
                self._fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
                return
            self._keepalive_timer = self.backend.call_later(self._next_ping_delay(), self._keepalive)

    def _next_ping_delay(self) -> float:
        interval = self.options.ping_interval or 0.0
        return max(0.0, self._ping_sent_at + interval - time.monotonic())

    def _pong_received(self, pong: Pong) -> None:
        with self.lock:
            if self._ping_payload is not None and pong.data == self._ping_payload:
                self.latency = time.monotonic() - self._ping_sent_at
                self._ping_payload = None
                if self._keepalive_timer is not None:
                    self._keepalive_timer.cancel()
                if not self.finalized:
                    self._keepalive_timer = self.backend.call_later(self._next_ping_delay(), self._keepalive)
        self.backend.schedule(self, self._dispatch, self.websocket.ponged, pong.data)

    # -- user callbacks -----------------------------------------------------------

    def _dispatch(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run one of the handler's callbacks; what it raises is logged, never lost."""
        try:
            callback(*args)
        except Exception:
            self._callback_failed(callback)

    def _callback_failed(self, callback: Callable[..., Any]) -> None:
        """Report what ``callback`` raised (called in the ``except`` block that caught it)."""
        if isinstance(sys.exc_info()[1], WebSocketClosed):
            # A send after the peer (or we) started closing: nothing to report.
            logger.debug("%s: %s: the connection closed while sending", self.id, callback.__qualname__)
        elif callback.__name__ == "closed":
            logger.exception("%s: %s raised", self.id, callback.__qualname__)
        else:
            logger.exception("%s: %s raised; closing the connection with 1011", self.id, callback.__qualname__)
            self._fail(CloseCode.INTERNAL_ERROR, "internal server error")
