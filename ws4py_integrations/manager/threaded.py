"""The thread backend: a selectors I/O loop that runs callbacks itself, and
hands the loop to a fresh thread when a callback blocks (leader/followers).

Handing every message to a worker thread costs a thread switch per message.
Instead the thread leading the loop runs callbacks inline, in order per
connection. A watchdog notices when a callback is *blocked* (it sleeps, waits
on a lock or does blocking I/O) and starts a new thread that takes over the
loop. The blocked thread, once its callback returns, finishes that
connection's queued callbacks and ends. So a handler that blocks delays only
its own connection, and the common case pays no thread switch at all.

Blocked, not merely slow: a callback that has run for ``handoff_after``
(10 ms) is handed off only if the process left the CPU mostly idle meanwhile
(the callback waits for something). A callback that computes, or that waits
for the GIL or for a core kept busy by other threads, would not go faster on
a new thread: on a loaded core, handing off would only churn threads. A callback that keeps the loop
for ``handoff_cap`` (0.2 s) is handed off whatever the CPU says.

Sends from any thread write directly when the socket can take the bytes and
involve the loop only when it cannot.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import math
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ..broker import Broker
from ..connection import Connection
from .base import BATCH, Manager

_get_ident = threading.get_ident

__all__ = ["ThreadedManager"]

logger = logging.getLogger("ws4py_integrations.manager")


class _HeapTimer:
    """A :class:`~ws4py_integrations.connection.TimerHandle` in the loop's heap."""

    __slots__ = ("cancelled", "deadline", "func", "seq")

    def __init__(self, deadline: float, seq: int, func: Callable[[], Any]) -> None:
        self.deadline = deadline
        self.seq = seq
        self.func = func
        self.cancelled = False

    def __lt__(self, other: _HeapTimer) -> bool:
        return (self.deadline, self.seq) < (other.deadline, other.seq)

    def cancel(self) -> None:
        # Drop the callback now: it holds the connection, which must not live
        # on in the heap until the deadline of a timer nobody needs.
        self.cancelled = True
        self.func = _noop


def _noop() -> None:
    pass


class _CpuSampler:
    """Whether the process left the CPU mostly idle since the last sample.

    While the leader is inside a callback, an idle process means the callback
    waits for something (sleep, I/O, a lock): handing the loop over helps.
    A busy one means it computes, or waits for the GIL or for the core that
    other threads of ours keep busy: a new thread would wait just the same.
    (Per-thread CPU clocks would be finer, but reading one of a thread that
    just ended is undefined behaviour in C.)
    """

    __slots__ = ("_cpu", "_wall")

    def __init__(self) -> None:
        self._wall = time.monotonic()
        self._cpu = time.process_time()

    def sample(self) -> bool:
        wall, cpu = time.monotonic(), time.process_time()
        elapsed = wall - self._wall
        idle = elapsed > 0 and cpu - self._cpu < 0.5 * elapsed
        self._wall, self._cpu = wall, cpu
        return idle


class ThreadedManager(Manager):
    """A manager on a ``selectors`` loop; callbacks run on the loop thread
    unless they block, in which case the loop moves to a new thread.

    ``max_workers`` bounds the threads: the one leading the loop plus those
    still inside a blocking callback. When all are taken, callbacks wait.
    ``handoff_after`` is how long a blocked callback may keep the loop before
    it moves on without it, ``handoff_cap`` how long any callback may (see
    the module documentation). ``broker`` carries broadcasts (see
    :class:`~ws4py_integrations.Manager`).
    """

    _threaded_backend = True

    def __init__(
        self,
        *,
        max_workers: int = 32,
        handoff_after: float = 0.01,
        handoff_cap: float = 0.2,
        name: str = "ws4py",
        broker: Broker | None = None,
    ) -> None:
        super().__init__(broker=broker)
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self._name = name
        self._max_threads = max_workers
        self._handoff_after = handoff_after
        self._handoff_cap = max(handoff_cap, handoff_after)
        self._selector = selectors.DefaultSelector()
        self._shared_poll = isinstance(self._selector, getattr(selectors, "EpollSelector", ()))
        # Connection -> the events its socket is registered for (changed with
        # the connection's lock held: on the loop, or by _watch on epoll).
        self._interest: dict[Connection, int] = {}
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._woken = False
        self._ops: list[Callable[[], Any]] = []
        self._ops_lock = threading.Lock()
        # Timers set from other threads, for the loop to push (under _ops_lock),
        # and the deadline the loop waits for: -inf while it runs (it takes
        # new timers before it waits again), +inf when it waits for no timer.
        self._new_timers: list[_HeapTimer] = []
        self._waiting_until = -math.inf
        self._timers: list[_HeapTimer] = []
        self._timers_pushed = 0
        self._seq = itertools.count()
        # The queue lock also guards the leader and the run list, so that a
        # callback is taken and the leadership checked in one step.
        self._lock = self._queue_lock
        self._leader: threading.Thread | None = None
        # The leader's thread id (None until it started): cheaper to compare
        # than threading.current_thread(), a Python call.
        self._leader_ident: int | None = None
        self._run_list: deque[Connection] = deque()
        self._busy_since: float | None = None
        self._threads = 0
        self._serial = itertools.count(1)
        self._running = False
        self._stopped_event = threading.Event()
        self._watchdog: threading.Thread | None = None
        self._saturation_logged = False

    # -- lifecycle -----------------------------------------------------------

    def _start_backend(self) -> None:
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._running = True
        with self._lock:
            self._spawn_leader()
        self._watchdog = threading.Thread(target=self._watch_leader, name=f"{self._name}-watchdog", daemon=True)
        self._watchdog.start()

    def _stop_backend(self) -> None:
        self._call_soon(self._halt)
        self._stopped_event.set()
        leader = self._leader
        if leader is not None and leader is not threading.current_thread():
            leader.join(5.0)
        if self._watchdog is not None and self._watchdog is not threading.current_thread():
            self._watchdog.join(5.0)

    def _release_unstarted(self) -> None:
        # The selector and the wake-up pair exist from the constructor on.
        self._close_loop()

    def _halt(self) -> None:
        self._running = False

    def _spawn_leader(self) -> None:
        # Called with self._lock held.
        thread = threading.Thread(target=self._lead, name=f"{self._name}-io-{next(self._serial)}", daemon=True)
        self._leader = thread
        # None until started: meanwhile a call from the new leader wakes the loop, needlessly but harmlessly.
        self._leader_ident = None
        self._busy_since = None
        self._threads += 1
        thread.start()
        self._leader_ident = thread.ident

    def _watch_leader(self) -> None:
        """Move the loop to a new thread when the leader is blocked in a callback."""
        period = self._handoff_after
        sampler = _CpuSampler()
        while not self._stopped_event.wait(period):
            idle = sampler.sample()
            with self._lock:
                since = self._busy_since
                if since is None or not self._running:
                    continue
                busy_for = time.monotonic() - since
                if busy_for < period or (busy_for < self._handoff_cap and not idle):
                    continue
                if self._threads >= self._max_threads:
                    if not self._saturation_logged:
                        self._saturation_logged = True
                        logger.warning(
                            "all %d threads are inside blocking callbacks; other connections wait "
                            "(raise max_workers or avoid blocking in handlers)",
                            self._max_threads,
                        )
                    continue
                self._saturation_logged = False
                self._spawn_leader()

    # -- the loop ------------------------------------------------------------------

    def _lead(self) -> None:
        me = threading.current_thread()
        try:
            while self._running:
                if self._new_timers:
                    self._take_new_timers()
                timeout = None
                if self._run_list or self._ops:
                    # Work queued by this thread itself: do not wait for I/O.
                    timeout = 0.0
                elif self._timers:
                    timeout = max(0.0, self._timers[0].deadline - time.monotonic())
                if timeout != 0.0:
                    with self._ops_lock:
                        if self._new_timers:
                            timeout = 0.0  # set meanwhile: take them first
                        else:
                            self._waiting_until = math.inf if timeout is None else self._timers[0].deadline
                self._poll(timeout)
                self._waiting_until = -math.inf
                if self._ops:
                    # Read without the lock: what another thread adds after
                    # this look wakes the loop (_call_soon).
                    self._run_ops()
                if self._timers:
                    self._run_timers()
                if not self._run_callbacks(me):
                    return  # demoted: another thread leads the loop now
        except Exception:
            # A bug of ours. Restarting the loop could crash it again: this
            # manager takes no more connections (503), and the ones it has
            # are dropped, their closed() run here, since no loop will.
            logger.exception("I/O loop crashed; aborting its connections and refusing new ones")
            with self._lock:
                self._running = False
            with self._registry_lock:
                self._stopped = True
            for conn in self._snapshot():
                conn.abort()
        finally:
            with self._lock:
                self._threads -= 1
                last = self._leader is me
            if last and not self._running:
                self._close_loop()

    def _poll(self, timeout: float | None) -> None:
        # A method of its own so that no local variable keeps the last
        # connection alive while the loop waits.
        for key, mask in self._selector.select(timeout):
            conn = key.data
            if conn is None:
                self._drain_wake()
                continue
            if mask & selectors.EVENT_WRITE:
                self._writable(conn)
            if mask & selectors.EVENT_READ:
                conn.read()

    def _close_loop(self) -> None:
        selector = self._selector
        for key in list(selector.get_map().values()):
            if key.data is not None:
                key.fileobj.close()  # type: ignore[union-attr]
        self._interest.clear()
        selector.close()
        self._wake_r.close()
        self._wake_w.close()

    def _run_callbacks(self, me: threading.Thread) -> bool:
        """Run queued callbacks; ``False`` if this thread lost the lead meanwhile.

        Connection by connection, in turns of at most ``BATCH`` callbacks (what
        :meth:`Manager._run_queue` does, one lock acquisition per callback
        rather than several per turn). A thread demoted meanwhile finishes
        the queue it is in, then ends.
        """
        lock, run_list, queues, monotonic = self._lock, self._run_list, self._queues, time.monotonic
        # A Connection, or what else schedules through the manager (an Engine.IO session).
        conn: Any = None
        queue: deque[Any] | None = None
        done = 0
        while True:
            lock.acquire()  # not ``with``: see Connection.read()
            try:
                while True:
                    if queue is None:
                        if self._leader is not me:
                            return False
                        if not run_list:
                            self._busy_since = None
                            return True
                        conn = run_list.popleft()
                        queue = queues[conn]
                        done = 0
                    if not queue:
                        del queues[conn]
                        queue = None
                    elif self._leader is not me:
                        break  # demoted: finish this connection's queue
                    elif done >= BATCH:
                        run_list.append(conn)  # let the others have a turn
                        queue = None
                    else:
                        self._busy_since = monotonic()
                        break
                func, args = queue.popleft()
            finally:
                lock.release()
            try:
                func(*args)
            except Exception:
                logger.exception("%s: callback %s failed", conn.id, getattr(func, "__qualname__", func))
            done += 1

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass
        # After draining, not before: work queued up to here is seen by this
        # turn of the loop, and whoever queues after this sends a new byte.
        with self._ops_lock:
            self._woken = False

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
        """Run ``op`` on the loop (from any thread)."""
        with self._ops_lock:
            self._ops.append(op)
            if self._woken or _get_ident() == self._leader_ident:
                return  # the loop will see it before it waits again
            self._woken = True
        self._wake()

    def _wake_once(self) -> None:
        # One wake-up byte at a time, shared by _call_soon, schedule and
        # _queue_ready: a handshake queues opened() and registers its socket,
        # and one wake-up does for both. While _woken is set, a byte is on its
        # way and the loop will pass _run_ops and _run_callbacks before it
        # waits again (_drain_wake clears the flag once the byte is read).
        with self._ops_lock:
            if self._woken:
                return
            self._woken = True
        self._wake()

    def _wake(self) -> None:
        # OSError: the loop is gone, or a wake-up byte is already waiting.
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    # -- backend hooks ---------------------------------------------------------

    def _watch(self, conn: Connection, buffered: bytes) -> None:
        if conn.sock.gettimeout() != 0.0:
            # Most adapters left it non-blocking already (take_buffered): spare the system call.
            conn.sock.setblocking(False)
        # Bytes the server already read go first, before anything the loop reads.
        conn.start(buffered)

        def register() -> None:
            with conn.lock:
                self._set_interest(conn)
            if conn.is_tls:
                # TLS may already hold decrypted bytes the socket will not signal.
                conn.read()

        if self._shared_poll and not conn.is_tls:
            # epoll takes a descriptor while another thread waits in it, and
            # reports its events in that very wait: a new connection needs no
            # wake-up of the loop (poll and select see only what they were given).
            try:
                register()
            except (ValueError, OSError) as exc:
                # The loop closed its selector: the manager stopped, and its
                # stop aborts the connections it has, this one included.
                logger.debug("%s: not watched: %s", conn.id, exc)
            return
        self._call_soon(register)

    def _set_interest(self, conn: Connection) -> None:
        """Watch ``conn``'s socket for what it needs now (on the loop, ``conn.lock`` held)."""
        if conn.finalized:
            return
        events = (0 if conn.reading_paused else selectors.EVENT_READ) | (
            selectors.EVENT_WRITE if conn in self._writing else 0
        )
        # The events registered, kept here: the selector's get_key() raises for
        # a socket not registered yet, formatting its repr (two system calls).
        registered = self._interest.get(conn, 0)
        if events == registered:
            return
        selector = self._selector
        if not registered:
            selector.register(conn.sock, events, conn)
            self._interest[conn] = events
        elif not events:
            selector.unregister(conn.sock)
            del self._interest[conn]
        else:
            selector.modify(conn.sock, events, conn)
            self._interest[conn] = events

    def reading_changed(self, conn: Connection) -> None:
        def update() -> None:
            with conn.lock:
                self._set_interest(conn)
            if not conn.reading_paused:
                # Bytes held back while paused, or inside TLS, will not make
                # the socket readable: take them now.
                conn.read()

        self._call_soon(update)

    def _unwatch(self, conn: Connection) -> None:
        def unregister() -> None:
            with conn.lock:
                if self._interest.pop(conn, 0):
                    with contextlib.suppress(KeyError, ValueError):
                        self._selector.unregister(conn.sock)
                conn.sock.close()

        self._call_soon(unregister)

    def _watch_writable(self, conn: Connection) -> None:
        def watch() -> None:
            with conn.lock:
                self._set_interest(conn)

        self._call_soon(watch)

    def _writable(self, conn: Connection) -> None:
        with conn.lock:
            if not self._flush_writable(conn):
                self._set_interest(conn)

    def call_later(self, delay: float, func: Callable[[], Any]) -> _HeapTimer:
        timer = _HeapTimer(time.monotonic() + delay, next(self._seq), func)
        # The loop takes it before it next waits (not at once: the heap may be
        # in the middle of _run_timers), and is woken only when it waits for a
        # later deadline than this one (every new connection's keepalive timer
        # comes after those before it).
        with self._ops_lock:
            self._new_timers.append(timer)
            if self._woken or timer.deadline >= self._waiting_until or _get_ident() == self._leader_ident:
                return timer
            self._woken = True
        self._wake()
        return timer

    def _take_new_timers(self) -> None:
        with self._ops_lock:
            new, self._new_timers = self._new_timers, []
        for timer in new:
            self._push_timer(timer)

    def _push_timer(self, timer: _HeapTimer) -> None:
        timers = self._timers
        heapq.heappush(timers, timer)
        self._timers_pushed += 1
        if self._timers_pushed >= 1024 and len(timers) >= 1024:
            # Cancelled timers wait for their deadline in the heap; weed them
            # out now and then so churn does not grow it.
            self._timers_pushed = 0
            live = [t for t in timers if not t.cancelled]
            if len(live) < len(timers) // 2:
                heapq.heapify(live)
                self._timers = live

    def schedule(self, conn: Connection, func: Callable[..., Any], *args: Any) -> None:
        # Manager.schedule and _queue_ready in one: the queue lock is this
        # backend's lock too, so one acquisition does both. acquire() and
        # release() rather than ``with``: see Connection.read().
        lock = self._lock
        lock.acquire()
        try:
            queue = self._queues.get(conn)
            if queue is not None:
                queue.append((func, args))
                return
            self._queues[conn] = deque(((func, args),))
            # _mark_ready inline.
            if not self._running:
                running: bool | None = False
            else:
                self._run_list.append(conn)
                running = None if _get_ident() == self._leader_ident else True
        finally:
            lock.release()
        if running is not None:  # else the loop itself queued it (the common case): nothing to do
            self._after_ready(conn, running)

    def _queue_ready(self, conn: Connection) -> None:
        with self._lock:
            running = self._mark_ready(conn)
        self._after_ready(conn, running)

    def _mark_ready(self, conn: Connection) -> bool | None:
        """With the lock held: put ``conn`` on the run list; ``None`` if the loop needs no wake-up.

        ``False``: the loop is gone, :meth:`_after_ready` runs the queue here.
        """
        if not self._running:
            return False
        self._run_list.append(conn)
        if _get_ident() == self._leader_ident:
            return None  # the loop itself: it runs the list before it waits
        return True

    def _after_ready(self, conn: Connection, running: bool | None) -> None:
        if running:
            self._wake_once()
        elif running is False:
            # The loop is gone (stopped): run what is left here rather than lose it.
            self._run_queue(conn, lambda done: False)
