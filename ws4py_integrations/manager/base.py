"""The manager interface: what every backend (threads, greenlets) offers.

A manager runs every detached connection of a process. The shared logic
(registry, broadcast, close_all, stop, stats) lives here; a backend supplies
the waiting: socket readiness, timers and the per-connection callback queue
(see :class:`~ws4py_integrations.connection.Backend`).
"""

from __future__ import annotations

import abc
import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..broker import Broker, InProcessBroker
from ..connection import Connection, TimerHandle, encode_frames

if TYPE_CHECKING:
    from ..handshake import Accept
    from ..options import WebSocketOptions
    from ..websocket import SendData, WebSocket

__all__ = ["Manager"]

logger = logging.getLogger("ws4py_integrations.manager")


# Server plumbing that means nothing once the connection is a WebSocket, and
# that would keep the server's request objects (and their buffers) alive.
_PLUMBING = frozenset({"wsgi.input", "wsgi.errors", "wsgi.file_wrapper", "ws4py_integrations.connection"})


def _connection_environ(environ: Mapping[str, Any]) -> dict[str, Any]:
    """The environ a WebSocket keeps: the request's, less the server's stream
    objects and the copy of the process environment some servers (wsgiref) add."""
    process = os.environ
    return {
        key: value
        for key, value in environ.items()
        if key not in _PLUMBING and not (key in process and process[key] == value)
    }


def _refuse(sock: socket.socket, status: str, reason: str) -> None:
    """Answer a detached connection with a plain HTTP error and close it."""
    body = (reason + "\n").encode()
    head = f"HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    # OSError: the client is gone; closing is all that is left.
    with contextlib.suppress(OSError):
        sock.settimeout(5.0)
        sock.sendall(head.encode("latin-1") + body)
    sock.close()


class Manager(abc.ABC):
    """Runs detached WebSocket connections; thread-safe.

    Use :class:`~ws4py_integrations.manager.ThreadedManager` (selectors and
    worker threads) or, under gevent, ``ws4py_integrations.gevent.GeventManager``.

    ``broker`` carries :meth:`publish` and :meth:`broadcast`: by default an
    :class:`~ws4py_integrations.broker.InProcessBroker` (this process only);
    a :class:`~ws4py_integrations.redis_broker.RedisBroker` reaches the same
    rooms in every process subscribed to the same Redis.
    """

    def __init__(self, *, broker: Broker | None = None) -> None:
        self._broker: Broker = broker if broker is not None else InProcessBroker()
        self._registry: dict[Connection, None] = {}
        self._registry_lock = threading.Lock()
        self._registry_empty = threading.Condition(self._registry_lock)
        self._started = False
        self._stopped = False
        # Totals of connections already gone, so stats() stays cumulative.
        self._gone = {"messages_in": 0, "messages_out": 0, "bytes_in": 0, "bytes_out": 0}
        self._accepted = 0
        self._rooms: dict[str, dict[Connection, None]] = {}

    @property
    def broker(self) -> Broker:
        """What :meth:`publish` and :meth:`broadcast` go through (see :mod:`ws4py_integrations.broker`).

        Settable until the manager starts (for a manager made by someone
        else, e.g. a gunicorn worker's in its ``post_worker_init`` hook).
        """
        return self._broker

    @broker.setter
    def broker(self, broker: Broker) -> None:
        with self._registry_lock:
            if self._started or self._stopped:
                raise RuntimeError("the broker of a started manager cannot change")
            self._broker = broker

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        """Start the backend (idempotent); :meth:`add` calls it when needed."""
        with self._registry_lock:
            if self._started:
                return
            if self._stopped:
                raise RuntimeError("this manager was stopped; create a new one")
            self._started = True
        self._start_backend()
        self.broker.attach(self)

    def stop(self, timeout: float | None = None) -> None:
        """Close every connection with 1001, wait for them (``timeout`` seconds,
        by default the largest ``close_timeout``) and stop the backend."""
        with self._registry_lock:
            if self._stopped:
                return
            self._stopped = True
            started = self._started
            if timeout is None:
                timeout = max((c.options.close_timeout for c in self._registry), default=0.0)
        if not started:
            self.broker.close()
            return
        self.close_all(1001, "server shutting down")
        if not self.wait_closed(timeout):
            for conn in self._snapshot():
                conn.abort()
            self.wait_closed(2.0)
        self._stop_backend()
        # After every closed() callback ran: their publishes still went out.
        self.broker.close()

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Wait until every connection has finished (its ``closed()`` has run)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._registry_empty:
            while self._registry:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._registry_empty.wait(remaining)
        return True

    # -- connections ---------------------------------------------------------------

    def add(
        self,
        sock: socket.socket,
        buffered: bytes,
        accept: Accept,
        handler_cls: type[WebSocket],
        environ: Mapping[str, Any],
        options: WebSocketOptions,
    ) -> WebSocket | None:
        """Take over ``sock``: create the handler, send the 101 and run the connection.

        ``buffered`` are bytes the server read past the request head. Returns
        ``None`` when no WebSocket came of it: the handler's constructor
        raised (the client gets a 500), the manager is stopping (503), or the
        client left during the handshake.
        """
        self.start()
        conn = Connection(sock, accept.protocol, options, _connection_environ(environ), self)
        try:
            websocket = handler_cls(conn, self)
        except Exception:
            logger.exception("%s() raised; refusing the upgrade", handler_cls.__name__)
            _refuse(sock, "500 Internal Server Error", "the WebSocket handler could not be created")
            return None
        conn.websocket = websocket
        with self._registry_lock:
            stopping = self._stopped
        if stopping:
            _refuse(sock, "503 Service Unavailable", "server shutting down")
            return None
        try:
            # The 101 is written here, after the handler exists: a failure
            # above still gets an HTTP answer rather than a dead connection.
            sock.setblocking(True)
            sock.sendall(accept.response)
            # Frames are coalesced here already; Nagle would only add latency.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            logger.info("client %s left during the handshake: %s", environ.get("REMOTE_ADDR"), exc)
            sock.close()
            return None
        with self._registry_lock:
            self._registry[conn] = None
            self._accepted += 1
        self._watch(conn, buffered)
        return websocket

    def _snapshot(self) -> list[Connection]:
        with self._registry_lock:
            return list(self._registry)

    @property
    def websockets(self) -> list[WebSocket]:
        """Open connections (a snapshot)."""
        return [c.websocket for c in self._snapshot() if not c.finalized and c.websocket is not None]

    def __len__(self) -> int:
        return sum(1 for c in self._snapshot() if not c.finalized)

    def __bool__(self) -> bool:
        # A manager with no connections is still a manager (``manager or default``).
        return True

    def broadcast(self, data: SendData, exclude: Iterable[WebSocket] = ()) -> int:
        """Send one message to every open connection but ``exclude``, through the broker
        (with a cross-process broker: every connection of every process).

        Returns how many connections of this process got it. The frame is
        encoded once and shared by every connection that did not negotiate
        compression (compressed streams have per-connection state).
        """
        return self.broker.publish(None, data, exclude)

    # -- rooms ----------------------------------------------------------------------

    def join(self, websocket: WebSocket, room: str) -> None:
        """Add ``websocket`` to ``room``; it leaves every room when it closes."""
        conn = websocket._connection
        with self._registry_lock:
            if conn.finalized or conn not in self._registry:
                return
            self._rooms.setdefault(room, {})[conn] = None
            conn.add_room(room)

    def leave(self, websocket: WebSocket, room: str) -> None:
        """Remove ``websocket`` from ``room`` (no error if it is not a member)."""
        with self._registry_lock:
            self._leave_locked(websocket._connection, room)

    def _leave_locked(self, conn: Connection, room: str) -> None:
        members = self._rooms.get(room)
        if members is not None:
            members.pop(conn, None)
            if not members:
                del self._rooms[room]
        conn.discard_room(room)

    def publish(self, room: str, data: SendData, exclude: Iterable[WebSocket] = ()) -> int:
        """Send one message to the members of ``room`` but ``exclude``, through the broker
        (with a cross-process broker: the members in every process).

        Returns how many connections of this process got it. A broker that
        cannot reach other processes raises
        :class:`~ws4py_integrations.broker.BrokerError` (members in this
        process have the message by then) or logs it, as configured.
        """
        return self.broker.publish(room, data, exclude)

    def deliver(self, room: str | None, data: SendData, exclude: Iterable[WebSocket] = ()) -> int:
        """Send one message to this process's members of ``room`` (``None``: every
        connection) but ``exclude``; returns how many got it.

        What brokers call: it never goes through the broker. The frame is
        encoded once for all of them.
        """
        if room is None:
            return self._send_to(self._snapshot(), data, exclude)
        with self._registry_lock:
            members = list(self._rooms.get(room, ()))
        return self._send_to(members, data, exclude)

    def members(self, room: str) -> list[WebSocket]:
        """Open connections of this process in ``room`` (a snapshot)."""
        with self._registry_lock:
            conns = list(self._rooms.get(room, ()))
        return [c.websocket for c in conns if not c.finalized and c.websocket is not None]

    def rooms(self) -> dict[str, int]:
        """Every room with open connections of this process, with their count."""
        with self._registry_lock:
            counts = {room: sum(1 for c in members if not c.finalized) for room, members in self._rooms.items()}
        return {room: count for room, count in counts.items() if count}

    def count(self, room: str) -> int:
        """How many open connections of this process are in ``room``."""
        with self._registry_lock:
            return sum(1 for c in self._rooms.get(room, ()) if not c.finalized)

    def _send_to(self, conns: Iterable[Connection], data: SendData, exclude: Iterable[WebSocket]) -> int:
        excluded = {id(ws) for ws in exclude}
        frames = encode_frames(data)
        plain: bytes | None = None
        count = 0
        for conn in conns:
            if conn.finalized or id(conn.websocket) in excluded:
                continue
            try:
                if conn.protocol.extensions:
                    conn.send_frames(frames)
                else:
                    if plain is None:
                        plain = b"".join(frame.serialize(mask=False) for frame in frames)
                    if not conn.send_encoded(plain):
                        continue
                count += 1
            except Exception as exc:  # one bad connection must not stop a broadcast
                logger.debug("broadcast skipped %s: %s", conn.peer_address, exc)
        return count

    def close_all(self, code: int = 1001, reason: str = "") -> None:
        """Start the closing handshake on every connection."""
        for conn in self._snapshot():
            conn.close(code, reason)

    def stats(self) -> dict[str, int]:
        """Counters: open connections, accepted in total, messages and bytes in/out."""
        conns = self._snapshot()
        totals = dict(self._gone)
        for conn in conns:
            totals["messages_in"] += conn.messages_in
            totals["messages_out"] += conn.messages_out
            totals["bytes_in"] += conn.bytes_in
            totals["bytes_out"] += conn.bytes_out
        return {"connections": sum(1 for c in conns if not c.finalized), "accepted": self._accepted, **totals}

    # -- Backend protocol, shared parts ------------------------------------------------

    def connection_lost(self, conn: Connection) -> None:
        self._unwatch(conn)
        # Forget the connection after its closed() callback has run.
        self.schedule(conn, self._forget, conn)

    def _forget(self, conn: Connection) -> None:
        with self._registry_lock:
            for room in list(conn.rooms):
                self._leave_locked(conn, room)
            if self._registry.pop(conn, False) is None:
                for key in self._gone:
                    self._gone[key] += getattr(conn, key)
            if not self._registry:
                self._registry_empty.notify_all()

    # -- backend hooks -----------------------------------------------------------------

    @abc.abstractmethod
    def _start_backend(self) -> None: ...

    @abc.abstractmethod
    def _stop_backend(self) -> None: ...

    @abc.abstractmethod
    def _watch(self, conn: Connection, buffered: bytes) -> None:
        """Start the connection (``conn.start(buffered)``) and watch its socket."""

    @abc.abstractmethod
    def _unwatch(self, conn: Connection) -> None:
        """Stop watching the socket and close it."""

    @abc.abstractmethod
    def schedule(self, conn: Connection, func: Callable[..., Any], *args: Any) -> None: ...

    @abc.abstractmethod
    def want_write(self, conn: Connection) -> None: ...

    @abc.abstractmethod
    def call_later(self, delay: float, func: Callable[[], Any]) -> TimerHandle: ...
