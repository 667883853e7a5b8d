"""The thread backend: one selectors I/O loop, callbacks on a worker pool.

The loop thread only reads, parses and flushes; user callbacks run on worker
threads, one at a time per connection and in order, so a handler that blocks
delays only its own connection. Sends from any thread write directly when the
socket can take the bytes, and involve the loop only when it cannot.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import queue
import selectors
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from ..broker import Broker
from ..connection import Connection
from .base import Manager

__all__ = ["ThreadedManager"]

logger = logging.getLogger("ws4py_integrations.manager")

# Callbacks one worker runs for a connection before yielding to the others.
_BATCH = 64


class _Timer:
    __slots__ = ("cancelled", "deadline", "func", "seq")

    def __init__(self, deadline: float, seq: int, func: Callable[[], Any]) -> None:
        self.deadline = deadline
        self.seq = seq
        self.func = func
        self.cancelled = False

    def __lt__(self, other: _Timer) -> bool:
        return (self.deadline, self.seq) < (other.deadline, other.seq)

    def cancel(self) -> None:
        self.cancelled = True


class _WorkerPool:
    """Threads for callbacks: started on demand up to ``max_workers``, ended
    after ``idle_timeout`` seconds without work, so a burst leaves no threads behind."""

    def __init__(self, max_workers: int, idle_timeout: float, name: str) -> None:
        self._max = max_workers
        self._idle_timeout = idle_timeout
        self._name = name
        self._tasks: queue.Queue[tuple[Callable[..., Any], tuple[Any, ...]] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._idle = 0  # workers waiting for a task nobody has claimed
        self._count = 0
        self._serial = itertools.count(1)
        self._shutdown = False

    def submit(self, func: Callable[..., Any], *args: Any) -> None:
        with self._lock:
            if self._shutdown:
                raise RuntimeError("worker pool is shut down")
            self._tasks.put((func, args))
            if self._idle > 0:
                self._idle -= 1  # that waiting worker will take it
                return
            if self._count >= self._max:
                return  # the next worker to finish takes it
            self._count += 1
        thread = threading.Thread(target=self._work, name=f"{self._name}-{next(self._serial)}", daemon=True)
        thread.start()

    def _work(self) -> None:
        tasks = self._tasks
        while True:
            try:
                task = tasks.get(timeout=self._idle_timeout)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0 and tasks.empty():
                        self._idle -= 1
                        self._count -= 1
                        return
                continue
            if task is None:
                with self._lock:
                    self._count -= 1
                return
            func, args = task
            try:
                func(*args)
            except Exception:
                logger.exception("callback worker task failed")
            with self._lock:
                self._idle += 1

    def shutdown(self) -> None:
        with self._lock:
            self._shutdown = True
            count = self._count
        for _ in range(count):
            self._tasks.put(None)


class ThreadedManager(Manager):
    """A manager on a ``selectors`` loop thread plus a pool of callback workers.

    ``max_workers`` bounds how many connections' callbacks run at the same
    time (a blocking handler holds one worker while it blocks); a worker ends
    after ``worker_idle_timeout`` seconds without work. ``broker``
    carries publish and broadcast (see :class:`~ws4py_integrations.Manager`).
    """

    def __init__(
        self,
        *,
        max_workers: int = 32,
        worker_idle_timeout: float = 10.0,
        name: str = "ws4py",
        broker: Broker | None = None,
    ) -> None:
        super().__init__(broker=broker)
        self._worker_idle_timeout = worker_idle_timeout
        self._name = name
        self._max_workers = max_workers
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._woken = False
        self._ops: list[Callable[[], Any]] = []
        self._ops_lock = threading.Lock()
        self._timers: list[_Timer] = []
        self._seq = itertools.count()
        self._queue_lock = threading.Lock()
        self._pool: _WorkerPool | None = None
        self._thread: threading.Thread | None = None
        self._running = False

    # -- lifecycle -----------------------------------------------------------

    def _start_backend(self) -> None:
        self._pool = _WorkerPool(self._max_workers, self._worker_idle_timeout, f"{self._name}-worker")
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._running = True
        self._thread = threading.Thread(target=self._run, name=f"{self._name}-io", daemon=True)
        self._thread.start()

    def _stop_backend(self) -> None:
        self._call_soon(self._halt)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5.0)
        if self._pool is not None:
            self._pool.shutdown()

    def _halt(self) -> None:
        self._running = False

    # -- loop ------------------------------------------------------------------

    def _run(self) -> None:
        selector = self._selector
        try:
            while self._running:
                timeout = None
                if self._timers:
                    timeout = max(0.0, self._timers[0].deadline - time.monotonic())
                for key, mask in selector.select(timeout):
                    conn = key.data
                    if conn is None:
                        self._drain_wake()
                        continue
                    if mask & selectors.EVENT_WRITE:
                        self._writable(conn)
                    if mask & selectors.EVENT_READ:
                        conn.read()
                self._run_ops()
                self._run_timers()
        except Exception:
            logger.exception("I/O loop crashed; aborting its connections")
            for conn in self._snapshot():
                conn.abort()
        finally:
            for key in list(selector.get_map().values()):
                if key.data is not None:
                    key.fileobj.close()  # type: ignore[union-attr]
            selector.close()
            self._wake_r.close()
            self._wake_w.close()

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass

    def _run_ops(self) -> None:
        with self._ops_lock:
            ops, self._ops = self._ops, []
            self._woken = False
        for op in ops:
            op()

    def _run_timers(self) -> None:
        timers = self._timers
        now = time.monotonic()
        while timers and timers[0].deadline <= now:
            timer = heapq.heappop(timers)
            if not timer.cancelled:
                try:
                    timer.func()
                except Exception:
                    logger.exception("timer callback failed")

    def _call_soon(self, op: Callable[[], Any]) -> None:
        """Run ``op`` on the loop thread (from any thread)."""
        with self._ops_lock:
            self._ops.append(op)
            if self._woken:
                return
            self._woken = True
        # OSError: the loop is gone, or a wake-up byte is already waiting.
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    # -- Backend protocol ---------------------------------------------------------

    def _watch(self, conn: Connection, buffered: bytes) -> None:
        conn.sock.setblocking(False)
        # Bytes the server already read go first, before anything the loop reads.
        conn.start(buffered)

        def register() -> None:
            if conn.finalized:
                return
            self._selector.register(conn.sock, selectors.EVENT_READ, conn)
            if conn.is_tls:
                # TLS may already hold decrypted bytes the socket will not signal.
                conn.read()

        self._call_soon(register)

    def _unwatch(self, conn: Connection) -> None:
        def unregister() -> None:
            with conn.lock:
                with contextlib.suppress(KeyError, ValueError):
                    self._selector.unregister(conn.sock)
                conn.sock.close()

        self._call_soon(unregister)

    def want_write(self, conn: Connection) -> None:
        # Called with conn.lock held.
        if conn.write_watched or conn.finalized:
            return
        conn.write_watched = True

        def watch() -> None:
            with conn.lock:
                if not conn.finalized and conn.write_watched:
                    self._selector.modify(conn.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, conn)

        self._call_soon(watch)

    def _writable(self, conn: Connection) -> None:
        with conn.lock:
            if conn.on_writable() or conn.finalized:
                return
            conn.write_watched = False
            self._selector.modify(conn.sock, selectors.EVENT_READ, conn)

    def call_later(self, delay: float, func: Callable[[], Any]) -> _Timer:
        timer = _Timer(time.monotonic() + delay, next(self._seq), func)
        self._call_soon(lambda: heapq.heappush(self._timers, timer))
        return timer

    def schedule(self, conn: Connection, func: Callable[..., Any], *args: Any) -> None:
        with self._queue_lock:
            conn.callbacks.append((func, args))
            if conn.callbacks_running:
                return
            conn.callbacks_running = True
        self._submit(conn)

    def _submit(self, conn: Connection) -> None:
        pool = self._pool
        try:
            if pool is None:
                raise RuntimeError("manager not started")
            pool.submit(self._drain, conn)
        except RuntimeError:
            # The pool is shut down (manager stopped): run what is left here.
            self._drain(conn, limit=None)

    def _drain(self, conn: Connection, limit: int | None = _BATCH) -> None:
        queue = conn.callbacks
        done = 0
        while True:
            with self._queue_lock:
                if not queue:
                    conn.callbacks_running = False
                    return
                if limit is not None and done >= limit:
                    break
                func, args = queue.popleft()
            try:
                func(*args)
            except Exception:
                logger.exception("internal callback failed")
            done += 1
        # Give other connections a turn on this worker.
        self._submit(conn)
