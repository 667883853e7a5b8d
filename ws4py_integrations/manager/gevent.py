"""The greenlet backend: a :class:`~ws4py_integrations.Manager` on a gevent hub.

Readiness, timers and closing run on the hub of the thread that starts the
manager (the server's). Per connection, libev io watchers call
:meth:`Connection.read` and, while bytes wait for the socket,
:meth:`Connection.on_writable` from the hub itself: an idle connection has no
greenlet, and reading costs no switch. Sockets stay non-blocking and the
engine never waits while it holds ``Connection.lock``, so nothing in those
callbacks can block the hub.

User callbacks (``opened``, ``received_message``...) run one at a time per
connection and in order, as on :class:`~ws4py_integrations.ThreadedManager`:

- ``handlers="greenlets"``: on a greenlet per connection. Right when the
  process is monkey-patched: blocking calls in handlers yield to the hub.
  Code that blocks without yielding (unpatched sockets or ``time.sleep``,
  CPU-bound loops, C extensions doing I/O) stops *every* connection of the hub
  while it runs.
- ``handlers="threads"``: on a pool of OS threads (at most ``max_workers``),
  so a handler that blocks delays only its own connection. Only for a process
  whose ``threading`` module is not patched.
- ``handlers="auto"`` (default): greenlets when the ``socket`` or ``threading``
  module is monkey-patched, threads otherwise; the choice of threads is logged
  once (at INFO).

``send``, ``broadcast``, ``close`` work from any greenlet or OS thread: work
for the hub from another thread goes through ``loop.run_callback_threadsafe``.
"""

from __future__ import annotations

import _socket
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal

from .._extras import missing_extra
from ..broker import Broker
from ..connection import Connection
from .base import Manager, full_batch

try:
    import gevent
    import gevent.event
    import gevent.ssl
    from gevent import monkey
except ImportError as exc:
    raise missing_extra("ws4py_integrations.gevent", "gevent", exc) from exc

if TYPE_CHECKING:
    from ..websocket import WebSocket

__all__ = ["GeventManager", "HandlerMode"]

logger = logging.getLogger("ws4py_integrations.gevent")

HandlerMode = Literal["auto", "greenlets", "threads"]

_READ, _WRITE = 1, 2
# The real thread id, even when ``_thread`` is monkey-patched (then get_ident is per greenlet).
_real_get_ident: Callable[[], int] = monkey.get_original("_thread", "get_ident")
# The C implementations, even when ``threading`` is monkey-patched: the engine
# never waits for anything while it holds these (sockets are non-blocking), so
# no greenlet can switch out holding one, and the patched ones, written in
# Python, cost more than the work they guard.
_RealRLock: Callable[[], Any] = monkey.get_original("_thread", "RLock")
_RealLock: Callable[[], Any] = monkey.get_original("_thread", "allocate_lock")
_logged_modes: set[str] = set()
_logged_lock = threading.Lock()


def _log_once(key: str, level: int, message: str, *args: Any) -> None:
    with _logged_lock:
        if key in _logged_modes:
            return
        _logged_modes.add(key)
    logger.log(level, message, *args)


class _HubTimer:
    """A :class:`~ws4py_integrations.connection.TimerHandle` on the hub."""

    __slots__ = ("cancelled", "func", "manager", "watcher")

    def __init__(self, manager: GeventManager, func: Callable[[], Any]) -> None:
        self.manager = manager
        self.func = func
        self.cancelled = False
        self.watcher: Any = None

    def cancel(self) -> None:
        # From any thread: the flag is enough; on the hub thread, free the watcher now.
        self.cancelled = True
        watcher = self.watcher
        if watcher is not None and self.manager._in_hub_thread():
            self.watcher = None
            watcher.stop()
            watcher.close()


class _Watch:
    """Hub-side state of one connection (touched on the hub thread only, but ``released``)."""

    __slots__ = ("read_watcher", "released", "released_event", "write_watcher")

    def __init__(self) -> None:
        # libev io watchers whose callbacks run in the hub itself: an idle
        # connection costs no greenlet, and a read no switch.
        self.read_watcher: Any = None
        self.write_watcher: Any = None
        # The socket is closed: the server may have the connection back.
        self.released = False
        self.released_event: gevent.event.Event | None = None


class GeventManager(Manager):
    """A manager whose I/O runs on a gevent hub (see the module documentation).

    The manager belongs to the hub of the thread that starts it (the first
    :meth:`add`, normally in a request greenlet of the server).
    """

    def __init__(
        self,
        *,
        handlers: HandlerMode = "auto",
        max_workers: int = 32,
        name: str = "ws4py-gevent",
        broker: Broker | None = None,
    ) -> None:
        if handlers not in ("auto", "greenlets", "threads"):
            raise ValueError(f"handlers must be 'auto', 'greenlets' or 'threads', not {handlers!r}")
        super().__init__(broker=broker)
        self._requested_mode: HandlerMode = handlers
        #: ``"greenlets"`` or ``"threads"`` once started.
        self.handlers: str | None = None
        self._max_workers = max_workers
        self._name = name
        self._hub: Any = None
        self._loop: Any = None
        self._hub_ident: int | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._queue_lock = _RealLock()
        self._watches: dict[Connection, _Watch] = {}
        self._watches_lock = _RealLock()
        # Greenlet handlers: connections whose callbacks wait for the runner
        # greenlet, and the runner (see _run_ready). Hub thread only.
        self._ready: deque[Connection] = deque()
        self._runner: Any = None
        self._idle_runner: Any = None
        self._runners_end = False
        self._turns = 0

    # -- lifecycle -----------------------------------------------------------------

    def _start_backend(self) -> None:
        self._hub = gevent.get_hub()
        self._loop = self._hub.loop
        self._hub_ident = _real_get_ident()
        self.handlers = self._resolve_mode()
        if self.handlers == "threads":
            self._pool = ThreadPoolExecutor(self._max_workers, thread_name_prefix=f"{self._name}-worker")

    def _resolve_mode(self) -> str:
        socket_patched = monkey.is_module_patched("socket")
        threading_patched = monkey.is_module_patched("threading")
        mode = self._requested_mode
        if mode == "threads" and threading_patched:
            raise ValueError(
                "handlers='threads' needs real threads, but the threading module is monkey-patched; "
                "use handlers='greenlets' (blocking calls in handlers yield to the hub)"
            )
        if mode == "auto":
            mode = "greenlets" if socket_patched or threading_patched else "threads"
            if mode == "threads":
                _log_once(
                    "auto-threads",
                    logging.INFO,
                    "gevent: the socket module is not monkey-patched, so WebSocket handlers run on up to %d "
                    "OS threads (a blocking handler delays only its own connection); call "
                    "gevent.monkey.patch_all() first to run them on greenlets",
                    self._max_workers,
                )
        elif mode == "greenlets" and not socket_patched:
            _log_once(
                "unpatched-greenlets",
                logging.WARNING,
                "gevent: WebSocket handlers run on greenlets but the socket module is not monkey-patched: "
                "a handler that blocks (time.sleep, an unpatched socket, a slow library call) stops every "
                "connection of this hub while it blocks; call gevent.monkey.patch_all() first, or use "
                "handlers='threads'",
            )
        return mode

    def _stop_backend(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
        else:
            self._call_soon(self._end_idle_runner)

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Wait until every connection has finished (its ``closed()`` has run).

        On the hub's thread this waits cooperatively (the hub keeps running
        the connections that are closing); elsewhere it blocks the thread.
        """
        if not self._in_hub_thread():
            return super().wait_closed(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.001
        while not super().wait_closed(0):
            if deadline is not None and time.monotonic() >= deadline:
                return False
            gevent.sleep(delay)
            delay = min(delay * 2, 0.02)
        return True

    # -- hub plumbing -----------------------------------------------------------------

    def _in_hub_thread(self) -> bool:
        return self._hub_ident is not None and _real_get_ident() == self._hub_ident

    def _call_soon(self, func: Callable[..., Any], *args: Any) -> None:
        """Run ``func(*args)`` in the hub (from any thread), after what is running now.

        ``func`` runs in the hub greenlet itself: it must never block.
        """
        if self._in_hub_thread():
            self._loop.run_callback(func, *args)
        else:
            self._loop.run_callback_threadsafe(func, *args)

    def _spawn(self, func: Callable[..., Any], *args: Any) -> None:
        """Start ``func(*args)`` on a greenlet of the hub (from any thread).

        Blocking handlers (:mod:`ws4py_integrations.blocking`) run this way,
        one greenlet for a connection's whole life.
        """
        if self._in_hub_thread():
            gevent.spawn(func, *args)
        else:
            self._loop.run_callback_threadsafe(gevent.spawn, func, *args)

    # -- backend hooks -------------------------------------------------------------

    def _watch(self, conn: Connection, buffered: bytes) -> None:
        conn.sock.setblocking(False)
        if isinstance(conn.sock, gevent.ssl.SSLSocket):
            # gevent's SSLSocket is not a subclass of ssl.SSLSocket (unless patched):
            # the engine must still drain the bytes TLS already decrypted.
            conn.is_tls = True
        else:
            # gevent's socket wraps a native one, always non-blocking: read and
            # write through that directly (a C call instead of a Python one).
            raw = getattr(conn.sock, "_sock", None)
            if isinstance(raw, _socket.socket):
                conn.io = raw
        with self._watches_lock:
            self._watches[conn] = _Watch()
        # Bytes the server already read go first, before anything the hub reads.
        conn.start(buffered)
        self._call_soon(self._start_reading, conn)

    def _offload(self, func: Callable[[], bytes]) -> bytes:
        # Compressing a large broadcast would stop the hub, and with it every
        # connection: on the hub's thread, compress on its thread pool (zlib
        # releases the GIL); only the broadcasting greenlet waits.
        if self._in_hub_thread():
            result: bytes = self._hub.threadpool.apply(func)
            return result
        return func()

    def new_lock(self) -> Any:
        return _RealRLock()

    def _live_watch(self, conn: Connection) -> _Watch | None:
        with self._watches_lock:
            watch = self._watches.get(conn)
        return None if watch is None or conn.finalized else watch

    # Readiness callbacks run in the hub greenlet: nothing in them may wait
    # (the engine does not: sockets are non-blocking, locks are held briefly).

    def _start_reading(self, conn: Connection) -> None:
        watch = self._live_watch(conn)
        if watch is None:
            return
        watch.read_watcher = self._loop.io(conn.sock.fileno(), _READ)
        # Read first: TLS may already hold decrypted bytes the socket will not signal.
        self._on_readable(conn)

    def _on_readable(self, conn: Connection) -> None:
        try:
            more = conn.read()
        except Exception:
            logger.exception("%s: reading failed; dropping the connection", conn.id)
            conn.abort()
            more = False
        watch = self._watches.get(conn)
        watcher = watch.read_watcher if watch is not None else None
        if watcher is None:
            return
        if more and not conn.reading_paused:
            if not watcher.active:
                watcher.start(self._on_readable, conn)
        else:
            # Done, or too many messages wait for their handler: leave the
            # socket unread until reading_changed() says otherwise.
            watcher.stop()

    def reading_changed(self, conn: Connection) -> None:
        # A pause is seen by _on_readable, which caused it; a resume must
        # restart reading, on the hub (bytes may already be held).
        if not conn.reading_paused:
            self._call_soon(self._on_readable, conn)

    def _watch_writable(self, conn: Connection) -> None:
        # Called with conn.lock held, from any thread.
        self._call_soon(self._start_writing, conn)

    def _start_writing(self, conn: Connection) -> None:
        watch = self._live_watch(conn)
        if watch is None:
            return
        if watch.write_watcher is None:
            watch.write_watcher = self._loop.io(conn.sock.fileno(), _WRITE)
        if not watch.write_watcher.active:
            watch.write_watcher.start(self._on_writable, conn)

    def _on_writable(self, conn: Connection) -> None:
        try:
            with conn.lock:
                keep = self._flush_writable(conn)
        except Exception:
            logger.exception("%s: writing failed; dropping the connection", conn.id)
            conn.abort()
            keep = False
        watch = self._watches.get(conn)
        if not keep and watch is not None and watch.write_watcher is not None:
            watch.write_watcher.stop()

    def _unwatch(self, conn: Connection) -> None:
        # From any thread, possibly deep inside the engine: close later, on the hub.
        self._call_soon(self._close, conn)

    def _close(self, conn: Connection) -> None:
        # In the hub greenlet: stop watching this fd before closing it.
        with self._watches_lock:
            watch = self._watches.pop(conn, None)
        if watch is not None:
            for watcher in (watch.read_watcher, watch.write_watcher):
                if watcher is not None:
                    watcher.stop()
                    watcher.close()
        self._close_socket(conn, watch)

    def _close_socket(self, conn: Connection, watch: _Watch | None) -> None:
        try:
            with conn.lock:
                conn.sock.close()
        except OSError as exc:
            logger.debug("%s: closing the socket: %s", conn.id, exc)
        if watch is not None:
            watch.released = True
            if watch.released_event is not None:
                watch.released_event.set()

    def wait_released(self, websocket: WebSocket, timeout: float | None = None) -> bool:
        """Wait until ``websocket``'s socket is closed; ``False`` on timeout.

        In a greenlet of this manager's hub it waits cooperatively (the
        gevent server adapter parks its request greenlet here, so pywsgi
        closes its socket only after the WebSocket is done with it).
        """
        if not self._in_hub_thread():
            return super().wait_released(websocket, timeout)
        with self._watches_lock:
            watch = self._watches.get(websocket._connection)
        if watch is None or watch.released:
            return True
        if watch.released_event is None:
            watch.released_event = gevent.event.Event()
        return bool(watch.released_event.wait(timeout))

    def call_later(self, delay: float, func: Callable[[], Any]) -> _HubTimer:
        timer = _HubTimer(self, func)
        if self._in_hub_thread():
            self._start_timer(timer, delay)
        else:
            self._loop.run_callback_threadsafe(self._start_timer, timer, delay)
        return timer

    def _start_timer(self, timer: _HubTimer, delay: float) -> None:
        if timer.cancelled:
            return
        watcher = timer.watcher = self._loop.timer(max(0.0, delay))
        watcher.start(self._timer_fired, timer)

    def _timer_fired(self, timer: _HubTimer) -> None:
        # In the hub greenlet: the function itself runs on a greenlet of its own.
        timer.watcher = None
        if not timer.cancelled:
            gevent.spawn_raw(self._run_timer, timer)

    @staticmethod
    def _run_timer(timer: _HubTimer) -> None:
        if timer.cancelled:
            return
        try:
            timer.func()
        except Exception:
            logger.exception("timer callback failed")

    def _queue_ready(self, conn: Connection) -> None:
        pool = self._pool
        if pool is None:
            if _real_get_ident() == self._hub_ident:
                # _ready_on_hub inline: this runs once per message.
                self._ready.append(conn)
                if self._runner is None:
                    self._wake_runner()
            else:
                self._loop.run_callback_threadsafe(self._ready_on_hub, conn)
            return
        try:
            pool.submit(self._run_turn, conn)
        except RuntimeError:
            # The pool is shut down (manager stopped): run what is left here.
            self._run_queue(conn, lambda done: False)

    def _run_turn(self, conn: Connection) -> None:
        # After a batch, the rest waits for a new pool task: others get
        # their turn, and this connection's order is kept.
        if self._run_queue(conn, full_batch):
            self._queue_ready(conn)

    # Greenlet handlers. One runner greenlet runs the queues of every
    # connection with work, one after the other, rather than a greenlet per
    # connection per read: creating a greenlet costs more than an echo, so
    # the runner parks when it runs out of work and is switched to again. A
    # handler that blocks (yields to the hub) must delay only its own
    # connection: the first time the runner yields, a hub callback it
    # registered (_check_runner) sees it is still the runner and hands the
    # other ready connections to another runner; the blocked one finishes
    # its turn of the connection it is on (that connection's order is kept).

    def _ready_on_hub(self, conn: Connection) -> None:
        self._ready.append(conn)
        if self._runner is None:
            self._wake_runner()

    def _wake_runner(self) -> None:
        # A new turn of duty: a check registered in an earlier one is stale.
        self._turns += 1
        idle = self._idle_runner
        if idle is not None:
            self._idle_runner = None
            self._runner = idle
            self._loop.run_callback(self._switch_to_runner, idle, self._turns)
        else:
            self._runner = gevent.spawn_raw(self._run_ready)

    def _switch_to_runner(self, runner: Any, turn: int) -> None:
        # In the hub. The switch returns when the runner switches back to the
        # hub: it parked, or a handler waits for something (then the check
        # hands the others to another runner), with no callback of its own.
        runner.switch()
        self._check_runner(runner, turn)

    def _run_ready(self) -> None:
        me = gevent.getcurrent()
        ready = self._ready
        # A new runner registers its own check; a parked one woken by
        # _switch_to_runner is checked there.
        self._loop.run_callback(self._check_runner, me, self._turns)
        while True:
            while self._runner is me and ready:
                conn = ready.popleft()
                if self._run_queue(conn, full_batch):
                    # A full batch: the rest goes to the back of the line, and
                    # the hub runs what it has (I/O, other greenlets) before
                    # the next turn, as it would for a new greenlet.
                    ready.append(conn)
                    if self._runner is me:
                        self._runner = None
                    if self._runner is None:
                        self._loop.run_callback(self._resume_ready)
                    break
            if self._runner is me:
                self._runner = None
            if self._idle_runner is not None or self._runners_end:
                return
            self._idle_runner = me
            # Parked until _wake_runner switches back (it made this the runner).
            self._hub.switch()

    def _resume_ready(self) -> None:
        if self._runner is None and self._ready:
            self._wake_runner()

    def _check_runner(self, runner: Any, turn: int) -> None:
        # In the hub: the runner has switched out. Still the runner in the same
        # turn of duty, a handler is waiting for something (or it failed): the
        # others go to another.
        if self._runner is runner and self._turns == turn:
            self._runner = None
            if self._ready:
                self._wake_runner()

    def _end_idle_runner(self) -> None:
        self._runners_end = True
        idle, self._idle_runner = self._idle_runner, None
        if idle is not None:
            idle.switch()
