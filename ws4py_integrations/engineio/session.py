"""One Engine.IO session (:class:`EngineIOSocket`) and what carries it: held
long-polling responses and the WebSocket transport."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from ..connection import RLockLike, TimerHandle
from ..events import Message
from ..exceptions import WebSocketClosed
from ..manager import Manager
from ..websocket import WebSocket
from .packets import PacketError, PacketType, decode_text_packet, encode_payload, encode_polling_packet

if TYPE_CHECKING:
    from .server import EngineIOServer

__all__ = ["EngineIOHandler", "EngineIOSocket", "Refuse"]

logger = logging.getLogger("ws4py_integrations.engineio")

_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
_TEXT = b"text/plain; charset=UTF-8"
# Seconds between a probe and the noop that ends the pending GET.
_NOOP_DELAY = 0.03
# Longest wait of a refused second WebSocket for the probe's answer (see _refuse_ws).
_REFUSAL_WAIT = 0.5
# Seconds a refused WebSocket stays open after the probe's answer was sent: a
# client may see that answer late (Node's ws inflates compressed messages on
# its thread pool) while the refusal, an uncompressed close, goes straight through.
_ANSWER_GRACE = 0.05
# How long an answered held response waits for the client to close its side
# before the socket is closed anyway.
_LINGER = 5.0
# Seconds an answer may take to reach a client that does not read it.
_WRITE_TIMEOUT = 30.0
# Bytes a client may send on a held GET's connection (nothing is expected).
_MAX_IGNORED = 65536
#: Environ key of the session (and role) a WebSocket transport is opened for.
SESSION_KEY = "ws4py_integrations.engineio.session"


class Refuse(Exception):
    """Raised by :meth:`EngineIOHandler.connect` to refuse a session.

    The handshake is answered ``status`` (403 by default) with the reference
    server's error body ``{"code": 4, "message": message}``.
    """

    def __init__(self, message: str = "Forbidden", status: int = 403) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class EngineIOHandler(Protocol):
    """What an :class:`~ws4py_integrations.engineio.EngineIOServer` calls.

    ``connect`` runs on the handshake's request thread, before the client
    gets its session ID: raise :class:`Refuse` to refuse it (403). ``message``
    and ``disconnect`` run on the manager, in order and one at a time per
    session (a handler that blocks delays only its own session).
    ``disconnect`` is called once per session that ``connect`` accepted.
    """

    def connect(self, socket: EngineIOSocket) -> None: ...

    def message(self, socket: EngineIOSocket, data: str | bytes) -> None: ...

    def disconnect(self, socket: EngineIOSocket, reason: str) -> None: ...


class _Poll(Protocol):
    def respond(self, body: bytes, error: bool = False) -> None: ...


#: The body of a held GET refused after all (the session was upgraded meanwhile).
BAD_REQUEST = b'{"code":3,"message":"Bad request"}'


class EngineIOSocket:
    """One Engine.IO session, on whichever transport carries it now.

    :attr:`sid` is the session ID, :attr:`environ` the handshake's WSGI
    environ (less the server's streams), :attr:`transport` ``"polling"`` or
    ``"websocket"`` (it changes on an upgrade). :meth:`send` and
    :meth:`close` are safe from any thread and never wait for the network.
    """

    def __init__(
        self, server: EngineIOServer, sid: str, environ: Mapping[str, Any], transport: str, manager: Manager
    ) -> None:
        self.sid = sid
        self.environ = environ
        self.transport = transport
        #: ``True`` once the session is over (``disconnect`` follows or ran).
        self.closed = False
        #: The manager that runs this session's callbacks and timers.
        self.manager = manager
        # For the manager's log lines (it keys callback queues by this object).
        self.id = f"eio:{sid[:8]}"
        self._server = server
        self._lock: RLockLike = manager.new_lock()
        # Packets for the long-polling transport, not yet sent: (type, data).
        self._outbox: list[tuple[PacketType, str | bytes]] = []
        self._outbox_size = 0
        self._poll: _Poll | None = None
        self._posting = False
        self._ws: _EngineWebSocket | None = None
        self._probe: _EngineWebSocket | None = None
        # An upgrade request took the probe's place (on its request thread,
        # in arrival order): its WebSocket is the probe, later ones are refused.
        self._probe_claimed = False
        # Refused WebSockets waiting for the probe's answer before they are closed.
        self._refused: list[_EngineWebSocket] = []
        # When the probe was answered (time.monotonic()), if it was.
        self._probe_answered: float | None = None
        self._upgrading = False
        self._ping_timer: TimerHandle | None = None
        self._pong_timer: TimerHandle | None = None
        self._ping_sent = False
        # Messages from the client whose handler has not returned yet: what
        # they send is answered in one payload, as the reference server does
        # (its handlers run before the POST is answered).
        self._handling = 0
        # A handler whose message() never blocks (Socket.IO's: it only decodes
        # and queues) gets WebSocket messages on the transport's own turn, in
        # this session's queue (taken meanwhile): a queue turn less per message.
        self._inline_messages = bool(getattr(server.handler, "_inline_messages", False)) and hasattr(
            manager, "run_or_schedule"
        )

    def __repr__(self) -> str:
        state = "closed" if self.closed else self.transport
        return f"<EngineIOSocket {self.sid} {state}>"

    # -- the application's side ----------------------------------------------------

    def send(self, data: str | bytes) -> None:
        """Send one message: ``str`` as text, bytes as binary.

        Never blocks: packets wait in a buffer bounded by the server's
        ``max_buffer`` (a session that lets more than that pile up is closed
        as too slow). Ignored once the session is closed.
        """
        if isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        if not isinstance(data, (str, bytes)):
            raise TypeError(f"an Engine.IO message is str or bytes, not {type(data).__name__}")
        self._send_packet(PacketType.MESSAGE, data)

    def close(self) -> None:
        """Close the session (the client gets a close packet); idempotent."""
        self._close("forced close")

    # -- sending ----------------------------------------------------------------

    def _send_packet(self, kind: PacketType, data: str | bytes = "") -> None:
        with self._lock:
            if self.closed:
                return
            ws = self._ws
            if ws is None:
                self._outbox.append((kind, data))
                self._outbox_size += len(data) + 1
                limit = self._server.max_buffer
                if limit is not None and self._outbox_size > limit:
                    logger.warning(
                        "%s: closing: %d bytes wait for the client, more than max_buffer=%d (client too slow)",
                        self.id,
                        self._outbox_size,
                        limit,
                    )
                    self._close("transport error")
                    return
                if kind is PacketType.PING or not self._handling:
                    self._flush_poll()
                return
            _ws_send(ws, kind, data)

    def _take_payload(self) -> bytes:
        """The waiting packets as one long-polling payload (lock held)."""
        body = encode_payload([encode_polling_packet(kind, data) for kind, data in self._outbox])
        self._outbox = []
        self._outbox_size = 0
        return body

    def _flush_poll(self) -> None:
        """Answer the held GET if packets wait (lock held)."""
        poll = self._poll
        if poll is not None and self._outbox and not self._upgrading:
            self._poll = None
            poll.respond(self._take_payload())

    # -- heartbeat ----------------------------------------------------------------

    def _schedule_ping(self) -> None:
        # With the lock held, or before the session is visible. The pong is
        # due ping_interval + ping_timeout from now: one deadline, so that
        # timer latency does not add up between the ping and its timeout.
        server = self._server
        self._ping_sent = False
        self._ping_timer = self.manager.call_later(server.ping_interval, self._ping)
        self._pong_timer = self.manager.call_later(server.ping_interval + server.ping_timeout, self._pong_missed)

    def _ping(self) -> None:
        with self._lock:
            if self.closed:
                return
            self._ping_sent = True
            self._send_packet(PacketType.PING)

    def _pong_missed(self) -> None:
        logger.info("%s: no pong within %gs; closing", self.id, self._server.ping_timeout)
        self._close("ping timeout")

    def _ponged(self) -> None:
        with self._lock:
            if self.closed or not self._ping_sent:
                return  # a pong nobody asked for
            if self._pong_timer is not None:
                self._pong_timer.cancel()
            self._schedule_ping()

    # -- receiving -------------------------------------------------------------------

    def _schedule(self, func: Callable[..., Any], *args: Any) -> None:
        # The manager keys its ordered callback queues by any object with an id.
        manager: Any = self.manager
        manager.schedule(self, func, *args)

    def _receive(self, kind: PacketType, data: str | bytes, *, on_ws_turn: bool = False) -> bool:
        """Handle one packet from the client; ``False`` if it was invalid (the session is closed).

        ``on_ws_turn``: called on the WebSocket transport's turn (not a request thread).
        """
        if kind is PacketType.MESSAGE:
            with self._lock:
                self._handling += 1
            if on_ws_turn and self._inline_messages:
                manager: Any = self.manager
                manager.run_or_schedule(self, self._deliver, data)
            else:
                self._schedule(self._deliver, data)
        elif kind is PacketType.PONG:
            self._ponged()
        elif kind is PacketType.CLOSE:
            self._close("transport close", by_client=True)
        elif kind is not PacketType.NOOP and not (kind is PacketType.UPGRADE and self.transport == "polling"):
            # open, or ping (the server pings in v4), or upgrade on a WebSocket.
            logger.info("%s: unexpected %s packet from the client; closing", self.id, kind.name.lower())
            self._close("parse error")
            return False
        return True

    def _deliver(self, data: str | bytes) -> None:
        try:
            self._server.handler.message(self, data)
        finally:
            with self._lock:
                self._handling -= 1
                if not self._handling:
                    self._flush_poll()

    # -- long polling ---------------------------------------------------------------

    def _poll_lost(self, poll: _Poll) -> None:
        """A held GET's client left before it was answered."""
        with self._lock:
            if self._poll is poll:
                self._poll = None

    # -- WebSocket ---------------------------------------------------------------

    def _attach_ws(self, ws: _EngineWebSocket, open_packet: str) -> None:
        """A session opened on the WebSocket transport: send the open packet, then what waits."""
        with self._lock:
            if self.closed:
                ws.close()
                return
            _ws_send(ws, PacketType.OPEN, open_packet)
            self._ws = ws
            for kind, data in self._outbox:
                _ws_send(ws, kind, data)
            self._outbox = []
            self._outbox_size = 0

    def _claim_probe(self) -> bool:
        """On the upgrade request's thread: whether its WebSocket may probe (the first one does)."""
        with self._lock:
            if self.closed or self._ws is not None or self._probe_claimed or self.transport != "polling":
                return False
            self._probe_claimed = True
            return True

    def _unclaim_probe(self) -> None:
        """The claiming upgrade failed (no WebSocket came of it)."""
        with self._lock:
            self._probe_claimed = self._probe is not None
            refused = self._take_refused()
        _close_all(refused)

    def _start_probe(self, ws: _EngineWebSocket) -> bool:
        with self._lock:
            if self.closed or self._ws is not None or self._probe is not None or self.transport != "polling":
                self._probe_claimed = self._probe is not None
                refused = self._take_refused()
            else:
                self._probe = ws
                return True
        _close_all(refused)
        return False

    def _refuse_ws(self, ws: _EngineWebSocket) -> None:
        """A further WebSocket for this session: closed at once, as the reference server does.

        The reference server handles its connections in arrival order: a
        client that sent ``2probe`` before opening the second WebSocket gets
        ``3probe`` before that one is closed. Here they are handled on
        different threads, so the second waits (at most ``_REFUSAL_WAIT``)
        while the probe has not been answered yet, and is closed no sooner
        than ``_ANSWER_GRACE`` after the answer.
        """
        with self._lock:
            if not self.closed and self._probe_claimed and not self._upgrading:
                self._refused.append(ws)
                self.manager.call_later(_REFUSAL_WAIT, functools.partial(self._refusal_due, ws))
                return
        delay = self._answer_grace_left()
        if delay > 0:
            self.manager.call_later(delay, ws.close)
        else:
            ws.close()

    def _answer_grace_left(self) -> float:
        """Seconds before a refusal caused by the upgrade may overtake the probe's answer."""
        answered = self._probe_answered
        return 0.0 if answered is None else answered + _ANSWER_GRACE - time.monotonic()

    def _refusal_due(self, ws: _EngineWebSocket) -> None:
        with self._lock:
            if ws not in self._refused:
                return
            self._refused.remove(ws)
        ws.close()

    def _take_refused(self) -> list[_EngineWebSocket]:
        # With the lock held.
        refused, self._refused = self._refused, []
        return refused

    def _probe_message(self, ws: _EngineWebSocket, data: str | bytes) -> None:
        with self._lock:
            if self._probe is not ws or self.closed:
                ws.close()
                return
            if data == "2probe" and not self._upgrading:
                self._upgrading = True
                _ws_send(ws, PacketType.PONG, "probe")
                # The probe is answered: the WebSockets refused meanwhile close after it.
                self._probe_answered = time.monotonic()
                refused = self._take_refused()
                if refused:
                    self.manager.call_later(_ANSWER_GRACE, functools.partial(_close_all, refused))
                # The pending GET ends cleanly with a noop (GETs until the
                # upgrade get one at once), a moment later: if the upgrade
                # packet comes meanwhile (a client that did not wait for the
                # GET), the GET came too late and is refused as after an upgrade.
                if self._poll is not None:
                    self._end_poll_soon(self._poll)
                return
            if data == "5" and self._upgrading:
                self._upgrading = False
                self._probe = None
                self._probe_claimed = False
                self._ws = ws
                ws.role = "main"
                self.transport = "websocket"
                # (No GET is pending: since the probe, GETs get a noop at once.)
                for kind, payload in self._outbox:
                    _ws_send(ws, kind, payload)
                self._outbox = []
                self._outbox_size = 0
                logger.debug("%s: upgraded to WebSocket", self.id)
                return
        logger.info("%s: invalid packet %r during the upgrade; dropping the probe", self.id, data[:20])
        self._probe_closed(ws)
        ws.close()

    def _end_poll_soon(self, poll: _Poll) -> None:
        self.manager.call_later(_NOOP_DELAY, lambda: self._end_poll(poll))

    def _end_poll(self, poll: _Poll) -> None:
        with self._lock:
            if self._poll is not poll:
                return
            self._poll = None
            if self.transport == "websocket":
                poll.respond(BAD_REQUEST, error=True)
            else:
                poll.respond(b"6")

    def _probe_closed(self, ws: _EngineWebSocket) -> None:
        with self._lock:
            if self._probe is not ws:
                return
            self._probe = None
            self._probe_claimed = False
            self._upgrading = False
            refused = self._take_refused()
        _close_all(refused)

    def _ws_message(self, ws: _EngineWebSocket, data: str | bytes) -> None:
        if ws is not self._ws:
            return
        if isinstance(data, bytes):
            self._receive(PacketType.MESSAGE, data, on_ws_turn=True)
            return
        try:
            kind, payload = decode_text_packet(data)
        except PacketError as exc:
            logger.info("%s: %s; closing", self.id, exc)
            self._close("parse error")
            return
        self._receive(kind, payload, on_ws_turn=True)

    # -- closing ---------------------------------------------------------------------

    def _close(self, reason: str, *, by_client: bool = False) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            for timer in (self._ping_timer, self._pong_timer):
                if timer is not None:
                    timer.cancel()
            self._ping_timer = self._pong_timer = None
            poll, self._poll = self._poll, None
            ws, probe = self._ws, self._probe
            self._ws = self._probe = None
            refused = self._take_refused()
            self._outbox = []
            self._outbox_size = 0
        self._server._forget(self, by_client and poll is None and ws is None)
        logger.debug("%s: closed (%s)", self.id, reason)
        if poll is not None:
            # A close from the client ends the pending GET with a noop, ours with a close packet.
            poll.respond(b"6" if by_client else b"1")
        if ws is not None:
            if not by_client:
                _ws_send(ws, PacketType.CLOSE)
            ws.close()
        if probe is not None:
            probe.close()
        _close_all(refused)
        self._schedule(self._server.handler.disconnect, self, reason)


def _close_all(websockets: list[_EngineWebSocket]) -> None:
    for ws in websockets:
        ws.close()


def _ws_send(ws: WebSocket, kind: PacketType, data: str | bytes = "") -> None:
    try:
        if isinstance(data, bytes):
            ws.send(data)
        elif kind is PacketType.MESSAGE:
            ws.send("4" + data)  # the common case, without formatting
        else:
            ws.send(f"{int(kind)}{data}")
    except WebSocketClosed:
        pass  # its closed() callback ends the session


class _EngineWebSocket(WebSocket):
    """The WebSocket transport of one session (or a probe for an upgrade)."""

    role = "main"
    session: EngineIOSocket | None = None

    def opened(self) -> None:
        session, role, open_packet = self.environ[SESSION_KEY]
        self.session = session
        self.role = role
        if role == "main":
            session._attach_ws(self, open_packet)
        elif role == "refused" or not session._start_probe(self):
            # The session was upgraded already, or is being upgraded: as the
            # reference server does, the second WebSocket is closed.
            self.session = None
            session._refuse_ws(self)

    def received_message(self, message: Message) -> None:
        session = self.session
        if session is None:
            return
        if self.role == "probe":
            session._probe_message(self, message.data)
        else:
            session._ws_message(self, message.data)

    def closed(self, code: int, reason: str = "") -> None:
        session = self.session
        if session is None:
            return
        if self.role == "probe":
            session._probe_closed(self)
        elif session._ws is self:
            session._close("transport close", by_client=True)


class HeldPoll:
    """A long-polling GET taken from its server, answered later by the manager.

    The server thread is free as soon as the request is detached; the answer
    (one payload, with ``Connection: close``: the connection cannot go back to
    its server for the next request) is written without blocking, the rest
    when the socket is writable. Then the socket is half-closed and closed
    once the client closes (or after a few seconds).
    """

    reading_paused = False

    def __init__(self, session: EngineIOSocket, sock: socket.socket, version: bytes, head: bytes) -> None:
        self.id = f"{session.id}:poll"
        self.sock = sock
        self.is_tls = isinstance(sock, ssl.SSLSocket)
        self.finalized = False
        self._session = session
        self._manager = session.manager
        self.lock: RLockLike = self._manager.new_lock()
        # The HTTP version, and the header lines after the content's.
        self._version = version
        self._head = head
        self._out = b""
        self._sent = 0
        self._answered = False
        # The write deadline, then the lingering close's.
        self._timer: TimerHandle | None = None
        self._ignored = 0
        sock.setblocking(False)

    # -- what the manager calls ---------------------------------------------------

    def start(self, buffered: bytes) -> None:
        """Bytes past the request head are not ours to read (``Connection: close``)."""

    def read(self) -> bool:
        with self.lock:
            if self.finalized:
                return False
            try:
                data = self.sock.recv(4096)
            except _WOULD_BLOCK:
                return True
            except OSError:
                data = b""
            self._ignored += len(data)
            if data and self._ignored <= _MAX_IGNORED:
                return True  # nothing is expected; whatever it is goes unread
        self.abort()  # the client hung up
        return False

    def on_writable(self) -> bool:
        if self.finalized:
            return False
        self._write()
        return self._sent < len(self._out) and not self.finalized

    def abort(self) -> None:
        with self.lock:
            if self.finalized:
                return
            self.finalized = True
            if self._timer is not None:
                self._timer.cancel()
        self._manager.connection_lost(self)  # type: ignore[arg-type]
        if not self._answered:
            self._session._poll_lost(self)

    # -- what the session calls ---------------------------------------------------

    def respond(self, body: bytes, error: bool = False) -> None:
        """Answer the GET with a payload, or 400 with an error ``body`` (from any thread, never waits)."""
        with self.lock:
            if self._answered or self.finalized:
                return
            self._answered = True
            # A client that never reads its answer does not keep it forever.
            self._timer = self._manager.call_later(_WRITE_TIMEOUT, self.abort)
            status, content_type = (b"400 Bad Request", b"application/json") if error else (b"200 OK", _TEXT)
            self._out = b"%s %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n%s" % (
                self._version,
                status,
                content_type,
                len(body),
                self._head,
                body,
            )
            self._write()

    def _write(self) -> None:
        # With self.lock held.
        try:
            self._sent += self.sock.send(memoryview(self._out)[self._sent :])
        except _WOULD_BLOCK:
            pass
        except OSError as exc:
            logger.debug("%s: the client left: %s", self.id, exc)
            self.abort()
            return
        if self._sent < len(self._out):
            self._manager.want_write(self)  # type: ignore[arg-type]
            return
        self._out = b""
        # Done: tell the client, and wait a little for it to close first (no RST).
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._manager.call_later(_LINGER, self.abort)


class BlockingPoll:
    """A long-polling GET held on its server thread (servers without a handover)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._body: bytes | None = None
        #: Whether the answer is an error (400) rather than a payload.
        self.error = False

    def respond(self, body: bytes, error: bool = False) -> None:
        with self._lock:
            if self._body is None:
                self._body = body
                self.error = error
        self._event.set()

    def wait(self, timeout: float) -> None:
        self._event.wait(timeout)

    def finish(self) -> bytes:
        """The answer, or a noop if none came (a later one is dropped)."""
        with self._lock:
            if self._body is None:
                self._body = b"6"
            return self._body


def open_packet(server: EngineIOServer, sid: str, upgrades: list[str]) -> str:
    """The data of the open packet of a new session."""
    return json.dumps(
        {
            "sid": sid,
            "upgrades": upgrades,
            "pingInterval": round(server.ping_interval * 1000),
            "pingTimeout": round(server.ping_timeout * 1000),
            "maxPayload": server.max_payload,
        },
        separators=(",", ":"),
    )
