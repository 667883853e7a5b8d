"""The manager: runs every WebSocket connection of a process, on a backend.

What every backend shares lives here: the registry of connections, rooms,
broadcast, stopping, statistics, and the ordered per-connection queue of
callbacks. A backend (threads and selectors, or greenlets) supplies the
waiting: socket readiness, timers, and where a connection's queue runs
(:meth:`Manager._run_queue` is how it runs one).
"""

from __future__ import annotations

import abc
import contextlib
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from websockets.extensions.base import Extension
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Frame

from ..broker import Broker, InProcessBroker
from ..connection import Connection, RLockLike, TimerHandle, encode_frames, receive_buffer
from ..exceptions import WebSocketClosed
from ._descriptors import native_thread_count, reserve_descriptor_table

if TYPE_CHECKING:
    from ..websocket import SendData, WebSocket

__all__ = ["Manager"]

logger = logging.getLogger("ws4py_integrations.manager")

# Callbacks a connection runs in one turn before others get theirs.
BATCH = 64


def full_batch(done: int) -> bool:
    """The ``yield_turn`` of :meth:`Manager._run_queue` for turns of ``BATCH`` callbacks."""
    return done >= BATCH


_Callback = tuple[Callable[..., Any], tuple[Any, ...]]


_PLAIN = ""
# Broadcasts at least this large are compressed through Manager._offload.
_OFFLOAD_SIZE = 64 * 1024


def _shared_encoding(extensions: list[Extension]) -> object | None:
    """A key for receivers that can share one serialization of a broadcast, or
    ``None`` when this one needs its own (compression with context takeover)."""
    if not extensions:
        return _PLAIN
    if len(extensions) == 1:
        ext = extensions[0]
        if isinstance(ext, PerMessageDeflate) and ext.local_no_context_takeover:
            settings = tuple(sorted(ext.compress_settings.items()))
            return ("deflate", ext.local_max_window_bits, settings)
    return None


def _check_room(room: object) -> None:
    # A list of connections given where the room goes would silently be a
    # room nobody is in.
    if room is not None and not isinstance(room, str):
        raise TypeError(f"room must be a str or None, not {type(room).__name__} (exclude= is keyword-only)")


class Manager(abc.ABC):
    """Runs WebSocket connections; thread-safe.

    Use :class:`~ws4py_integrations.ThreadedManager` (selectors and threads)
    or, under gevent, :class:`~ws4py_integrations.gevent.GeventManager`.

    ``broker`` carries :meth:`broadcast`: by default an
    :class:`~ws4py_integrations.InProcessBroker` (this process only); a
    :class:`~ws4py_integrations.redis_broker.RedisBroker` reaches the same
    rooms in every process subscribed to the same Redis.
    """

    #: Descriptors the process's descriptor table is grown to hold when a
    #: manager is made or started, if the process has several threads then
    #: (capped by the soft ``RLIMIT_NOFILE``; Linux only; 0: leave it).
    #: Growing it as connections arrive stalls a multi-threaded server for a
    #: kernel RCU grace period at each doubling; a single-threaded one does
    #: not stall, and keeps its table small. See
    #: :func:`~ws4py_integrations.manager.reserve_descriptor_table`.
    descriptor_reserve: int = 65536
    # Whether the backend runs threads of its own (then the process will have several).
    _threaded_backend = False

    def __init__(self, *, broker: Broker | None = None) -> None:
        self._reserve_descriptors()
        self._broker: Broker = broker if broker is not None else InProcessBroker()
        self._registry: dict[Connection, None] = {}
        self._registry_lock = threading.Lock()
        self._registry_empty = threading.Condition(self._registry_lock)
        self._started = False
        self._stopped = False
        # Totals of connections already gone, so stats() stays cumulative.
        self._gone = {"messages_in": 0, "messages_out": 0, "bytes_in": 0, "bytes_out": 0}
        self._accepted = 0
        # Room membership, both ways, guarded by the registry lock; a
        # connection in no room has no entry.
        self._rooms: dict[str, dict[Connection, None]] = {}
        self._memberships: dict[Connection, set[str]] = {}
        # Callbacks waiting per connection; a connection has an entry only
        # while its queue is being run (the entry goes when it runs empty).
        self._queues: dict[Connection, deque[_Callback]] = {}
        self._queue_lock = threading.Lock()
        # Connections whose socket is watched for writability (set and
        # cleared under the connection's lock).
        self._writing: set[Connection] = set()
        #: What connections receive into (see :class:`~ws4py_integrations.connection.Backend`).
        self.recv_buffer = receive_buffer()

    def _reserve_descriptors(self) -> None:
        if self.descriptor_reserve > 0 and (self._threaded_backend or native_thread_count() > 1):
            reserve_descriptor_table(self.descriptor_reserve)

    @property
    def broker(self) -> Broker:
        """What :meth:`broadcast` goes through (see :mod:`ws4py_integrations.broker`).

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

    @property
    def accepting(self) -> bool:
        """Whether new connections are taken (``False`` once :meth:`stop` was called)."""
        return not self._stopped

    def start(self) -> None:
        """Start the backend (idempotent); :meth:`run` calls it when needed."""
        with self._registry_lock:
            if self._started:
                return
            if self._stopped:
                raise RuntimeError("this manager was stopped; create a new one")
            self._started = True
        # Again: this process may be a fork of the one that made the manager,
        # or have started threads since.
        self._reserve_descriptors()
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
            self._release_unstarted()
            return
        self.close_all(1001, "server shutting down")
        if not self.wait_closed(timeout):
            for conn in self._snapshot():
                conn.abort()
            self.wait_closed(2.0)
        self._stop_backend()
        # After every closed() callback ran: their broadcasts still went out.
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

    def run(self, conn: Connection, buffered: bytes = b"") -> None:
        """Run ``conn``, whose 101 has been sent; ``buffered`` are bytes the
        server read past the request head (processed before anything else).

        A manager that was stopped meanwhile closes the connection with 1001
        at once (without waiting for the client's answer); the handler never
        opens.
        """
        try:
            self.start()
        except RuntimeError:
            if not self._stopped:
                raise
            # Stopped before it ever started: the same answer as below.
        with self._registry_lock:
            if self._stopped:
                stopped = True
            else:
                stopped = False
                self._registry[conn] = None
                self._accepted += 1
        if stopped:
            logger.info("%s: closed with 1001: the manager stopped during the handshake", conn.id)
            conn.close_unstarted(1001, "server shutting down")
            return
        # Frames are coalesced already; Nagle would only add latency.
        # OSError: not TCP (a socket pair) or already gone: nothing to tune.
        with contextlib.suppress(OSError):
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._watch(conn, buffered)

    def watch_socket(self, endpoint: Any, buffered: bytes = b"") -> None:
        """Watch a socket that carries no WebSocket (Engine.IO's held long-polling
        responses), as the backend watches a :class:`Connection`'s.

        ``endpoint`` offers what the backend uses of a connection: ``sock``,
        ``lock`` (from :meth:`new_lock`), ``id``, ``is_tls``, ``finalized``,
        ``reading_paused``, ``start(buffered)``, ``read()`` (called when the
        socket is readable; ``False`` once done), ``on_writable()`` (after
        :meth:`want_write`; ``True`` to keep watching) and ``abort()``. It is
        in no registry (nor in :meth:`stats`); :meth:`connection_lost` ends it.
        """
        self.start()
        self._watch(endpoint, buffered)

    def wait_released(self, websocket: WebSocket, timeout: float | None = None) -> bool:
        """Wait until the manager is done with ``websocket``'s socket; ``False`` on timeout.

        For adapters whose server must keep something alive (a request
        greenlet) while the connection runs.
        """
        conn = websocket._connection
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._registry_empty:
            while conn in self._registry:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._registry_empty.wait(remaining)
        return True

    def _snapshot(self) -> list[Connection]:
        with self._registry_lock:
            return list(self._registry)

    @property
    def websockets(self) -> list[WebSocket]:
        """Open connections (a snapshot)."""
        return [c.websocket for c in self._snapshot() if not c.finalized]

    def __len__(self) -> int:
        return sum(1 for c in self._snapshot() if not c.finalized)

    def __bool__(self) -> bool:
        # A manager with no connections is still a manager (``manager or default``).
        return True

    # -- sending to many ---------------------------------------------------------------

    def broadcast(self, data: SendData, room: str | None = None, *, exclude: Iterable[WebSocket] = ()) -> int:
        """Send one message to every open connection (or every member of ``room``)
        but ``exclude``, through the broker: with a cross-process broker, in
        every process.

        Returns how many connections of this process got it. A broker that
        cannot reach other processes raises
        :class:`~ws4py_integrations.BrokerError` (connections of this process
        have the message by then) or logs it, as configured.
        """
        _check_room(room)
        return self.broker.publish(room, data, exclude)

    def broadcast_local(self, data: SendData, room: str | None = None, *, exclude: Iterable[WebSocket] = ()) -> int:
        """:meth:`broadcast` to this process's connections only, never through
        the broker: what brokers call. Returns how many got it.

        The frame is encoded once and shared by every connection that did
        not negotiate compression (compressed streams have per-connection
        state).
        """
        _check_room(room)
        if room is None:
            conns = self._snapshot()
        else:
            with self._registry_lock:
                conns = list(self._rooms.get(room, ()))
        excluded = {id(ws) for ws in exclude}
        frames = encode_frames(data)
        # Serialized frames by extension settings: b"" for none, a deflate
        # key for receivers whose compression keeps no context (the same
        # bytes fit them all), computed on the first receiver that needs them.
        encoded: dict[object, bytes] = {}
        count = 0
        for conn in conns:
            if conn.finalized or id(conn.websocket) in excluded:
                continue
            try:
                key = _shared_encoding(conn.protocol.extensions)
                if key is None:
                    conn.send_frames(frames)
                else:
                    frame_bytes = encoded.get(key)
                    if frame_bytes is None:
                        frame_bytes = encoded[key] = self._encode_shared(frames, key)
                    if not conn.send_encoded(frame_bytes):
                        continue
            except WebSocketClosed:
                continue  # it closed meanwhile
            except Exception:
                # A bug for one connection must not stop the others from getting it.
                logger.warning("%s: broadcast failed", conn.id, exc_info=True)
                continue
            count += 1
        return count

    def _encode_shared(self, frames: list[Frame], key: object) -> bytes:
        """Frames serialized once for every receiver with extension settings ``key``."""
        if key == _PLAIN:
            return b"".join(frame.serialize(mask=False) for frame in frames)
        assert isinstance(key, tuple)
        # A fresh extension with the receivers' settings: theirs may be
        # compressing a message of their own on another thread.
        extension = PerMessageDeflate(False, True, 15, key[1], dict(key[2]))

        def compress() -> bytes:
            return b"".join(frame.serialize(mask=False, extensions=[extension]) for frame in frames)

        # Small messages compress in microseconds: handing them elsewhere would cost more.
        return self._offload(compress) if sum(len(f.data) for f in frames) >= _OFFLOAD_SIZE else compress()

    def _offload(self, func: Callable[[], bytes]) -> bytes:
        """Run CPU-heavy ``func`` (compressing a broadcast) where it holds up the
        fewest connections; a backend whose loop must never block overrides it."""
        return func()

    # -- rooms ----------------------------------------------------------------------

    def join(self, websocket: WebSocket, room: str) -> None:
        """Add ``websocket`` to ``room``; it leaves every room when it closes."""
        conn = websocket._connection
        with self._registry_lock:
            if conn.finalized or conn not in self._registry:
                return
            self._rooms.setdefault(room, {})[conn] = None
            self._memberships.setdefault(conn, set()).add(room)

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
        joined = self._memberships.get(conn)
        if joined is not None:
            joined.discard(room)
            if not joined:
                del self._memberships[conn]

    def rooms_of(self, websocket: WebSocket) -> frozenset[str]:
        """The rooms ``websocket`` is in."""
        with self._registry_lock:
            return frozenset(self._memberships.get(websocket._connection, ()))

    def members(self, room: str) -> list[WebSocket]:
        """Open connections of this process in ``room`` (a snapshot)."""
        with self._registry_lock:
            conns = list(self._rooms.get(room, ()))
        return [c.websocket for c in conns if not c.finalized]

    def rooms(self) -> dict[str, int]:
        """Every room with open connections of this process, with their count."""
        with self._registry_lock:
            counts = {room: sum(1 for c in members if not c.finalized) for room, members in self._rooms.items()}
        return {room: count for room, count in counts.items() if count}

    def count(self, room: str) -> int:
        """How many open connections of this process are in ``room``."""
        with self._registry_lock:
            return sum(1 for c in self._rooms.get(room, ()) if not c.finalized)

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

    # -- what a Connection calls (its Backend) -------------------------------------------

    def schedule(self, conn: Connection, func: Callable[..., Any], *args: Any) -> None:
        """Run ``func(*args)`` after every callback scheduled before for ``conn``."""
        lock = self._queue_lock
        # acquire() and release() rather than ``with`` here and in _run_queue:
        # on Python 3.11 a with statement on a lock costs about four times as
        # much, and both run once per message.
        lock.acquire()
        try:
            queue = self._queues.get(conn)
            if queue is not None:
                queue.append((func, args))
                return
            self._queues[conn] = deque(((func, args),))
        finally:
            lock.release()
        self._queue_ready(conn)

    def run_or_schedule(self, conn: Connection, func: Callable[..., Any], *args: Any) -> None:
        """Run ``func(*args)`` now, on this thread, when nothing is queued or running
        for ``conn``; else :meth:`schedule` it.

        ``conn``'s queue is taken for the call, so callbacks scheduled meanwhile
        run after it, in order, as usual. For callers on a turn of their own
        (another connection's callback) with a callback that never blocks:
        it saves a turn of the queue.
        """
        queues = self._queues
        with self._queue_lock:
            queue = queues.get(conn)
            if queue is not None:
                queue.append((func, args))
                return
            queue = queues[conn] = deque()
        try:
            func(*args)
        except Exception:
            logger.exception("%s: callback %s failed", conn.id, getattr(func, "__qualname__", func))
        with self._queue_lock:
            if not queue:
                del queues[conn]
                return
        self._queue_ready(conn)

    def want_write(self, conn: Connection) -> None:
        """Call ``conn.on_writable()`` when its socket can take more bytes (``conn.lock`` held)."""
        if conn in self._writing or conn.finalized:
            return
        self._writing.add(conn)
        self._watch_writable(conn)

    def _flush_writable(self, conn: Connection) -> bool:
        """The socket is writable (``conn.lock`` held): flush; ``True`` to keep watching."""
        if conn.on_writable():
            return True
        self._writing.discard(conn)
        return False

    def connection_lost(self, conn: Connection) -> None:
        """Stop watching ``conn``'s socket and close it; forget ``conn`` after its ``closed()``."""
        self._writing.discard(conn)
        self._unwatch(conn)
        self.schedule(conn, self._forget, conn)

    def _forget(self, conn: Connection) -> None:
        with self._registry_lock:
            for room in list(self._memberships.get(conn, ())):
                self._leave_locked(conn, room)
            if self._registry.pop(conn, False) is None:
                for key in self._gone:
                    self._gone[key] += getattr(conn, key)
            self._registry_empty.notify_all()

    def _run_queue(self, conn: Connection, yield_turn: Callable[[int], bool]) -> bool:
        """Run ``conn``'s queued callbacks in order (for a backend).

        Before each callback, with the queue lock held, ``yield_turn(done)``
        may end the turn (``True``): the rest stays queued, and the backend
        must call this again later for ``conn``. Returns ``True`` when the
        turn was yielded, ``False`` once the queue ran empty (and was freed).
        """
        lock = self._queue_lock
        queues = self._queues
        queue: deque[_Callback] | None = None
        done = 0
        while True:
            lock.acquire()
            try:
                if queue is None:
                    queue = queues[conn]
                if not queue:
                    del queues[conn]
                    return False
                # full_batch inline (the common yield_turn): this runs once per callback.
                if done >= BATCH if yield_turn is full_batch else yield_turn(done):
                    return True
                func, args = queue.popleft()
            finally:
                lock.release()
            try:
                func(*args)
            except Exception:
                logger.exception("%s: callback %s failed", conn.id, getattr(func, "__qualname__", func))
            done += 1

    # -- backend hooks -----------------------------------------------------------------

    @abc.abstractmethod
    def _start_backend(self) -> None: ...

    @abc.abstractmethod
    def _stop_backend(self) -> None: ...

    def _release_unstarted(self) -> None:  # noqa: B027 - a hook, empty by default
        """Free what the backend holds although it was never started (stopped unused)."""

    @abc.abstractmethod
    def _watch(self, conn: Connection, buffered: bytes) -> None:
        """Start the connection (``conn.start(buffered)``) and watch its socket."""

    @abc.abstractmethod
    def _unwatch(self, conn: Connection) -> None:
        """Stop watching the socket and close it (from any thread)."""

    @abc.abstractmethod
    def _watch_writable(self, conn: Connection) -> None:
        """Call :meth:`_flush_writable` whenever the socket is writable, until it returns ``False``."""

    def new_lock(self) -> RLockLike:
        """A connection's lock (see :class:`~ws4py_integrations.connection.Backend`)."""
        return threading.RLock()

    @abc.abstractmethod
    def reading_changed(self, conn: Connection) -> None:
        """``conn.reading_paused`` changed (``conn.lock`` held, any thread)."""

    @abc.abstractmethod
    def _queue_ready(self, conn: Connection) -> None:
        """``conn`` has callbacks waiting: arrange for :meth:`_run_queue` to run them."""

    @abc.abstractmethod
    def call_later(self, delay: float, func: Callable[[], Any]) -> TimerHandle:
        """Run ``func()`` after ``delay`` seconds (from any thread)."""
